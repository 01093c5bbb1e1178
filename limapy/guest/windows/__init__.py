"""Windows guests."""
