"""Hostile values and arguments a publisher is given: each is refused with an SDK error naming
the field path or the argument and the value, never stored wrong nor left to confluent-kafka's
bare TypeError/RuntimeError.

The codec is tested directly on every encode path (the compiled encoder, ``encode`` and
``encode_checked``); the publisher's arguments on a publisher with no broker behind it (the
checks run before anything is handed to Kafka).
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Callable, Iterator
from typing import Any

import fastavro
import pytest

from mesh_stream.errors import ConfigurationError, SerializationError
from mesh_stream.producer import ProductPublisher, open_publisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.codec import RecordEncoder
from mesh_stream.settings import MeshSettings
from tests.unit.sdk.test_publisher_limits import publisher as broker_less_publisher
from tests.unit.sdk.test_publisher_limits import record as order
from tests.unit.sdk.test_rules_contract import client, server

__all__ = ["client", "server"]  # the fixtures, imported for their use here

NAIVE = dt.datetime(2024, 1, 1, 12, 0)
AWARE = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
FLOAT32_MAX = 3.4028234663852886e38
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Reading",
    "namespace": "hostile",
    "fields": [
        {"name": "ratio", "type": "float"},
        {"name": "score", "type": "double"},
        {"name": "maybe_ratio", "type": ["null", "float"], "default": None},
        {"name": "ratios", "type": {"type": "array", "items": "float"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {
            "name": "maybe_at",
            "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            "default": None,
        },
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [
                    {"name": "x", "type": "float"},
                    {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                ],
            },
        },
    ],
}


@pytest.fixture(scope="module")
def encoder() -> RecordEncoder:
    return RecordEncoder(SCHEMA, 7)


def valid() -> dict[str, Any]:
    return {
        "ratio": 0.5,
        "score": 2.25,
        "maybe_ratio": None,
        "ratios": [1.0],
        "at": AWARE,
        "at_micros": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "maybe_at": None,
        "local": NAIVE,
        "day": dt.date(2024, 1, 1),
        "inner": {"x": 1.5, "t": AWARE},
    }


def read(encoder: RecordEncoder, framed: bytes) -> dict[str, Any]:
    value: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(framed[5:]), encoder.parsed, None)
    return value


def paths(encoder: RecordEncoder) -> list[Callable[[Any], bytes]]:
    """Every way the codec encodes a record: ``encode`` (compiled encoder, then the checked
    path), ``encode_checked`` (guard, then fastavro) and a mapping that is not a dict."""
    from types import MappingProxyType

    return [encoder.encode, encoder.encode_checked, lambda r: encoder.encode(MappingProxyType(r))]


def refused(encoder: RecordEncoder, record: dict[str, Any]) -> str:
    """The one message every encode path refuses ``record`` with (the compiled encoder
    declines it, so it cannot write it either)."""
    assert encoder.fast is not None
    with pytest.raises(Exception):  # noqa: B017, PT011 - any refusal hands over to encode()
        encoder.fast(record)
    messages = set()
    for encode in paths(encoder):
        with pytest.raises(SerializationError) as caught:
            encode(record)
        messages.add(str(caught.value))
    assert len(messages) == 1, messages
    return messages.pop()


# -- 1. floats beyond 32 bits -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1e300, "1e+300"), (7e38, "7e+38"), (-1e300, "-1e+300"), (2**200, str(2**200)[:57] + "...")],
)
def test_a_finite_value_beyond_32_bits_is_refused_in_a_float_not_stored_as_infinity(
    encoder: RecordEncoder, value: float, shown: str
) -> None:
    message = refused(encoder, {**valid(), "ratio": value})
    assert message == (
        f"record does not fit schema hostile.Reading: ratio: {shown} is outside the range of "
        f"an Avro float (32 bits: up to ±3.4028235e+38; a double holds more)"
    )


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("maybe_ratio", 1e300, "maybe_ratio"),
        ("ratios", [1.0, 7e38], "ratios[1]"),
        ("inner", {"x": 1e39, "t": AWARE}, "inner.x"),
    ],
)
def test_floats_in_unions_arrays_and_nested_records_are_refused_by_their_path(
    encoder: RecordEncoder, field: str, value: Any, where: str
) -> None:
    assert f": {where}: " in refused(encoder, {**valid(), field: value})
    assert "is outside the range of an Avro float" in refused(encoder, {**valid(), field: value})


def test_a_float_field_still_takes_its_largest_value_and_nan_and_infinities(
    encoder: RecordEncoder,
) -> None:
    # the codec's policy for NaN and infinities is unchanged: written as they are
    for value in (FLOAT32_MAX, -FLOAT32_MAX, 3.4028235e38, 2**127, math.inf, -math.inf):
        for encode in [encoder.encode, encoder.encode_checked]:
            assert read(encoder, encode({**valid(), "ratio": value}))["ratio"] == float(
                min(max(value, -FLOAT32_MAX), FLOAT32_MAX) if math.isfinite(value) else value
            )
    for encode in [encoder.encode, encoder.encode_checked]:
        assert math.isnan(read(encoder, encode({**valid(), "ratio": math.nan}))["ratio"])
        assert read(encoder, encode({**valid(), "maybe_ratio": 1.5}))["maybe_ratio"] == 1.5


def test_an_int_too_large_for_a_double_is_refused_with_its_field_path(
    encoder: RecordEncoder,
) -> None:
    message = refused(encoder, {**valid(), "score": 2**2000})
    assert message == (
        f"record does not fit schema hostile.Reading: score: {str(2**2000)[:57]}... is outside "
        f"the range of an Avro double"
    )
    assert read(encoder, encoder.encode({**valid(), "score": 1e300}))["score"] == 1e300


# -- 2. naive datetimes --------------------------------------------------------------------

NAIVE_MESSAGE = (
    "a timestamp needs a timezone-aware datetime (e.g. datetime.now(timezone.utc); in JSON an "
    "offset, e.g. 2026-01-02T03:04:05Z), got naive 2024-01-01 12:00:00"
)


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("at", NAIVE, "at"),
        ("at_micros", NAIVE, "at_micros"),
        ("maybe_at", NAIVE, "maybe_at"),
        ("inner", {"x": 1.0, "t": NAIVE}, "inner.t"),
    ],
)
def test_a_naive_datetime_in_a_timestamp_is_refused_on_every_encode_path(
    encoder: RecordEncoder, field: str, value: Any, where: str
) -> None:
    message = refused(encoder, {**valid(), field: value})
    assert message == f"record does not fit schema hostile.Reading: {where}: {NAIVE_MESSAGE}"


def test_a_tzinfo_without_an_offset_is_naive_too(encoder: RecordEncoder) -> None:
    class NoOffset(dt.tzinfo):
        def utcoffset(self, _moment: dt.datetime | None) -> None:
            return None

    message = refused(encoder, {**valid(), "at": dt.datetime(2024, 1, 1, 12, tzinfo=NoOffset())})
    assert message.endswith(f"at: {NAIVE_MESSAGE}")


def test_aware_datetimes_numbers_and_naive_local_timestamps_are_written_as_before(
    encoder: RecordEncoder,
) -> None:
    record = {**valid(), "maybe_at": AWARE, "at_micros": 1_704_110_400_000_000}
    for encode in paths(encoder):
        framed = encode(record)
        assert framed == encoder.encode_checked(record)
        decoded = read(encoder, framed)
        assert decoded["at"] == decoded["maybe_at"] == AWARE  # the same instant, in UTC
        assert decoded["local"] == NAIVE  # local-timestamp-*: naive by definition


def test_an_aware_datetime_in_a_local_timestamp_is_refused_not_stored_without_its_offset(
    encoder: RecordEncoder,
) -> None:
    message = refused(encoder, {**valid(), "local": AWARE})
    assert message == (
        "record does not fit schema hostile.Reading: local: a local timestamp holds a "
        "wall-clock time without a zone, got aware 2024-01-01 12:00:00+02:00, whose offset "
        "would be dropped; give the wall time it means (.replace(tzinfo=None), or "
        ".astimezone(zone).replace(tzinfo=None) for another zone's; in JSON no offset, e.g. "
        "2026-01-02T03:04:05), or make the field a timestamp-* for an instant"
    )
    utc = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert refused(encoder, {**valid(), "local": utc}).startswith(
        "record does not fit schema hostile.Reading: local: a local timestamp holds"
    )
    wall = AWARE.replace(tzinfo=None)
    assert read(encoder, encoder.encode({**valid(), "local": wall}))["local"] == wall


LOCAL = {"type": "long", "logicalType": "local-timestamp-micros"}


ZONELESS = "a local timestamp holds a wall-clock time without a zone"
#: A union of several types other than null names them all (no one branch is meant).
ONE_OF = "expected one of [null, string, local-timestamp-micros (long)], got datetime"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        (["null", LOCAL], AWARE, f"maybe: {ZONELESS}"),  # the usual optional field
        (["null", "string", LOCAL], AWARE, f"maybe: {ONE_OF}"),
        ({"type": "map", "values": ["null", LOCAL]}, {"k": AWARE}, f"maybe['k']: {ZONELESS}"),
        (
            {"type": "array", "items": ["null", "string", LOCAL]},
            [None, AWARE],
            f"maybe[1]: {ONE_OF}",
        ),
    ],
)
def test_an_aware_datetime_in_a_local_timestamp_inside_a_union_is_refused_too(
    field: Any, value: Any, says: str
) -> None:
    """A union's branch was not guarded (the review of h53's fix): an optional local
    timestamp still dropped the offset."""
    schema = {"type": "record", "name": "R", "namespace": "hostile", "fields": [
        {"name": "maybe", "type": field}
    ]}  # fmt: skip
    encoder = RecordEncoder(schema, 7)
    message = refused(encoder, {"maybe": value})
    assert says in message, message
    naive = value if not isinstance(value, dt.datetime) else NAIVE
    if isinstance(value, dict):
        naive = {"k": NAIVE}
    elif isinstance(value, list):
        naive = [None, NAIVE]
    assert read(encoder, encoder.encode({"maybe": naive}))["maybe"] == naive


def test_a_datetime_in_a_date_is_refused_not_cut_to_its_day(encoder: RecordEncoder) -> None:
    message = refused(encoder, {**valid(), "day": dt.datetime(2024, 1, 1, 12, 0)})
    assert message == (
        "record does not fit schema hostile.Reading: day: expected date (int), got datetime "
        "2024-01-01 12:00:00, whose time of day would be dropped; give its .date()"
    )
    assert refused(encoder, {**valid(), "day": AWARE}).startswith(
        "record does not fit schema hostile.Reading: day: expected date (int), got datetime"
    )
    assert read(encoder, encoder.encode(valid()))["day"] == dt.date(2024, 1, 1)


# -- 3. publisher arguments ----------------------------------------------------------------


@pytest.fixture
def made(client: RegistryClient) -> Iterator[ProductPublisher]:
    """A publisher with no broker; what it would hand to Kafka is recorded, not sent."""
    publisher = broker_less_publisher(client)
    sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    publisher._produce = lambda *args, **kwargs: sent.append((args, kwargs))  # type: ignore[method-assign]
    publisher.sent = sent  # type: ignore[attr-defined]
    try:
        yield publisher
    finally:
        publisher._closed = True


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (123, "key must be str or bytes, got int 123"),
        ({"id": 1}, "key must be str or bytes, got dict {'id': 1}"),
        (1.5, "key must be str or bytes, got float 1.5"),
    ],
)
def test_an_explicit_key_that_is_not_text_or_bytes_is_refused(
    made: ProductPublisher, key: Any, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        made.publish(order(0), key=key)
    assert str(caught.value).startswith(expected + "; ")
    assert made.sent == []  # type: ignore[attr-defined]
    assert made.in_flight == 0


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (
            -5,
            "timestamp_ms must be from 1 to 9223372036854775807 (milliseconds since the "
            "epoch), got -5",
        ),
        (
            2**63,
            f"timestamp_ms must be from 1 to 9223372036854775807 (milliseconds since the "
            f"epoch), got {2**63}",
        ),
        (0, "timestamp_ms must be positive, got 0: Kafka's client reads 0 as 'now'"),
        (True, "timestamp_ms must be an int of milliseconds since the epoch, got bool True"),
        (1.7e12, "timestamp_ms must be an int of milliseconds since the epoch, got float"),
        ("1700000000000", "timestamp_ms must be an int of milliseconds since the epoch, got str"),
    ],
)
def test_a_timestamp_kafka_would_not_store_as_given_is_refused(
    made: ProductPublisher, timestamp: Any, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        made.publish(order(0), timestamp_ms=timestamp)
    assert str(caught.value).startswith(expected)
    assert made.sent == []  # type: ignore[attr-defined]


class Millis:
    """An integral type that is not int (as numpy's int64 is): it has ``__index__``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def test_integral_timestamps_and_byte_like_keys_are_sent_as_int_and_bytes(
    made: ProductPublisher,
) -> None:
    made.publish(order(0), key=bytearray(b"k1"), timestamp_ms=Millis(1_700_000_000_000))
    made.publish(order(1), key=memoryview(b"k2"), timestamp_ms=1_700_000_000_001)
    sent = made.sent  # type: ignore[attr-defined]
    assert [args[2] for args, _kwargs in sent] == [b"k1", b"k2"]
    assert all(type(args[2]) is bytes for args, _kwargs in sent)
    stamps = [kwargs["timestamp"] for _args, kwargs in sent]
    assert stamps == [1_700_000_000_000, 1_700_000_000_001]
    assert all(type(stamp) is int for stamp in stamps)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"trace": 1}, "header 'trace' must be bytes, str or None, got int 1"),
        ([("trace", 1.5)], "header 'trace' must be bytes, str or None, got float 1.5"),
        ({1: b"x"}, "header names must be str, got int 1 (headers[0])"),
        ([("a", b"x", "extra")], "headers[0] must be a (name, value) pair, got tuple"),
        (["ab"], "headers[0] must be a (name, value) pair, got str 'ab'"),
        (
            "trace=1",
            "headers must be a mapping of name to bytes, str or None, or a list of "
            "(name, value) pairs, got str 'trace=1'",
        ),
    ],
)
def test_headers_confluent_kafka_would_not_take_are_refused_by_name(
    made: ProductPublisher, headers: Any, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        made.publish(order(0), headers=headers)
    assert str(caught.value).startswith(expected)
    assert made.sent == []  # type: ignore[attr-defined]


def test_good_arguments_reach_kafka_as_confluent_kafka_takes_them(made: ProductPublisher) -> None:
    made.publish(order(0), key=b"k-0", timestamp_ms=1, headers={"a": b"1", "b": "2", "c": None})
    made.publish(order(1), key="k-1", headers=[("a", b"1"), ("a", "2"), ("c", None)])
    made.publish(order(2), timestamp_ms=1_700_000_000_000)
    made.publish(order(3), headers=(("a", b"1"),))  # a tuple of pairs: sent as a list
    sent = made.sent  # type: ignore[attr-defined]
    assert [args[2] for args, _ in sent] == [b"k-0", "k-1", "o-2", "o-3"]
    assert sent[0][1]["timestamp"] == 1
    assert sent[0][1]["headers"] == {"a": b"1", "b": "2", "c": None}
    assert sent[1][1]["headers"] == [("a", b"1"), ("a", "2"), ("c", None)]  # repeats kept
    assert sent[2][1]["timestamp"] == 1_700_000_000_000
    assert sent[3][1]["headers"] == [("a", b"1")]


# -- 4. a closed publisher -----------------------------------------------------------------


def test_a_closed_publisher_refuses_publish_many_and_flush_as_it_refuses_publish(
    client: RegistryClient,
) -> None:
    made = broker_less_publisher(client)
    made.close()
    closed = f"the publisher of {made.product.name} is closed"
    with pytest.raises(ConfigurationError, match=f"^{closed}$"):
        made.publish(order(0))
    with pytest.raises(ConfigurationError, match=f"^{closed}$"):
        made.publish_many([order(0)])
    with pytest.raises(ConfigurationError, match=f"^{closed}$"):
        made.flush()
    made.close()  # closing twice stays fine


# -- 5. open_publisher given no product name -----------------------------------------------


@pytest.mark.parametrize(
    ("product", "shown"), [(None, "None"), (5, "int 5"), (b"orders.x", "bytes b'orders.x'")]
)
def test_open_publisher_refuses_what_is_not_a_product_name(product: Any, shown: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_publisher(product, settings=MeshSettings())
    assert str(caught.value) == (
        f"product must be a product name like orders.order-placed, got {shown}"
    )


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda p: p.publish_many(None), "publish_many takes a list of records"),
        (lambda p: p.publish_many({"order_id": "o-1"}), "got dict; publish one record with"),
        (lambda p: p.flush("x"), "timeout='x' is not a number of seconds from 0 to"),
        (lambda p: p.flush(-1), "timeout=-1 is not a number of seconds from 0 to"),
        (
            lambda p: p.publish_many([], flush_timeout="1"),
            "flush_timeout='1' is not a number of seconds from 0 to",
        ),
    ],
    ids=["many-none", "many-one-dict", "flush-str", "flush-negative", "many-flush-str"],
)
def test_call_mistakes_are_configuration_errors(
    client: RegistryClient, call: Callable[[ProductPublisher], Any], said: str
) -> None:
    """publish_many(None) and flush("x") were TypeErrors from inside, publish_many of one
    dict walked its keys, and flush(-1) was taken (an SDK campaign)."""
    made = broker_less_publisher(client)
    try:
        with pytest.raises(ConfigurationError) as refused:
            call(made)
        assert said in str(refused.value)
    finally:
        made.close()


