"""cellgan.segment."""
