"""``GET /metrics`` (Prometheus text format) and the access log: what operators watch.

Each app has its own ``CollectorRegistry``, so several registries in one process (tests,
``mesh verify``) never share or collide on a metric. Requests are labelled by route
*template* (``/subjects/{subject}/versions``), method and status, never by the raw path, so
a client cannot grow the label set; a path no route matches is ``(unmatched)``.

Metrics (all prefixed ``mesh_registry_``):

* ``requests_total{method,route,status}`` and ``request_duration_seconds{method,route}``
  (a histogram), for every request, those the edge or a follower's forwarding answers too;
* ``store_write_duration_seconds{stage}``: ``append`` (a whole write: waiting for its turn,
  the Kafka transaction, its record applied back) and ``commit`` (the transaction alone);
* ``replay_duration_seconds`` (once the start-up replay is done) and ``replayed`` (0/1);
* ``log_records_applied_total`` and ``state_entries{kind}``: what the registry holds
  (``schemas``, ``subjects``, ``versions``, ``products``, ``consumer_groups``,
  ``credentials``, ``subject_configs``);
* ``role{role}``: 1 on the ``writer`` or ``follower`` series this instance is.

The access log is one info line per request on the ``mesh_stream.registry.access`` logger,
with the fields ``method``, ``path`` (no query string), ``route``, ``status``,
``duration_ms`` and ``client`` (its address): never a header, so never a credential.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mesh_stream.registry.service.state import RegistryState
from mesh_stream.registry.service.store import RegistryStore

__all__ = ["ACCESS_LOGGER", "RegistryMetrics", "RequestObserver", "install", "router"]

#: The access log's logger: one info line per request.
ACCESS_LOGGER = "mesh_stream.registry.access"
#: The status logged and counted for a request whose client hung up before any answer
#: (nginx's "client closed request"); never sent, nobody is there to read it.
CLIENT_LEFT = 499
access_log = logging.getLogger(ACCESS_LOGGER)

#: The ``route`` label of a request no route matches (a scanner's probes, typos).
UNMATCHED = "(unmatched)"
#: Methods kept as labels; any other (a client can send ``FOO``) is counted as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Longest request path an access line repeats (a hostile URL is not logged whole).
MAX_LOGGED_PATH = 300
#: A registry write: a Kafka transaction plus its record read back, milliseconds to seconds.
WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

router = APIRouter(tags=["meta"])


class RegistryMetrics:
    """The metrics of one registry app, in a registry of their own."""

    def __init__(self, state: RegistryState, store: RegistryStore) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mesh_registry_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mesh_registry_request_duration_seconds",
            "Time from a request's arrival to its answer's last byte, by method and route.",
            ["method", "route"],
            registry=self.registry,
        )
        self.store_writes = Histogram(
            "mesh_registry_store_write_duration_seconds",
            "Registry writes: `append` is the whole write (its turn, the transaction, its "
            "record read back), `commit` the Kafka transaction alone.",
            ["stage"],
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(state, store))
        observe = getattr(store, "observe_writes", None)
        if callable(observe):
            observe(lambda stage, seconds: self.store_writes.labels(stage).observe(seconds))

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Read at each scrape: the registry state's sizes, the replay and the role."""

    def __init__(self, state: RegistryState, store: RegistryStore) -> None:
        self.state = state
        self.store = store

    def collect(self) -> Iterator[Any]:
        state, store = self.state, self.store
        entries = GaugeMetricFamily(
            "mesh_registry_state_entries",
            "Entries of the registry's in-memory state, by kind.",
            labels=["kind"],
        )
        versions = state.version_items()
        for kind, size in (
            ("schemas", len(state.schemas)),
            ("subjects", len(versions)),
            ("versions", sum(len(by_number) for _, by_number in versions)),
            ("products", len(state.products)),
            ("consumer_groups", sum(len(groups) for groups in list(state.consumers.values()))),
            ("credentials", len(state.credentials)),
            ("subject_configs", len(state.configs)),
        ):
            entries.add_metric([kind], size)
        yield entries
        yield CounterMetricFamily(
            "mesh_registry_log_records_applied",
            "Registry log records applied to this instance's state (replay and tail).",
            value=state.applied,
        )
        replayed = store.starting() is None
        yield GaugeMetricFamily(
            "mesh_registry_replayed",
            "1 once the start-up replay of the registry log is done, else 0.",
            value=1 if replayed else 0,
        )
        replay_seconds = getattr(store, "replay_seconds", None)
        if isinstance(replay_seconds, (int, float)):
            yield GaugeMetricFamily(
                "mesh_registry_replay_duration_seconds",
                "How long the start-up replay of the registry log took.",
                value=replay_seconds,
            )
        is_writer = getattr(store, "is_writer", None)
        writer = bool(is_writer()) if callable(is_writer) else replayed  # alone: the writer
        role = GaugeMetricFamily(
            "mesh_registry_role",
            "1 on the role this instance has now: writer (takes writes) or follower "
            "(serves reads, forwards writes).",
            labels=["role"],
        )
        role.add_metric(["writer"], 1 if writer else 0)
        role.add_metric(["follower"], 0 if writer else 1)
        yield role


