"""mapograph.train (under construction)."""
