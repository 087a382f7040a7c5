"""mapograph.algos (under construction)."""