class RequestObserver:
    """ASGI middleware (outermost): counts, times and access-logs every HTTP request."""

    def __init__(
        self, app: ASGIApp, metrics: RegistryMetrics, routes: Callable[[], Sequence[Any]]
    ) -> None:
        """``routes`` gives the app's routes, flat (each with ``path`` and ``matches``); it is
        asked once, at the first request answered before routing."""
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self._flat_routes: Sequence[Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: an exception reaches the server's handler
        answered = False
        left = False

        async def observed_send(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = int(message["status"])
                answered = True
            await send(message)

        async def observed_receive() -> Message:
            nonlocal left
            message = await receive()
            left = left or message["type"] == "http.disconnect"
            return message

        try:
            await self.app(scope, observed_receive, observed_send)
        finally:
            if left and not answered:  # h52: a client that hung up was counted as a 500
                status = CLIENT_LEFT
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = str(scope.get("method", "")).upper()
        method = method if method in METHODS else "other"
        route = self._route(scope)
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.latency.labels(method, route).observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            raw = str(scope.get("path", ""))
            # a CR, LF or escape sequence in a URL must not forge a log line or reach a
            # terminal; a backslash is escaped too, so an escape reads one way only
            path = "".join(
                c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in raw[:MAX_LOGGED_PATH]
            )
            if len(raw) > MAX_LOGGED_PATH:
                path = f"{path}...({len(raw)} characters)"
            client = scope.get("client")
            address = str(client[0]) if client else "-"
            duration_ms = round(seconds * 1000, 2)
            access_log.info(
                "%s %s -> %d in %.1f ms from %s",
                method,
                path,
                status,
                duration_ms,
                address,
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                    "client": address,
                },
            )

    def _route(self, scope: Scope) -> str:
        """The matched route's template; a request answered before routing is matched here."""
        matched = scope.get("route")
        if matched is None:
            if self._flat_routes is None:
                self._flat_routes = self.routes()
            partial = None
            for candidate in self._flat_routes:
                match, _ = candidate.matches(scope)
                if match is Match.FULL:
                    matched = candidate
                    break
                if match is Match.PARTIAL and partial is None:
                    partial = candidate
            matched = matched or partial
        path = getattr(matched, "path", None)
        return path if isinstance(path, str) else UNMATCHED


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format), no credential needed",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    registry_metrics: RegistryMetrics = request.app.state.metrics
    return Response(registry_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, state: RegistryState, store: RegistryStore) -> RegistryMetrics:
    """Serve ``/metrics`` on ``app`` and observe every request; call after the other
    middleware is added, so the observer is outermost and sees every answer."""
    registry_metrics = RegistryMetrics(state, store)
    app.state.metrics = registry_metrics
    app.include_router(router)
    app.add_middleware(
        RequestObserver,
        metrics=registry_metrics,
        routes=lambda: list(iter_route_contexts(app.routes)),
    )
    return registry_metrics
