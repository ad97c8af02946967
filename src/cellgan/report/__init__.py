"""cellgan.report."""
