"""Vector index kinds, one per module, and the factory that builds one by name."""
