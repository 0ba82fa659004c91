"""The consumer's own configuration mistakes stop it with an error naming the mistake; they
never dead-letter records or move the group past them (no broker needed: messages are
handed to the decode loop directly, as in test_consumer_decode.py).

A record its writer schema decodes is valid per the product's contract. A ``models`` entry
or a reader schema that cannot take it is the consumer's fault: dead-lettering such records
and committing past them would lose the group's whole input without a word.
"""

from __future__ import annotations

import gc
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Message, TopicPartition
from pydantic import BaseModel, Field, model_validator

from mesh_stream import consumer as consumer_module
from mesh_stream.consumer import ProductConsumer
from mesh_stream.errors import ConfigurationError
from mesh_stream.schema.codec import RecordEncoder
from mesh_stream.schema.models import model_from_schema
from mesh_stream.settings import MeshSettings
from tests.fixtures.sdk.helpers import SCHEMA_V1, new_product
from tests.unit.sdk.conftest import MemorySchemas, make_order

SCHEMA_ID = 4
FOREIGN_ID = 9


class FewItems(BaseModel):
    """Stricter than the contract: the schema allows any int quantity."""

    order_id: uuid.UUID
    quantity: int = Field(le=3)


class Line(BaseModel):
    sku: int  # the contract says string
    count: int


class NumericSkus(BaseModel):
    order_id: uuid.UUID
    lines: list[Line]


class Exploding(BaseModel):
    order_id: uuid.UUID

    @model_validator(mode="before")
    @classmethod
    def refuse(cls, _value: Any) -> Any:
        raise RuntimeError("lookup table not loaded")


class Harness:
    """Consumers of one fresh product; ``lettered`` collects the offsets they dead-letter."""

    def __init__(self, order_v1: dict[str, Any]) -> None:
        self.product = new_product("unit", schema=SCHEMA_V1)
        self.name = self.product.name
        self.topic = self.product.topic
        foreign = {**order_v1, "namespace": "sdktest.elsewhere"}
        self.registry = MemorySchemas(
            {SCHEMA_ID: order_v1, FOREIGN_ID: foreign},
            {SCHEMA_ID: [self.product.value_subject], FOREIGN_ID: ["orders.other.v1-value"]},
        )
        self.lettered: list[int] = []
        self.opened: list[ProductConsumer] = []

    def open(self, **options: Any) -> ProductConsumer:
        options.setdefault("from_beginning", True)  # no metadata request for new topics
        consumer = ProductConsumer(
            [self.product],
            group_id="unit",
            bootstrap_servers="127.0.0.1:9",  # never contacted: messages are handed in
            registry=self.registry,  # type: ignore[arg-type]
            config={"log_level": 0},
            root=None,
            **options,
        )

        def dead_letter(message: Any, source: Any, error: Any) -> None:
            self.lettered.append(message.offset())

        consumer._send_dead_letter = dead_letter  # type: ignore[method-assign]
        self.opened.append(consumer)
        return consumer


@pytest.fixture
def harness(order_v1: dict[str, Any]) -> Iterator[Harness]:
    found = Harness(order_v1)
    yield found
    for consumer in found.opened:
        consumer.close()


def messages(topic: str, values: list[bytes]) -> list[Message]:
    return [
        Message(topic=topic, partition=0, offset=i, key=None, value=v, timestamp=(1, 1000 + i))
        for i, v in enumerate(values)
    ]


def orders(order_v1: dict[str, Any], count: int) -> list[bytes]:
    encoder = RecordEncoder(order_v1, SCHEMA_ID)
    return [encoder.encode(make_order(i)) for i in range(count)]


# -- 1. arguments checked at construction ---------------------------------------------------


def test_a_bare_string_of_products_is_refused_not_read_letter_by_letter() -> None:
    with pytest.raises(ConfigurationError) as caught:
        ProductConsumer(
            "shop.example-event",  # type: ignore[arg-type]
            group_id="unit",
            bootstrap_servers="127.0.0.1:9",
            registry=MemorySchemas({}),  # type: ignore[arg-type]
            root=None,
        )
    assert str(caught.value).startswith(
        "products='shop.example-event' is not a list of products: give a list or tuple of "
        "product names or DataProduct descriptors (products=['shop.example-event'])"
    )


