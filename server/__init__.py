"""OpSeal server package (built by a later issue)."""
