"""Producer batches under a topic's record limit: the one rule the SDK's publisher and a
processor's output producer share (``kafka.clients.batches_within``; the output producer's
use of it runs against a real topic in ``tests/integration/test_rekey_stage.py``)."""

from __future__ import annotations

from mesh_stream.kafka.clients import BATCH_OVERHEAD_BYTES, batches_within


def test_batch_size_stays_under_the_smallest_topic_limit_and_is_never_raised() -> None:
    settings = {"acks": "all"}
    assert batches_within(settings, []) == settings
    assert batches_within(settings, [600, 1_048_588]) == {
        "acks": "all",
        "batch.size": 600 - BATCH_OVERHEAD_BYTES,
    }
    small = {"batch.size": 100}
    assert batches_within(small, [600]) == small  # already under it
    assert batches_within({}, [10])["batch.size"] == 1  # a limit below the overhead: 1 byte
    assert "batch.size" not in settings  # the caller's settings are left alone
