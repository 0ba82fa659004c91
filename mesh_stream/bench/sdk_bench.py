"""The SDK benchmark cases (a)-(j), each measured in a fresh process.

Writing: (a) raw ``produce`` of pre-encoded bytes, (b) the best hand-written loop
(fastavro schemaless + 5-byte header + ``produce``), (c) confluent-kafka's
``SerializingProducer`` + ``AvroSerializer``, (d) our publisher with dicts, (e) our
publisher with pydantic models, (j) our publisher with dicts and 3 CEL quality rules (the
cost of rules is j against d, issue 14). Reading: (f) raw ``consume``, (g) a hand-written fastavro
decode loop, (h) ``DeserializingConsumer`` + ``AvroDeserializer``, (i) our consumer.

Every case uses the same broker, the same ~200-byte records and the same producer settings
(acks=all, idempotence, linger 5 ms, lz4). Each runs in its own process (``python -m
mesh_stream.bench.sdk_bench CASE CONFIG_JSON``) so that its peak RSS is its own. The timed part
starts after a warm-up (connections, schema registration, group join) and ends when the
last record is acknowledged (writes) or decoded (reads).
"""

from __future__ import annotations

import io
import json
import resource
import struct
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import fastavro
from confluent_kafka import DeserializingConsumer, SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import StringDeserializer, StringSerializer

from mesh_stream.bench.cases import READ_CASES, WRITE_CASES
from mesh_stream.consumer import ProductConsumer
from mesh_stream.descriptor import DataProduct
from mesh_stream.kafka.clients import make_consumer, make_producer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.producer import DEFAULT_PRODUCER_CONFIG, FIXED_PRODUCER_CONFIG, ProductPublisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.models import model_from_schema
from mesh_stream.settings import shown_url

#: The benchmark record's schema, package data next to this module (works from a wheel).
SCHEMA_RESOURCE = "order_event.avsc"
LABELS = {
    "a": "raw confluent-kafka produce (pre-encoded bytes)",
    "b": "hand-written fastavro + header + produce",
    "c": "confluent-kafka SerializingProducer + AvroSerializer",
    "d": "mesh-stream publisher, dicts",
    "e": "mesh-stream publisher, pydantic models",
    "f": "raw confluent-kafka consume",
    "g": "hand-written fastavro decode loop",
    "h": "confluent-kafka DeserializingConsumer + AvroDeserializer",
    "i": "mesh-stream consumer, dicts",
    "j": "mesh-stream publisher, dicts, 3 CEL rules",
}
#: The quality rules of case (j): every benchmark record passes them, so all are evaluated.
BENCH_RULES = (
    {"name": "amount-not-negative", "expr": "message.amount_cents >= 0"},
    {"name": "known-currency", "expr": "message.currency in ['EUR', 'USD', 'GBP']"},
    {
        "name": "discount-is-a-rate",
        "expr": "message.discount_rate >= 0.0 && message.discount_rate <= 1.0",
        "on_failure": "DLQ",
    },
)
POLL_EVERY = 256
BATCH = 1000


def schema() -> dict[str, Any]:
    text = resources.files("mesh_stream.bench").joinpath(SCHEMA_RESOURCE)
    document: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return document


def make_record(index: int) -> dict[str, Any]:
    """A realistic order event; values vary with ``index`` so no two records are equal."""
    return {
        "order_id": str(uuid.UUID(int=index + 1)),
        "customer_id": f"customer-{index % 50_000:08d}",
        "placed_at": 1_767_225_600_000 + index * 37,
        "status": ("PLACED", "PAID", "SHIPPED", "CANCELLED")[index % 4],
        "currency": ("EUR", "USD", "GBP")[index % 3],
        "amount_cents": 1_999 + index % 100_000,
        "item_count": 1 + index % 9,
        "sales_channel": ("web-storefront-eu", "mobile-app-ios", "partner-api")[index % 3],
        "shipping_address": (
            f"{index % 999} Long Example Street, Apartment {index % 50}, "
            f"{10_000 + index % 89_999} Example City, Exampleland"
        ),
        "express": index % 5 == 0,
        "discount_rate": (index % 20) / 100,
        "note": None if index % 3 == 2 else f"please ring the bell twice, order {index}",
    }


def producer_config(bootstrap: str) -> dict[str, Any]:
    """The settings every write case shares (the SDK's defaults, which it cannot weaken),
    rendered by the one Kafka connection (so the baselines connect as the SDK does)."""
    return KafkaConnection.create(bootstrap).librdkafka_config(
        {**DEFAULT_PRODUCER_CONFIG, **FIXED_PRODUCER_CONFIG}
    )


