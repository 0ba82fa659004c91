"""Domain `payments`: payment attempts authorized, captured and failed, keyed by order."""
