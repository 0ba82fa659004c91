"""A processor whose input moved to a new major says so as it starts, with what its re-key
group leaves unread on the earlier major (h37: it moved silently, records left on `.v1` were
never read and nothing said so). Real broker; the group's offsets committed as a worker's."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from mesh_stream.processing.rekey import MajorMove, major_moves
from tests.conftest import KafkaAddress
from tests.fixtures.sdk.helpers import new_product


def _topics(bootstrap: str, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 2, 1) for name in names]).values():
        future.result(30)


def _fill(bootstrap: str, topic: str, per_partition: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition in (0, 1):
        for n in range(per_partition):
            producer.produce(topic, f"record {n}".encode(), partition=partition)
    assert producer.flush(30) == 0


def _group(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group})


def test_a_group_that_read_an_earlier_major_is_told_what_it_leaves_there(
    kafka: KafkaAddress,
) -> None:
    bootstrap = kafka.bootstrap_servers
    v1 = new_product("moved", partitions=2)
    v2 = v1.model_copy(update={"version": 2})
    _topics(bootstrap, v1.topic, v2.topic)
    _fill(bootstrap, v1.topic, 5)
    group = f"mesh-test-{v1.name}-rekey"
    worker = _group(bootstrap, group)
    try:
        # read 3 of partition 0's 5 records, nothing of partition 1's
        worker.commit(offsets=[TopicPartition(v1.topic, 0, 3)], asynchronous=False)
        assert major_moves(worker, [v1]) == []  # still at its first major: no move
        [move] = major_moves(worker, [v2])
        assert move == MajorMove(v2.name, v2.topic, (v1.topic,), unread=2 + 5)
        said = move.describe("mesh-x", group)
        assert said == (
            f"processor mesh-x: input {v2.name} moved to {v2.topic}: re-key group {group} "
            f"committed offsets on {v1.topic} and none on {v2.topic} yet, so it reads "
            f"{v2.topic} from its first record; 7 record(s) of {v1.topic} it had not read, "
            f"and any published there from now on, are not read by this processor "
            f"(republish them to {v2.topic} if it must count them)"
        )
        # once it committed on the new major it has moved: nothing more is said
        worker.commit(offsets=[TopicPartition(v2.topic, 0, 0)], asynchronous=False)
        assert major_moves(worker, [v2]) == []
    finally:
        worker.close()
    fresh = _group(bootstrap, f"{group}-new")
    try:  # a group that never read anything has not moved
        assert major_moves(fresh, [v2]) == []
    finally:
        fresh.close()
