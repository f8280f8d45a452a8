"""`make mutate`: mutation testing of the modules whose bugs give wrong numbers (docs/testing.md)."""
