"""Sources of the real node's images (``localimages`` builds them)."""
