"""Which input offsets the re-key stage commits once Kafka acknowledged its batches."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from mesh_stream.processing.rekey import offsets_to_commit


def _positions(offsets: list[TopicPartition]) -> list[tuple[str, int, int]]:
    return [(tp.topic, tp.partition, tp.offset) for tp in offsets]


def test_the_newest_offset_of_each_owned_partition_is_committed() -> None:
    acknowledged = [  # two batches, oldest first
        TopicPartition("orders", 0, 10),
        TopicPartition("orders", 1, 7),
        TopicPartition("orders", 0, 25),
        TopicPartition("payments", 2, 3),
    ]
    owned = [TopicPartition("orders", 0), TopicPartition("orders", 1)]
    owned.append(TopicPartition("payments", 2))
    assert _positions(offsets_to_commit(acknowledged, owned)) == [
        ("orders", 0, 25),
        ("orders", 1, 7),
        ("payments", 2, 3),
    ]


def test_partitions_revoked_meanwhile_are_left_to_their_new_owner() -> None:
    acknowledged = [TopicPartition("orders", 0, 10), TopicPartition("orders", 1, 7)]
    owned = [TopicPartition("orders", 1)]  # partition 0 went to another worker
    assert _positions(offsets_to_commit(acknowledged, owned)) == [("orders", 1, 7)]
    assert offsets_to_commit(acknowledged, []) == []
