"""mapograph.partition (under construction)."""
