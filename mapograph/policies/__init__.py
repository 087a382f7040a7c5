"""mapograph.policies (under construction)."""
