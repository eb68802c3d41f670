"""Network definitions, one file per network."""
