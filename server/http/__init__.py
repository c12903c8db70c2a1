"""OpSeal server: http."""