def test_settings_alone_give_the_kafka_connection_and_the_registry() -> None:
    """As open_publisher does: the public API alone (MeshSettings) makes a consumer; before,
    it asked for a KafkaConnection, which mesh_stream did not export (a design audit)."""
    settings = MeshSettings(bootstrap_servers="127.0.0.1:9", registry_url="http://127.0.0.1:1")
    product = new_product("unit", schema=SCHEMA_V1)
    consumer = ProductConsumer(
        [product],
        group_id="unit",
        settings=settings,
        from_beginning=True,
        config={"log_level": 0},
    )
    assert consumer.connection.bootstrap_servers == "127.0.0.1:9"
    assert consumer.registry.url == "http://127.0.0.1:1"
    consumer.close()
    assert consumer.registry._http.is_closed  # the client it made is its own to close


def test_a_refused_consumer_closes_the_registry_client_it_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A review found the client left open when a later argument was refused."""
    from mesh_stream.registry.client import RegistryClient

    closed: list[str] = []
    monkeypatch.setattr(RegistryClient, "close", lambda self: closed.append(self.url))
    settings = MeshSettings(bootstrap_servers="127.0.0.1:9", registry_url="http://127.0.0.1:1")
    product = new_product("unit", schema=SCHEMA_V1)
    with pytest.raises(ConfigurationError, match=r"^reads='total' is a string"):
        ProductConsumer([product], group_id="unit", settings=settings, reads="total")  # type: ignore[arg-type]
    assert closed == ["http://127.0.0.1:1"]


def test_without_settings_a_consumer_names_what_to_give() -> None:
    product = new_product("unit", schema=SCHEMA_V1)
    with pytest.raises(ConfigurationError, match=r"^no Kafka to talk to: give settings="):
        ProductConsumer([product], group_id="unit", registry=MemorySchemas({}))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"^no registry to decode with: give settings="):
        ProductConsumer([product], group_id="unit", bootstrap_servers="127.0.0.1:9")


def test_a_product_that_is_neither_a_name_nor_a_descriptor_is_named() -> None:
    with pytest.raises(ConfigurationError, match=r"^products holds 42 \(int\), neither"):
        ProductConsumer(
            ["shop.example-event", 42],  # type: ignore[list-item]
            group_id="unit",
            bootstrap_servers="127.0.0.1:9",
            registry=MemorySchemas({}),  # type: ignore[arg-type]
            root=None,
        )


@pytest.mark.parametrize(
    ("model", "shown"),
    [(dict, "dict"), (FewItems(order_id=uuid.uuid4(), quantity=1), "FewItems(order_id=")],
    ids=["dict", "an-instance"],
)
def test_a_model_that_is_not_a_pydantic_model_class_is_refused(
    harness: Harness, model: Any, shown: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        harness.open(models={harness.name: model})
    message = str(caught.value)
    assert message.startswith(f"models[{harness.name!r}] is {shown}")
    assert "not a pydantic model class: give a subclass of pydantic.BaseModel" in message
    assert harness.opened == []  # refused before any Kafka client was made


@pytest.mark.parametrize("option", ["models", "reader_schemas"])
def test_a_key_naming_no_consumed_product_is_refused_not_ignored(
    harness: Harness, order_v1: dict[str, Any], option: str
) -> None:
    value = model_from_schema(order_v1) if option == "models" else order_v1
    with pytest.raises(ConfigurationError) as caught:
        harness.open(**{option: {"orders.order-plcaed": value}})
    assert str(caught.value) == (
        f"{option} names 'orders.order-plcaed', which this consumer does not consume (it "
        f"consumes {harness.name}); key {option} by consumed product names"
    )


# -- 2. a reader schema that cannot read the product's writer schema ----------------------


def _with_required_region(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "fields": [*schema["fields"], {"name": "region", "type": "string"}]}


def _renamed(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "name": "OrderShipped"}


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (_with_required_region, "field region: added without a default"),
        (
            _renamed,
            "the record: named type renamed from record sdktest.orders.OrderPlaced to record "
            "sdktest.orders.OrderShipped",
        ),
    ],
    ids=["added-required-field", "other-record-name"],
)
@pytest.mark.parametrize("dead_letters", [True, False])
def test_a_reader_schema_that_cannot_read_the_writer_stops_the_consumer(
    harness: Harness,
    order_v1: dict[str, Any],
    change: Callable[[dict[str, Any]], dict[str, Any]],
    said: str,
    dead_letters: bool,
) -> None:
    consumer = harness.open(
        reader_schemas={harness.name: change(order_v1)}, dead_letters=dead_letters
    )
    batch = messages(harness.topic, orders(order_v1, 3))
    for _ in range(2):  # and again: nothing was moved past
        with pytest.raises(ConfigurationError) as caught:
            consumer._decode(batch)
        message = str(caught.value)
        assert message.startswith(
            f"{harness.name}: the reader schema reader_schemas[{harness.name!r}] "
        )
        assert f"cannot read the product's writer schema id {SCHEMA_ID} " in message
        assert f"(met at {harness.topic}[0]@0): {said}" in message
        assert "nothing from this record on was delivered, dead-lettered or committed" in message
        assert consumer._positions == {}
        assert harness.lettered == []


def test_a_foreign_id_the_reader_cannot_read_is_still_the_records_fault(
    harness: Harness, order_v1: dict[str, Any]
) -> None:
    """Another product's record (a foreign schema id) is dead-lettered as before, once; the
    product's own records, which the reader cannot read, stop the consumer."""
    consumer = harness.open(reader_schemas={harness.name: _with_required_region(order_v1)})
    foreign = RecordEncoder({**order_v1, "namespace": "sdktest.elsewhere"}, FOREIGN_ID)
    batch = messages(harness.topic, [foreign.encode(make_order(0)), *orders(order_v1, 2)])
    with pytest.raises(ConfigurationError) as caught:
        consumer._decode(batch)
    assert f"(met at {harness.topic}[0]@1)" in str(caught.value)
    assert harness.lettered == [0]
    assert consumer._positions == {(harness.topic, 0): 1}  # the dead letter stays handled
    sought: list[tuple[str, int, int]] = []
    consumer._seek_back = lambda first: sought.extend((*tp, o) for tp, o in first.items())  # type: ignore[method-assign]
    with pytest.raises(ConfigurationError):  # met again: the same error, no registry call
        consumer._decode(batch[1:])
    assert sought == [(harness.topic, 0, 1)]  # read again from the record, not past it
    assert harness.lettered == [0]


