"""Domain `customers`: the compacted PII profile product and engagement events."""
