"""Benchmarks on the public datasets: each module adds one ``cellgan bench`` sub-command."""
