"""The bcc boundary: environment checks, loading and attaching gadgets, reading maps."""