def test_a_reader_schema_that_reads_the_writer_still_decodes(
    harness: Harness, order_v1: dict[str, Any]
) -> None:
    region = {"name": "region", "type": "string", "default": "eu"}
    reader = {**order_v1, "fields": [*order_v1["fields"], region]}
    consumer = harness.open(reader_schemas={harness.name: reader})
    records = consumer._decode(messages(harness.topic, orders(order_v1, 3)))
    assert [r.value["region"] for r in records] == ["eu", "eu", "eu"]
    assert harness.lettered == []


# -- 3. a model that does not fit a record valid per the contract ---------------------------


@pytest.mark.parametrize("dead_letters", [True, False])
def test_a_model_refusing_a_valid_record_stops_at_it_after_the_records_before(
    harness: Harness, order_v1: dict[str, Any], dead_letters: bool
) -> None:
    consumer = harness.open(models={harness.name: FewItems}, dead_letters=dead_letters)
    batch = messages(harness.topic, orders(order_v1, 6))  # quantity i % 5 + 1: 4 at offset 3

    sought: list[dict[tuple[str, int], int]] = []
    consumer._seek_back = lambda first: sought.append(dict(first))  # type: ignore[method-assign]
    first = consumer._decode(batch)
    assert [r.offset for r in first] == [0, 1, 2]
    assert [type(r.value) for r in first] == [FewItems] * 3
    assert consumer._positions == {(harness.topic, 0): 3}
    assert sought == [{(harness.topic, 0): 3}]  # offset 3 on are read again from Kafka
    with pytest.raises(ConfigurationError) as caught:
        consumer._decode(batch[3:])  # as read again
    assert str(caught.value).startswith(
        f"{harness.topic}[0]@3: the record does not fit model FewItems "
        f"(models[{harness.name!r}]): quantity: Input should be less than or equal to 3; it "
        f"decoded with its writer schema id {SCHEMA_ID}, so it is valid per the product's "
        f"contract and the model is wrong: nothing from this record on was delivered, "
        f"dead-lettered or committed"
    )
    assert consumer._positions == {(harness.topic, 0): 3}
    assert harness.lettered == []
    assert sought[-1] == {(harness.topic, 0): 3}


def test_the_model_error_names_the_field_path(harness: Harness, order_v1: dict[str, Any]) -> None:
    consumer = harness.open(models={harness.name: NumericSkus})
    batch = messages(harness.topic, orders(order_v1, 3))[1:]  # order 1 has one line
    with pytest.raises(ConfigurationError) as caught:
        consumer._decode(batch)
    assert str(caught.value).startswith(
        f"{harness.topic}[0]@1: the record does not fit model NumericSkus "
        f"(models[{harness.name!r}]): lines.0.sku: Input should be a valid integer"
    )
    assert harness.lettered == []


