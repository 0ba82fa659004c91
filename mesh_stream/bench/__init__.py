"""Benchmarks behind `mesh bench`; every figure is a ratio to raw confluent-kafka, same run."""
