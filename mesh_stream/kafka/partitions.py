"""Which partition a keyed record goes to: the one home of the mesh's partitioner.

Every writer of a product's topics places a key where Java's producer would: the SDK
publisher (unless ``producer_partitioner`` or its ``config`` says otherwise), the dead-letter
writer, the processors' outputs (librdkafka's ``murmur2_random``) and faust's producer
(aiokafka's default) all use Java's murmur2 of the key's bytes. So a product written by a
Java service and by the SDK, or re-keyed by a processor, keeps each key in one partition,
and with it the key's order. librdkafka's own default (``consistent_random``, CRC-32, which
other librdkafka clients such as Go's and .NET's use unless told) puts the same key
elsewhere. The monitor's and lineage topics are written by one writer each, so their
placement is their own.

:func:`key_partition` works the placement out in Python, for what must know it without
producing: the processors' window expiry and the benchmark's story input.
"""

from __future__ import annotations

import functools

__all__ = ["KEY_PARTITIONER", "key_partition", "murmur2"]

#: librdkafka's name for Java's partitioner: murmur2 of a key, random for a record without.
KEY_PARTITIONER = "murmur2_random"

_SEED = 0x9747B28C
_MULTIPLIER = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Java's ``Utils.murmur2`` of ``data`` as an unsigned 32-bit integer."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _MULTIPLIER) & _MASK
        k ^= k >> 24
        k = (k * _MULTIPLIER) & _MASK
        h = ((h * _MULTIPLIER) & _MASK) ^ k
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _MULTIPLIER) & _MASK
    h ^= h >> 13
    h = (h * _MULTIPLIER) & _MASK
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=65_536)
def key_partition(key: str | bytes, partitions: int) -> int:
    """The partition of ``partitions`` a record keyed ``key`` (a str as its UTF-8 bytes) goes
    to, as Java's producer and :data:`KEY_PARTITIONER` place it."""
    data = key.encode() if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % partitions
