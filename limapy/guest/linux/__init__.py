"""Linux guests."""
