"""The sample mesh: one package per domain (descriptors, simulators, processors)."""
