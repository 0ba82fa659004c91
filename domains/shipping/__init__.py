"""Domain `shipping`: shipments dispatched and delivered, keyed by order."""
