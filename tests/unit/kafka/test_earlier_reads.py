"""earlier_reads: which topics a group moved to from an earlier one, and what it left there;
one topic Kafka does not answer for hides no other's move (h40)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from mesh_stream.kafka.clients import EarlierRead, earlier_reads


class Group:
    """A consumer whose group committed ``offsets`` ((topic, partition) -> offset)."""

    def __init__(self, offsets: dict[tuple[str, int], int], failing: set[str]) -> None:
        self.offsets, self.failing = offsets, failing

    def committed(self, asked: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        del timeout
        if any(tp.topic in self.failing for tp in asked):
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return [
            TopicPartition(
                tp.topic, tp.partition, self.offsets.get((tp.topic, tp.partition), -1001)
            )
            for tp in asked
        ]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> Any:
        del timeout
        return None if tp.partition == 1 else (0, 10)  # partition 1: no answer in time


def known(*topics: str) -> dict[str, Any]:
    return {topic: SimpleNamespace(partitions={0: None, 1: None}) for topic in topics}


def test_a_move_is_told_with_what_was_left_and_a_failing_topic_hides_no_other() -> None:
    topics = known("a.x.v1", "a.x.v2", "b.y.v1", "b.y.v2", "c.z.v1", "c.z.v2")
    group = Group({("a.x.v1", 0): 4, ("b.y.v1", 0): 2, ("c.z.v2", 0): 0}, failing={"b.y.v2"})
    earlier = {"b.y.v2": ["b.y.v1"], "a.x.v2": ["a.x.v1"], "c.z.v2": ["c.z.v1"], "d.w.v1": []}
    assert earlier_reads(group, earlier, topics) == {  # type: ignore[arg-type]
        "a.x.v2": EarlierRead(("a.x.v1",), unread=6),  # 10 - 4; partition 1 not answered
    }
    assert earlier_reads(group, earlier, topics, count_unread=False) == {  # type: ignore[arg-type]
        "a.x.v2": EarlierRead(("a.x.v1",), unread=0)
    }