def test_a_model_failing_otherwise_is_the_models_fault_too(
    harness: Harness, order_v1: dict[str, Any]
) -> None:
    consumer = harness.open(models={harness.name: Exploding})
    with pytest.raises(ConfigurationError) as caught:
        consumer._decode(messages(harness.topic, orders(order_v1, 1)))
    assert "does not fit model Exploding" in str(caught.value)
    assert "RuntimeError: lookup table not loaded" in str(caught.value)
    assert harness.lettered == []


def test_undecodable_records_still_go_to_the_dead_letter_topic_with_a_model(
    harness: Harness, order_v1: dict[str, Any]
) -> None:
    consumer = harness.open(models={harness.name: model_from_schema(order_v1)})
    good = orders(order_v1, 2)
    records = consumer._decode(messages(harness.topic, [good[0], b"\x07oops", good[1]]))
    assert [r.offset for r in records] == [0, 2]
    assert harness.lettered == [1]


# -- 4. a closed consumer -------------------------------------------------------------------


def test_reading_or_committing_after_close_names_the_closed_consumer(
    harness: Harness, order_v1: dict[str, Any]
) -> None:
    consumer = harness.open()
    consumer._decode(messages(harness.topic, orders(order_v1, 2)))
    consumer.close()
    consumer.close()  # closing twice is fine
    closed = f"the consumer of {harness.name} (group unit) is closed"
    for read in (consumer.consume, lambda: consumer.poll(0.1)):
        with pytest.raises(ConfigurationError) as caught:
            read()
        assert str(caught.value) == f"{closed}; open a new ProductConsumer to read on"
    with pytest.raises(ConfigurationError) as caught:
        consumer.commit()
    assert str(caught.value).startswith(
        f"{closed}; the records returned since the last commit ({harness.topic}[0]@2) were not "
        f"committed and the group reads them again"
    )
    with pytest.raises(ConfigurationError) as caught:  # h53: it yielded nothing, silently
        iter(consumer)
    assert str(caught.value) == f"{closed}; open a new ProductConsumer to read on"
    with pytest.raises(ConfigurationError) as caught, consumer:  # entered without complaint
        pass
    assert str(caught.value) == f"{closed}; open a new ProductConsumer to read on"


def test_committing_after_close_is_refused_though_leaving_the_group_forgot_the_positions(
    harness: Harness, order_v1: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a broker, close() leaves the group and the revocation forgets the positions: a
    commit afterwards returned None, and the records were never committed (an SDK
    campaign). It is refused, naming them, as the docs say."""
    consumer = harness.open()
    consumer._decode(messages(harness.topic, orders(order_v1, 2)))
    leave = consumer._consumer.close

    def leaving_the_group() -> None:  # what librdkafka does on a broker: revoke, then close
        consumer._on_revoke(consumer._consumer, [TopicPartition(harness.topic, 0)])
        leave()

    monkeypatch.setattr(consumer, "_consumer", SimpleNamespace(close=leaving_the_group))
    consumer.close()
    with pytest.raises(ConfigurationError) as caught:
        consumer.commit()
    assert f"({harness.topic}[0]@2) were not committed" in str(caught.value)


# -- 5. consume() arguments -------------------------------------------------------------------


@pytest.mark.parametrize("max_records", [-1, 0, 2_000_000, "x", 2.5, True, None])
def test_max_records_out_of_range_is_named_with_the_range(
    harness: Harness, max_records: Any
) -> None:
    consumer = harness.open()
    with pytest.raises(ConfigurationError) as caught:
        consumer.consume(max_records, 0.1)
    assert str(caught.value) == (
        f"max_records={max_records!r} is not a whole number from 1 to 1_000_000: it is how "
        f"many records one consume() call returns at most (default 500)"
    )


def _refusal(harness: Harness, call: Callable[[], Any]) -> str:
    """The ConfigurationError text ``call`` raises. librdkafka takes a negative timeout as
    "wait for ever", so the call runs in a thread and blocking fails the test."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test below
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        harness.opened.clear()  # blocked in librdkafka: closing it would block as well
        pytest.fail("the call blocked instead of refusing its timeout")
    [found] = outcome
    assert isinstance(found, ConfigurationError), repr(found)
    return str(found)


@pytest.mark.parametrize("timeout", [None, -1, float("nan"), float("inf"), 1e10, "1"])
def test_a_timeout_out_of_range_is_named_with_the_range(harness: Harness, timeout: Any) -> None:
    consumer = harness.open()
    expected = (
        f"timeout={timeout!r} is not a number of seconds from 0 to 2_147_483: it is how long "
        f"consume() or poll() waits for a first record (default 1.0; 0 does not wait)"
    )
    assert _refusal(harness, lambda: consumer.consume(10, timeout)) == expected
    assert _refusal(harness, lambda: consumer.poll(timeout)) == expected


def test_valid_arguments_still_consume(harness: Harness) -> None:
    consumer = harness.open()
    assert consumer.consume(1_000_000, 0) == []
    assert consumer.poll(0) is None


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"products": []}, "products is empty: give at least one product to consume"),
        ({"registry_wait_seconds": -1}, "registry_wait_seconds=-1 is not a number of seconds"),
        ({"settings": {}}, "settings must be a MeshSettings (e.g. MeshSettings()"),
        ({"config": {"no.such.setting": 1}}, 'No such configuration property: "no.such.setting"'),
        # accepted and ignored before (a campaign), where a publisher refuses acks=1
        ({"config": {"enable.auto.commit": True}}, "enable.auto.commit=True is not allowed"),
        ({"config": {"enable.auto.offset.store": "true"}}, "offset.store='true' is not allowed"),
    ],
    ids=["no-products", "negative-wait", "settings-dict", "unknown-config", "auto-commit", "store"],
)
def test_argument_mistakes_are_configuration_errors_not_raw_library_errors(
    harness: Harness, options: dict[str, Any], said: str
) -> None:
    """Each was a ValueError, an AttributeError or confluent-kafka's own KafkaException
    from deep inside (an SDK campaign)."""
    arguments: dict[str, Any] = {
        "products": [harness.product],
        "group_id": "unit",
        "bootstrap_servers": "127.0.0.1:9",
        "registry": harness.registry,
        "from_beginning": True,
        "root": None,
        **options,
    }
    with pytest.raises(ConfigurationError) as refused:
        ProductConsumer(**arguments)
    assert said in str(refused.value)


