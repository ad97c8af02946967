"""cellgan.model."""
