"""mapograph.viz (under construction)."""