def test_settings_that_are_no_mesh_settings_are_named() -> None:
    with pytest.raises(ConfigurationError) as refused:
        open_publisher("orders.order-placed", settings={})  # type: ignore[arg-type]
    assert str(refused.value).startswith(
        "settings must be a MeshSettings (e.g. MeshSettings(), which reads MESH_*), got "
    )
    assert "dict" in str(refused.value)


def test_a_with_block_on_a_closed_publisher_is_refused(client: RegistryClient) -> None:
    """It entered without complaint, and every publish in it then failed (an SDK campaign)."""
    made = broker_less_publisher(client)
    made.close()
    with pytest.raises(ConfigurationError) as refused, made:
        pass
    assert "is closed" in str(refused.value)


def test_no_kafka_when_a_publisher_opens_is_unreachable_not_a_failed_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing was sent, so no DeliveryError (an SDK campaign): the broker is unreachable."""
    import socket
    from functools import partial

    from mesh_stream.errors import BrokerUnreachableError, DeliveryError
    from mesh_stream.kafka import topics
    from mesh_stream.kafka.connection import KafkaConnection
    from mesh_stream.registration import ensure_product_topic
    from tests.fixtures.sdk.helpers import SCHEMA_V1, new_product

    # the cluster is asked for up to 15 s; 2 s tell the same here
    monkeypatch.setattr(topics, "cluster_info", partial(topics.cluster_info, timeout=2.0))

    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed = spare.getsockname()[1]
    product = new_product("unit", schema=SCHEMA_V1)
    with pytest.raises(BrokerUnreachableError) as caught:
        ensure_product_topic(product, KafkaConnection.create(f"127.0.0.1:{closed}"))
    assert not isinstance(caught.value, DeliveryError)
    message = str(caught.value)
    assert message.startswith(f"cannot check or create topic {product.topic} for {product.name}: ")
    assert f"no Kafka broker answers at 127.0.0.1:{closed}" in message
    assert message.endswith("start Kafka with `mesh broker start` or set MESH_BOOTSTRAP_SERVERS")


@pytest.mark.parametrize("close", [False, True])
def test_flush_and_close_wait_no_longer_than_their_timeout_diagnosis_included(
    client: RegistryClient, close: bool
) -> None:
    """flush(t) and close(t) took up to t + 5 s: the cluster was asked why records were
    unacknowledged after the whole wait (h53), so a service that sized close() to its
    shutdown grace was killed in it. The question now takes a share of ``t``."""
    import time

    from mesh_stream.errors import DeliveryError

    made = broker_less_publisher(client)
    try:
        made.publish(order(0))
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            made.close(4.0) if close else made.flush(4.0)
        waited = time.monotonic() - started
        assert 3.0 <= waited < 4.0 + 0.75, waited  # the contract, with room for a slow machine
        assert "1 record(s) of orders.order-placed are not yet acknowledged by Kafka after 4s" in (
            str(caught.value)
        )
    finally:
        made._producer.purge()
        made._producer.flush(0)  # the purged record's report: nothing in flight
        made._closed = made._lifetime.closed = True
