"""Trace context on Kafka records: W3C ``traceparent`` headers, with OpenTelemetry optional.

The one home for tracing. OpenTelemetry is imported only when a function here needs it and
only if it is installed (the ``tracing`` extra), so ``import mesh_stream`` loads nothing more.
Tracing is *active* when the OpenTelemetry API is installed and the application configured a
tracer provider (its own code, or ``opentelemetry-instrument`` reading the ``OTEL_*``
variables): mesh_stream never configures providers, exporters or propagators. Publishers and
processor stages ask :func:`active` once, when they are built; when it says no, their hot
path carries no tracing code at all.

What travels is whatever the global propagator writes (by default W3C trace context:
``traceparent`` and ``tracestate``, plus ``baggage`` when there is some):

* :class:`PublishTrace` gives each published record a PRODUCER span ``<topic> publish`` and
  its context in the record's headers;
* :func:`context_from` reads a record's headers back into a parent context;
* :func:`carried` / :class:`ProcessTrace` move the context through a processor's internal
  topic (envelope entries) to the span under which an output record is published.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "ProcessTrace",
    "PublishTrace",
    "active",
    "carried",
    "context_from",
    "in_span",
    "installed",
]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: The instrumentation scope our spans are reported under.
SCOPE = "mesh_stream"
#: Most input contexts a processing span links to besides its parent (a batch can hold
#: thousands of events of one key).
MAX_LINKS = 32

Headers = Mapping[str, bytes | str | None] | Sequence[tuple[str, bytes | str | None]]
"""Record headers as the SDK gives them (a mapping) or as Kafka clients do (pairs)."""


@functools.cache
def installed() -> bool:
    """Whether the OpenTelemetry API can be imported (asked once per process)."""
    try:
        return importlib.util.find_spec("opentelemetry.trace") is not None
    except ModuleNotFoundError:
        return False


def active() -> bool:
    """Whether records should carry trace context now: the API is installed and a tracer
    provider was configured (not the API's default, which records nothing)."""
    if not installed():
        return False
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def _tracer() -> Tracer:
    from opentelemetry import trace

    return trace.get_tracer(SCOPE)


def _as_text(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _propagated(headers: Headers | None) -> dict[str, str]:
    """The headers the global propagator reads, as text (the others are not decoded)."""
    if not headers:
        return {}
    from opentelemetry import propagate

    fields = propagate.get_global_textmap().fields
    pairs: Iterable[tuple[str, bytes | str | None]] = (
        headers.items() if isinstance(headers, Mapping) else headers
    )
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            text = _as_text(value)
            if text is not None:
                found[name] = text
    return found


def context_from(headers: Headers | None) -> Context | None:
    """The trace context a record's headers carry; None when they carry none (or
    OpenTelemetry is not installed). Use it as the parent of a span that handles the record."""
    if not headers or not installed():
        return None
    text = _propagated(headers)
    if TRACEPARENT not in text:
        return None
    from opentelemetry import propagate

    return propagate.extract(text)


def _inject(context: Context | None = None) -> dict[str, bytes]:
    from opentelemetry import propagate

    text: dict[str, str] = {}
    propagate.inject(text, context=context)
    return {name: value.encode() for name, value in text.items()}


def in_span() -> bool:
    """Whether a span is current (one started by this process or handed to it)."""
    from opentelemetry import trace

    return bool(trace.get_current_span().get_span_context().is_valid)


def carried(headers: Headers | None) -> dict[str, str] | None:
    """An input record's ``traceparent`` (and ``tracestate``) as text, for a processor's
    envelope; None when the record carries no ``traceparent``."""
    if not headers or not installed():
        return None
    text = _propagated(headers)
    if TRACEPARENT not in text:
        return None
    return {name: text[name] for name in (TRACEPARENT, TRACESTATE) if name in text}


class PublishTrace:
    """PRODUCER spans and headers for records published to one topic.

    Built only when tracing is :func:`active`. :meth:`start` opens the span of one record and
    returns its headers; the span ends with the record's delivery report
    (:meth:`reporting`) or when the caller hands it over (:meth:`end`).
    """

    def __init__(self, topic: str) -> None:
        from opentelemetry.trace import SpanKind

        self.topic = topic
        self.name = f"{topic} publish"
        self._kind = SpanKind.PRODUCER
        self._attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": topic,
        }
        self._tracer = _tracer()

    def start(self, headers: Mapping[str, bytes] | None = None) -> tuple[dict[str, bytes], Span]:
        """Open the span of one record; returns the record's headers (the caller's, plus the
        span's context) and the span.

        The span's parent is the current span; with none current, the context the caller's
        headers carry (a record published again), else the span starts a trace.
        """
        from opentelemetry import trace

        parent = context_from(headers) if headers and not in_span() else None
        span = self._tracer.start_span(
            self.name, context=parent, kind=self._kind, attributes=self._attributes
        )
        sent = dict(headers) if headers else {}
        sent.update(_inject(trace.set_span_in_context(span)))
        return sent, span

    @staticmethod
    def end(span: Span, error: BaseException | str | None = None) -> None:
        """End ``span``; with ``error``, marked failed."""
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            if isinstance(error, BaseException):
                span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()

    def reporting(self, span: Span, on_delivery: Callable[[Any, Any], None]) -> Callable[..., None]:
        """A delivery callback that ends ``span`` with the record's fate, then calls
        ``on_delivery`` (confluent-kafka's ``(error, message)``)."""

        def report(error: Any, message: Any) -> None:
            try:
                if error is None:
                    span.set_attribute(
                        "messaging.destination.partition.id", str(message.partition())
                    )
                    span.set_attribute("messaging.kafka.offset", message.offset())
                    self.end(span)
                else:
                    self.end(span, error.str())
            finally:
                on_delivery(error, message)

        return report


class ProcessTrace:
    """The span under which a processor publishes an output record (built when active).

    ``<processor output> aggregate`` (kind CONSUMER: it processes input records) is a child
    of the newest input event the output reflects and links to the other traced events of the
    batch (up to ``MAX_LINKS``); the output's own PRODUCER span is a child of it.
    """

    def __init__(self, output: str) -> None:
        from opentelemetry.trace import SpanKind

        self.name = f"{output} aggregate"
        self._kind = SpanKind.CONSUMER
        self._attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "mesh.product": output,
        }
        self._tracer = _tracer()

    @contextmanager
    def processing(self, inputs: Sequence[Mapping[str, Any]]) -> Iterator[None]:
        """The span for an output reflecting ``inputs`` (envelopes, oldest first), current
        while the block runs; no span when none of them carries a ``traceparent``."""
        traced = [wire for wire in inputs if TRACEPARENT in wire]
        if not traced:
            yield
            return
        from opentelemetry import propagate, trace

        def context_of(wire: Mapping[str, Any]) -> Context:
            entries = (TRACEPARENT, TRACESTATE)
            return propagate.extract({name: wire[name] for name in entries if name in wire})

        parent = context_of(traced[-1])
        links = []
        for wire in traced[-1 - MAX_LINKS : -1]:
            linked = trace.get_current_span(context_of(wire)).get_span_context()
            if linked.is_valid:
                links.append(trace.Link(linked))
        attributes: dict[str, str | int] = {
            **self._attributes,
            "messaging.batch.message_count": len(inputs),
        }
        with self._tracer.start_as_current_span(
            self.name, context=parent, kind=self._kind, attributes=attributes, links=links
        ):
            yield
