"""OpSeal server: storage."""
