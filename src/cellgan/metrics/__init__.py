"""cellgan.metrics."""
