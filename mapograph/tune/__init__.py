"""mapograph.tune (under construction)."""
