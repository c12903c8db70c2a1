"""Data package: the JSON Schemas of content types (read with ``importlib.resources``)."""
