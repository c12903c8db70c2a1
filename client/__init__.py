"""OpSeal client package (built by a later issue)."""
