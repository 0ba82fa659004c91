"""Trace context on records: spans and ``traceparent`` headers only when a tracer provider is
configured, carried by publishers, read back by consumers, kept through a processor's
envelopes to the span its output is published under. No broker: the publisher's produce call
is replaced by one that records what it was given and reports a delivery."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from mesh_stream import tracing
from mesh_stream.consumer import ConsumedRecord
from mesh_stream.descriptor import DataProduct
from mesh_stream.health import NEWEST_INPUT_HEADER
from mesh_stream.processing import Input, Processor
from mesh_stream.processing.app import KeyedOutput
from mesh_stream.processing.engine import Aggregation
from mesh_stream.processing.rekey import TRACE, Envelope
from mesh_stream.producer import ProductPublisher
from tests.unit.registry.conftest import descriptor

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Placed",
    "namespace": "orders",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "total", "type": "long"},
    ],
}
TOPIC = "orders.order-placed.v1"
ORDER = {"order_id": "o-1", "total": 1250}


def trace_id_of(traceparent: bytes | str) -> int:
    """The trace id a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``) names."""
    text = traceparent.decode() if isinstance(traceparent, bytes) else traceparent
    version, trace_id, _span_id, _flags = text.split("-")
    assert version == "00"
    return int(trace_id, 16)


def span_id_of(traceparent: bytes | str) -> int:
    text = traceparent.decode() if isinstance(traceparent, bytes) else traceparent
    return int(text.split("-")[2], 16)


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A tracer provider exporting to memory, set for this test only (the API sets a global
    provider once per process; the monkeypatch puts the unset one back)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()


class FakeMessage:
    def __init__(self, topic: str, headers: Any) -> None:
        self._topic, self._headers = topic, headers

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41

    def topic(self) -> str:
        return self._topic

    def headers(self) -> Any:
        return self._headers

    def key(self) -> bytes:
        return b"o-1"

    def value(self) -> bytes | None:
        return None


class FakeError:
    def str(self) -> str:
        return "Local: Message timed out"

    def code(self) -> int:
        return -192


class Registry:
    """What a publisher asks the registry: register the value schema, get its id back."""

    def register_version(self, *_: Any, **__: Any) -> Any:
        class Version:
            schema_id, version, rule_set = 7, 1, None

        return Version()

    get_latest = register_version  # the same one version: it is the latest
    lookup = register_version  # already registered: a publisher looks it up first


def publisher(fail: bool = False) -> tuple[ProductPublisher, list[dict[str, Any]]]:
    """A publisher whose produce call records its arguments and reports a delivery (or a
    failure) at once, as librdkafka would on poll."""
    product = DataProduct.model_validate(descriptor(key_field="order_id"))
    made = ProductPublisher(
        product,
        bootstrap_servers="127.0.0.1:1",
        registry=Registry(),  # type: ignore[arg-type]
        schema=SCHEMA,
        create_topic=False,
    )
    sent: list[dict[str, Any]] = []

    def produce(topic: str, value: bytes, key: Any, **extra: Any) -> None:
        sent.append({"topic": topic, "value": value, "key": key, **extra})
        message = FakeMessage(topic, extra.get("headers"))
        extra["on_delivery"](FakeError() if fail else None, message)

    made._produce = produce  # type: ignore[method-assign]
    return made, sent


def test_without_a_tracer_provider_tracing_is_off_and_records_carry_no_headers() -> None:
    assert tracing.installed()
    assert not tracing.active()  # the API is installed, but nothing was configured
    made, sent = publisher()
    made.publish(ORDER)
    made.publish(ORDER, headers={"source": b"replay"})
    assert made._trace is None
    assert "headers" not in sent[0]
    assert sent[1]["headers"] == {"source": b"replay"}


def test_without_opentelemetry_every_function_answers_none(
    monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    monkeypatch.setattr(tracing, "installed", lambda: False)
    headers = {"traceparent": b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert not tracing.active()
    assert tracing.context_from(headers) is None
    assert tracing.carried(headers) is None


def test_a_published_record_gets_a_producer_span_whose_trace_its_traceparent_names(
    spans: InMemorySpanExporter,
) -> None:
    made, sent = publisher()
    made.publish(ORDER, headers={"source": b"checkout"})
    [record] = sent
    assert record["headers"]["source"] == b"checkout"  # the caller's headers stay
    traceparent = record["headers"]["traceparent"]
    [span] = spans.get_finished_spans()  # ended by the delivery report
    assert span.name == f"{TOPIC} publish"
    assert span.kind is SpanKind.PRODUCER
    assert span.context is not None
    assert trace_id_of(traceparent) == span.context.trace_id
    assert span_id_of(traceparent) == span.context.span_id
    assert span.parent is None  # no span was current: the record starts a trace
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": TOPIC,
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 41,
    }


def test_a_record_published_inside_a_span_belongs_to_its_trace(
    spans: InMemorySpanExporter,
) -> None:
    made, sent = publisher()
    with trace.get_tracer("test").start_as_current_span("checkout") as outer:
        made.publish_many([ORDER, {**ORDER, "order_id": "o-2"}])
    published = [s for s in spans.get_finished_spans() if s.name.endswith("publish")]
    assert len(published) == 2
    for span, record in zip(published, sent, strict=True):
        assert span.parent is not None
        assert span.parent.span_id == outer.get_span_context().span_id
        assert trace_id_of(record["headers"]["traceparent"]) == outer.get_span_context().trace_id


def test_a_record_published_again_continues_the_trace_its_headers_carry(
    spans: InMemorySpanExporter,
) -> None:
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    made, sent = publisher()
    made.publish(ORDER, headers={"traceparent": upstream.encode()})
    [span] = spans.get_finished_spans()
    assert span.parent is not None
    assert span.parent.span_id == span_id_of(upstream)
    assert trace_id_of(sent[0]["headers"]["traceparent"]) == trace_id_of(upstream)
    assert span_id_of(sent[0]["headers"]["traceparent"]) != span_id_of(upstream)  # ours now


def test_headers_given_as_pairs_keep_repeated_names_under_a_span(
    spans: InMemorySpanExporter,
) -> None:
    made, sent = publisher()
    made.publish(ORDER, headers=[("hop", b"a"), ("hop", b"b"), ("traceparent", b"stale")])
    [span] = spans.get_finished_spans()
    headers = sent[0]["headers"]
    assert [value for name, value in headers if name == "hop"] == [b"a", b"b"]
    [traceparent] = [value for name, value in headers if name == "traceparent"]
    assert span_id_of(traceparent) == span.context.span_id


def test_a_record_kafka_did_not_acknowledge_ends_its_span_as_failed(
    spans: InMemorySpanExporter,
) -> None:
    made, _sent = publisher(fail=True)
    made.publish(ORDER)
    [span] = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "Local: Message timed out"
    made._failed.clear()  # what flush would raise as DeliveryError


def test_a_consumed_record_gives_the_context_its_traceparent_carries() -> None:
    traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    def record(headers: dict[str, bytes]) -> ConsumedRecord:
        return ConsumedRecord("orders.order-placed", TOPIC, 0, 5, "o-1", ORDER, 1, headers, 7)

    context = record({"traceparent": traceparent, "other": b"\xff"}).trace_context
    assert context is not None
    parent = trace.get_current_span(context).get_span_context()
    assert parent.trace_id == trace_id_of(traceparent)
    assert parent.span_id == span_id_of(traceparent)
    assert parent.is_remote
    assert record({"other": b"x"}).trace_context is None
    assert record({}).trace_context is None


def test_the_envelope_keeps_traceparent_through_the_internal_topic() -> None:
    headers = [
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("tracestate", b"vendor=1"),
        ("source", b"checkout"),
    ]
    context = tracing.carried(headers)
    assert context == {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "vendor=1",
    }
    aggregation = Aggregation(
        revenue_like(), {TOPIC: "orders.order-placed"}, {}, None, lambda *_args: None
    )
    [(_key, wire)] = aggregation.route(TOPIC, 0, 3, {"order_id": "o-1", "total": 1}, 1_000)
    wire[TRACE] = context  # as the re-key stage sets it
    [(_key, [back])] = aggregation.envelopes(aggregation.encode([("all", [wire])]), None, 0, 9)
    assert back.trace == context
    assert back.fields == {"order_id": "o-1", "total": 1}
    assert tracing.carried([("source", b"checkout")]) is None  # untraced: no entry at all


def revenue_like() -> Processor:
    def add(state: dict[str, Any], event: Any) -> None:
        state["total"] = state.get("total", 0) + event.fields["total"]

    return Processor(
        output="analytics.totals",
        inputs=(
            Input("orders.order-placed", reads=("order_id", "total"), key=lambda _fields: "all"),
        ),
        apply=add,
        emit=lambda key, state: {"key": key, "total": state["total"]},
    )


def envelopes(traceparents: list[str | None]) -> list[Envelope]:
    found = []
    for index, traceparent in enumerate(traceparents):
        trace = {"traceparent": traceparent} if traceparent is not None else None
        fields = {"order_id": f"o-{index}", "total": 10}
        arrival = 1_000 + index
        found.append(
            Envelope(
                "orders.order-placed",
                TOPIC,
                0,
                index,
                arrival,
                arrival,
                fields,
                None,
                trace,
                0,
                100,
                index,
            )
        )
    return found


class Topic:
    """The output producer as KeyedOutput uses it: records what each send was given."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, topic: str, key: bytes, value: bytes, headers: dict[str, bytes]) -> None:
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})


