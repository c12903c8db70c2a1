"""OpSeal server: services."""
