"""mapograph.graph (under construction)."""
