"""ProductConsumer refuses a group id Kafka cannot take before librdkafka sees it: a NUL in
one aborted the whole process, a 100k-character one never joined and read nothing."""

from __future__ import annotations

from typing import Any

import pytest

from mesh_stream.consumer import ProductConsumer
from mesh_stream.errors import ConfigurationError
from tests.fixtures.sdk.helpers import SCHEMA_V1, new_product
from tests.unit.sdk.conftest import MemorySchemas


def _consumer(group_id: Any) -> ProductConsumer:
    return ProductConsumer(
        [new_product("unit", schema=SCHEMA_V1)],
        group_id=group_id,
        bootstrap_servers="127.0.0.1:9",  # never contacted
        registry=MemorySchemas({}),  # type: ignore[arg-type]
        from_beginning=True,  # no metadata request for new topics (nothing answers here)
        config={"log_level": 0},
        root=None,
    )


@pytest.mark.parametrize(
    ("group_id", "problem"),
    [
        ("", "'' is empty"),
        ("billing\x00x", "'billing\\x00x' contains the unprintable character '\\x00'"),
        ("a\nb", "'a\\nb' contains the unprintable character '\\n'"),
        ("g\udcff", "'g\\udcff' is not valid UTF-8 text"),
        ("x" * 100_000, "... (100000 characters) has 100000 characters; at most 249"),
        ("x" * 250, "has 250 characters; at most 249 are allowed"),
    ],
    ids=["empty", "nul", "newline", "not-utf8", "100k", "250"],
)
def test_a_group_id_kafka_cannot_take_is_refused_with_the_rule(group_id: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        _consumer(group_id)
    message = str(refused.value)
    assert message.startswith("consumer group id ")
    assert problem in message
    assert "(non-empty printable text, at most 249 characters" in message
    assert "\n" not in message
    assert len(message) < 400  # the 100k id is not echoed whole


@pytest.mark.parametrize("group_id", ["g" * 249, "billing service/v2 ünïcode"])
def test_a_legal_group_id_is_taken(group_id: str) -> None:
    consumer = _consumer(group_id)
    try:
        assert consumer.group_id == group_id
    finally:
        consumer.close()
