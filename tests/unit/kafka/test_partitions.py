"""The mesh's partitioner is Java's: the values Kafka's own tests give for Utils.murmur2, and
aiokafka's (faust's producer) placement of every kind of key."""

from __future__ import annotations

import ctypes
import random

import pytest
from aiokafka.partitioner import DefaultPartitioner

from mesh_stream.kafka.partitions import key_partition, murmur2

# Kafka's UtilsTest.testMurmur2 (Java ints: signed).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "expected"), JAVA_MURMUR2.items())
def test_murmur2_gives_what_java_gives(data: bytes, expected: int) -> None:
    assert ctypes.c_int32(murmur2(data)).value == expected


def test_a_key_goes_where_aiokafka_puts_it_whatever_its_length_or_bytes() -> None:
    rng = random.Random(7)
    partitioner = DefaultPartitioner()
    for partitions in (1, 2, 3, 12, 100):
        every = list(range(partitions))
        for length in range(0, 40):
            data = bytes(rng.randrange(256) for _ in range(length))
            assert key_partition(data, partitions) == partitioner(data, every, every)
    assert key_partition("é", 7) == key_partition("é".encode(), 7)
