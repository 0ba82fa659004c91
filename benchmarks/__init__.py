"""Benchmarks behind `mesh bench`: every figure is a ratio against raw confluent-kafka in the same run."""
