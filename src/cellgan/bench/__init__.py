"""Benchmarks on the public datasets, as library functions; ``cellgan bench NAME`` (:mod:`cellgan.cli.bench`) runs them."""
