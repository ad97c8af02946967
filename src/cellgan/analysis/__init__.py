"""cellgan.analysis."""