def bench_product(topic_name: str, *, rules: bool = False) -> DataProduct:
    """The benchmark's product (with :data:`BENCH_RULES` when ``rules``)."""
    return DataProduct.model_validate(
        {
            "name": topic_name,
            "domain": topic_name.split(".", 1)[0],
            "kind": "source-aligned",
            "description": "Benchmark product.",
            "owner": {"team": "bench", "contact": "bench@example.com"},
            "schema": SCHEMA_RESOURCE,
            "key_field": "order_id",
            "partitions": 3,
            "slos": {"freshness_seconds": 60, "availability": 99},
            "classification": "internal",
            "rules": list(BENCH_RULES) if rules else [],
        }
    )


@dataclass
class Config:
    """What the parent process hands to each case."""

    bootstrap_servers: str
    registry_url: str
    principal: str | None
    token: str | None
    records: int
    warmup: int
    product: str  # product name; its topic is `<product>.v1`
    read_product: str  # the product whose topic the read cases read


@dataclass
class CaseResult:
    case: str
    label: str
    records: int
    seconds: float
    msgs_per_s: float
    cpu_us_per_record: float  # CPU time of the whole process (all threads) per record
    peak_rss_mb: float
    registry_calls: int | None  # HTTP calls to the registry during the timed part


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Counter:
    """A delivery callback shared by every record (what a careful hand-written loop does)."""

    def __init__(self) -> None:
        self.errors = 0

    def __call__(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors += 1


def _produce_loop(producer: Any, send: Callable[[int], None], start: int, count: int) -> None:
    poll = producer.poll
    for index in range(start, start + count):
        while True:
            try:
                send(index)
                break
            except BufferError:
                poll(0.05)
        if index % POLL_EVERY == 0:
            poll(0)


def _timed_writes(
    producer: Any, send: Callable[[int], None], config: Config, counter: _Counter
) -> tuple[float, float]:
    _produce_loop(producer, send, 0, config.warmup)
    assert producer.flush(60) == 0
    records = [make_record(i) for i in range(2)]  # keep the allocator warm, not timed
    del records
    started, cpu_started = time.perf_counter(), time.process_time()
    _produce_loop(producer, send, config.warmup, config.records)
    remaining = producer.flush(120)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if remaining or counter.errors:
        raise RuntimeError(f"{remaining} undelivered, {counter.errors} failed deliveries")
    return elapsed, cpu


def _registry(config: Config) -> RegistryClient:
    return RegistryClient(config.registry_url, principal=config.principal, token=config.token)


def _confluent_registry(config: Config) -> SchemaRegistryClient:
    conf: dict[str, Any] = {"url": config.registry_url}
    if config.principal and config.token:
        conf["basic.auth.user.info"] = f"{config.principal}:{config.token}"
    return SchemaRegistryClient(conf)


def run_write(case: str, config: Config) -> CaseResult:
    total = config.warmup + config.records
    records = [make_record(i) for i in range(total)]
    topic = bench_product(config.product).topic
    counter = _Counter()
    calls: Callable[[], int | None] = lambda: None  # noqa: E731
    if case in ("a", "b"):
        parsed = fastavro.parse_schema(schema())
        with _registry(config) as client:
            schema_id = client.register_schema(f"{topic}-value", schema())
        producer: Any = make_producer(
            KafkaConnection.create(config.bootstrap_servers),
            {**DEFAULT_PRODUCER_CONFIG, **FIXED_PRODUCER_CONFIG},
        )
        produce = producer.produce
        header = struct.pack(">bI", 0, schema_id)
        if case == "a":
            encoded = []
            for record in records:
                buffer = io.BytesIO()
                buffer.write(header)
                fastavro.schemaless_writer(buffer, parsed, record)
                encoded.append(buffer.getvalue())
            keys = [record["order_id"] for record in records]

            def send(index: int) -> None:
                produce(topic, encoded[index], keys[index], on_delivery=counter)
        else:
            writer = fastavro.schemaless_writer

            def send(index: int) -> None:
                record = records[index]
                buffer = io.BytesIO()
                buffer.write(header)
                writer(buffer, parsed, record)
                produce(topic, buffer.getvalue(), record["order_id"], on_delivery=counter)

    elif case == "c":
        serializer = AvroSerializer(
            _confluent_registry(config), json.dumps(schema()), conf={"auto.register.schemas": True}
        )
        producer = SerializingProducer(
            {
                **producer_config(config.bootstrap_servers),
                "key.serializer": StringSerializer("utf_8"),
                "value.serializer": serializer,
            }
        )
        produce = producer.produce

        def send(index: int) -> None:
            record = records[index]
            produce(topic, key=record["order_id"], value=record, on_delivery=counter)

    else:
        client = _registry(config)
        publisher = ProductPublisher(
            bench_product(config.product, rules=case == "j"),
            bootstrap_servers=config.bootstrap_servers,
            registry=client,
            schema=schema(),
        )
        if case == "j" and (publisher.rules is None or len(publisher.rules.checks) != 3):
            raise RuntimeError(
                f"the registry at {shown_url(config.registry_url)} did not keep the ruleSet "
                "registered with the schema, so case (j) would measure no rules"
            )
        producer = publisher._producer
        calls = lambda: client.http_calls  # noqa: E731
        if case == "e":
            model = model_from_schema(schema())
            items: list[Any] = [model.model_validate(record) for record in records]
        else:
            items = records
        publish = publisher.publish

        def send(index: int) -> None:
            publish(items[index])

    before_timed: list[int | None] = []

    def send_and_mark(index: int) -> None:
        if index == config.warmup:
            before_timed.append(calls())
        send(index)

    elapsed, cpu = _timed_writes(producer, send_and_mark, config, counter)
    if case in ("d", "e", "j"):
        publisher.flush()  # raises DeliveryError on any failure the SDK saw
        publisher.close()
    after = calls()
    used = None if after is None or before_timed[0] is None else after - before_timed[0]
    return CaseResult(
        case,
        LABELS[case],
        config.records,
        elapsed,
        config.records / elapsed,
        cpu / config.records * 1e6,
        _peak_rss_mb(),
        used,
    )


def _consumer_config(config: Config) -> dict[str, Any]:
    return KafkaConnection.create(config.bootstrap_servers).librdkafka_config(
        {
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def run_read(case: str, config: Config) -> CaseResult:
    topic = bench_product(config.read_product).topic
    total = config.warmup + config.records
    calls: Callable[[], int | None] = lambda: None  # noqa: E731
    seen = 0
    checksum = 0

    if case in ("f", "g"):
        consumer: Any = make_consumer(
            KafkaConnection.create(config.bootstrap_servers), _consumer_config(config)
        )
        consumer.subscribe([topic])
        writers: dict[int, Any] = {}
        client = _registry(config)
        reader = fastavro.schemaless_reader
        unpack = struct.Struct(">I").unpack_from

        def read_batch(wanted: int) -> int:
            nonlocal checksum
            batch = consumer.consume(num_messages=wanted, timeout=1.0)
            if case == "f":
                for message in batch:
                    checksum += len(message.value())
                return len(batch)
            for message in batch:
                value = message.value()
                schema_id = unpack(value, 1)[0]
                writer = writers.get(schema_id)
                if writer is None:
                    writer = writers[schema_id] = fastavro.parse_schema(
                        json.loads(client.get_schema(schema_id))
                    )
                body = io.BytesIO(value)
                body.seek(5)
                decoded: Any = reader(body, writer, None)
                checksum += decoded["item_count"]
            return len(batch)

    elif case == "h":
        consumer = DeserializingConsumer(
            {
                **_consumer_config(config),
                "key.deserializer": StringDeserializer("utf_8"),
                "value.deserializer": AvroDeserializer(_confluent_registry(config)),
            }
        )
        consumer.subscribe([topic])

        def read_batch(wanted: int) -> int:
            nonlocal checksum
            count = 0
            for _ in range(wanted):
                message = consumer.poll(0.2 if count == 0 else 0)
                if message is None:
                    break
                checksum += message.value()["item_count"]
                count += 1
            return count

    else:
        client = _registry(config)
        consumer = ProductConsumer(
            [bench_product(config.read_product)],
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            bootstrap_servers=config.bootstrap_servers,
            registry=client,
            from_beginning=True,
        )
        calls = lambda: client.http_calls  # noqa: E731

        def read_batch(wanted: int) -> int:
            nonlocal checksum
            records = consumer.consume(wanted, 1.0)
            for record in records:
                checksum += record.value["item_count"]
            return len(records)

    deadline = time.monotonic() + 120
    # Never ask for more than is left: consume(n) waits up to its timeout for n records,
    # and a last batch asking past the end of the topic would time that wait, not decoding.
    while seen < config.warmup and time.monotonic() < deadline:
        seen += read_batch(min(BATCH, config.warmup - seen))
    before = calls()
    started, cpu_started = time.perf_counter(), time.process_time()
    while seen < total and time.monotonic() < deadline:
        seen += read_batch(min(BATCH, total - seen))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    after = calls()
    consumer.close()
    if seen < total:
        raise RuntimeError(f"read only {seen} of {total} records from {topic}")
    timed = seen - config.warmup
    used = None if after is None or before is None else after - before
    return CaseResult(
        case, LABELS[case], timed, elapsed, timed / elapsed, cpu / timed * 1e6, _peak_rss_mb(), used
    )


def run_case(case: str, config: Config) -> CaseResult:
    if case in WRITE_CASES:
        return run_write(case, config)
    if case in READ_CASES:
        return run_read(case, config)
    raise ValueError(f"unknown case {case!r}; choose one of a-j")


def main(argv: list[str]) -> None:
    """``python -m mesh_stream.bench.sdk_bench CASE CONFIG_JSON``: print the result as JSON."""
    case, raw = argv[1], argv[2]
    result = run_case(case, Config(**json.loads(raw)))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main(sys.argv)