class Encoder:
    def encode(self, record: Any) -> bytes:
        return repr(dict(record)).encode()


def keyed_output() -> tuple[KeyedOutput, Topic]:
    output = KeyedOutput.__new__(KeyedOutput)  # its encoder needs a registered schema
    topic = Topic()
    output.topic = "analytics.totals.v1"
    output.sender = topic  # type: ignore[assignment]
    output.encoder = Encoder()  # type: ignore[assignment]
    output.trace = tracing.PublishTrace("analytics.totals.v1") if tracing.active() else None
    output.key_field = None
    return output, topic


def test_an_output_is_published_under_a_span_child_of_the_newest_input_it_reflects(
    spans: InMemorySpanExporter,
) -> None:
    older = "00-11111111111111111111111111111111-1111111111111111-01"
    newest = "00-22222222222222222222222222222222-2222222222222222-01"
    output, topic = keyed_output()
    aggregation = Aggregation(
        revenue_like(), {TOPIC: "orders.order-placed"}, {}, None, output.publish
    )
    aggregation.update("all", envelopes([older, None, newest]))

    [sent] = topic.sent
    traceparent = sent["headers"]["traceparent"]
    assert trace_id_of(traceparent) == trace_id_of(newest)
    finished = {span.name: span for span in spans.get_finished_spans()}
    aggregate: ReadableSpan = finished["analytics.totals aggregate"]
    publish: ReadableSpan = finished["analytics.totals.v1 publish"]
    assert aggregate.kind is SpanKind.CONSUMER
    assert publish.kind is SpanKind.PRODUCER
    assert aggregate.parent is not None
    assert aggregate.parent.span_id == span_id_of(newest)
    assert [link.context.trace_id for link in aggregate.links] == [trace_id_of(older)]
    assert aggregate.context is not None
    assert publish.context is not None
    assert publish.parent is not None
    assert publish.parent.span_id == aggregate.context.span_id
    assert span_id_of(traceparent) == publish.context.span_id
    assert dict(aggregate.attributes or {})["messaging.batch.message_count"] == 3


def test_an_output_of_untraced_inputs_carries_no_traceparent(
    spans: InMemorySpanExporter,
) -> None:
    output, topic = keyed_output()
    aggregation = Aggregation(
        revenue_like(), {TOPIC: "orders.order-placed"}, {}, None, output.publish
    )
    aggregation.update("all", envelopes([None, None]))
    assert list(topic.sent[0]["headers"]) == [NEWEST_INPUT_HEADER]  # no trace context
    assert spans.get_finished_spans() == ()


def test_with_tracing_off_the_processor_stages_carry_nothing() -> None:
    output, topic = keyed_output()
    aggregation = Aggregation(
        revenue_like(), {TOPIC: "orders.order-placed"}, {}, None, output.publish
    )
    assert aggregation.trace is None
    assert output.trace is None
    aggregation.update(
        "all", envelopes(["00-22222222222222222222222222222222-2222222222222222-01"])
    )
    assert list(topic.sent[0]["headers"]) == [NEWEST_INPUT_HEADER]  # no trace context


def test_the_sdk_import_does_not_load_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from mesh_stream import MeshSettings, ProductConsumer, open_publisher\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