def test_decoding_a_batch_leaves_the_garbage_collector_alone(
    harness: Harness, order_v1: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process-wide state belongs to the application: the consumer once paused the GC for
    each batch, and its restore could undo another thread's gc.disable()."""

    def touched(*_args: Any) -> None:
        raise AssertionError("the consumer changed the garbage collector's state")

    for name in ("disable", "enable", "freeze", "set_threshold"):
        monkeypatch.setattr(gc, name, touched)
    consumer = harness.open()
    decoded = consumer._decode(messages(harness.topic, orders(order_v1, 5)))
    assert [record.offset for record in decoded] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("reader", "said"),
    [
        ({"type": "record"}, "(schema): a record needs a `name` (a string)"),
        (
            {
                "type": "record",
                "name": "r",
                "fields": [{"name": "a", "type": "int", "default": "z"}],
            },
            'r.a: default "z" is not an int',
        ),
        (  # Avro's lenient parse took it: every record went to the DLQ (a campaign)
            {
                "type": "record",
                "name": "r",
                "fields": [{"name": "a", "type": ["null", "string"], "default": "x"}],
            },
            'r.a: default "x" does not match the union\'s first branch (null)',
        ),
    ],
    ids=["no-name", "bad-default", "union-default"],
)
def test_an_invalid_reader_schema_names_its_product(reader: Any, said: str) -> None:
    """The second raised a SchemaError that named no product (an SDK campaign)."""
    product = new_product("unit", schema=SCHEMA_V1)
    with pytest.raises(ConfigurationError) as caught:
        ProductConsumer(
            [product],
            group_id="unit",
            bootstrap_servers="127.0.0.1:9",
            registry=MemorySchemas({}),  # type: ignore[arg-type]
            reader_schemas={product.name: reader},
            config={"log_level": 0},
        )
    message = str(caught.value)
    assert message.startswith(f"reader_schemas[{product.name!r}] is not a valid Avro schema: ")
    assert said in message


def test_a_consumer_that_cannot_reach_kafka_says_so_rather_than_read_nothing_silently(
    harness: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """h53: built against an address where no broker answers, the consumer returned [] for
    ever, which reads as "nothing to read". It still waits for the cluster (an outage, or a
    service started before Kafka), and says so once, naming the address."""
    monkeypatch.setattr(consumer_module, "TOPICS_LIST_TIMEOUT_S", 1.0)
    with caplog.at_level(logging.WARNING, logger="mesh_stream.consumer"):
        consumer = harness.open(from_beginning=False)
    assert "the consumer of group unit could not list Kafka's topics at 127.0.0.1:9" in caplog.text
    assert "it waits for the cluster and reads nothing until it answers" in caplog.text
    assert consumer.consume(10, 0.1) == []
