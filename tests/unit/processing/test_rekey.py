"""Which input offsets the re-key stage commits once Kafka acknowledged its batches."""

from __future__ import annotations

import subprocess
import sys
import time

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


def test_a_crashed_worker_that_cannot_stop_exits_with_status_1() -> None:
    """What a crashed stage arms: faust's stop may wait for ever on an interrupted agent."""
    hung = (
        "import logging, time\n"
        "from mesh_stream.processing.rekey import exit_if_still_running\n"
        "logging.basicConfig()\n"
        "exit_if_still_running(1.0, 'mesh-x crashed: ValueError()')\n"
        "time.sleep(30)\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", hung], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 1
    assert "mesh-x crashed: ValueError(); not stopped after 1 s, exiting" in done.stderr
    assert time.monotonic() - started < 15
