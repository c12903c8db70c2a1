"""OpSeal migrations package (built by a later issue)."""
