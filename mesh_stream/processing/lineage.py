"""A processor worker's OpenLineage run: START, RUNNING every few minutes, COMPLETE or FAIL.

With ``openlineage_url`` (an HTTP endpoint, e.g. Marquez) and/or ``openlineage_topic`` (a
Kafka topic) set, :class:`LineageRun` sends the worker's run events, built by
:mod:`mesh_stream.exports.openlineage` with the worker's input and output datasets. Unset,
nothing is built and nothing runs.

Lineage is an observer: events are sent from one background thread, so a slow or dead
endpoint never slows the worker; a failure to send is logged once and the worker goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import faust
from mode import Service

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import MeshError
from mesh_stream.exports.source import ExportedProduct, KafkaServer
from mesh_stream.kafka.clients import make_producer
from mesh_stream.processing.app import ProcessorSpec
from mesh_stream.registration import ensure_internal_topic
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

log = logging.getLogger(__name__)

#: Longest the worker's stop waits for its last event to be sent.
STOP_WAIT_S = 5.0
#: Timeout of one HTTP send.
SEND_TIMEOUT_S = 5.0
#: No retries: the client's default (5, with backoff) kept a dead endpoint busy for 9 s per
#: event and urllib3 logged every retry; a lost event is followed by the next RUNNING one.
SEND_RETRY = {"total": 0, "status_forcelist": [], "allowed_methods": ["POST"]}
#: Where an OpenLineage server takes events, under its base URL (Marquez's too).
DEFAULT_ENDPOINT = "api/v1/lineage"


class _Senders:
    """Where the events go: the HTTP endpoint, the Kafka topic, or both."""

    def __init__(self, settings: MeshSettings, spec: ProcessorSpec) -> None:
        from openlineage.client.client import OpenLineageClient
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        self.client: Any = None
        self.producer: Any = None
        self.topic = settings.openlineage_topic
        if settings.openlineage_url is not None:
            base, endpoint = lineage_endpoint(settings.openlineage_url.get_secret_value())
            config = HttpConfig(
                url=base, endpoint=endpoint, timeout=SEND_TIMEOUT_S, retry=SEND_RETRY
            )
            self.client = OpenLineageClient(transport=HttpTransport(config))
        if self.topic:
            try:  # a topic the broker does not know would refuse every event
                ensure_internal_topic(spec.connection, self.topic, 1)
            except MeshError as exc:
                log.warning("%s: OpenLineage topic %s: %s", spec.app_id, self.topic, exc)
            self.producer = make_producer(spec.connection, {"linger.ms": 0})

    def send(self, event: Any, job: str) -> None:
        from openlineage.client.serde import Serde

        if self.client is not None:
            self.client.emit(event)
        if self.producer is not None and self.topic:
            self.producer.produce(self.topic, key=job.encode(), value=Serde.to_json(event))
            if self.producer.flush(SEND_TIMEOUT_S) > 0:
                raise TimeoutError(f"topic {self.topic}: not acknowledged in {SEND_TIMEOUT_S} s")


def lineage_endpoint(url: str) -> tuple[str, str]:
    """``(base, endpoint)`` for OpenLineage's HTTP transport, which posts to the base joined
    with the endpoint: a URL whose path's last segment is ``lineage`` is the endpoint itself,
    any other is a base under which ``api/v1/lineage`` is (a proxy's prefix path kept); its
    query (a token) goes with the endpoint. Given whole, the transport doubled the path and
    dropped the query (h42)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    last = path.rsplit("/", 1)[-1]
    endpoint = path if last == "lineage" else "/".join(p for p in (path, DEFAULT_ENDPOINT) if p)
    if parts.query:
        endpoint += f"?{parts.query}"
    return urlunsplit((parts.scheme, parts.netloc, "/", "", "")), endpoint


def _input_schema(spec: ProcessorSpec, product: DataProduct) -> dict[str, Any]:
    """The input's schema the worker resolved, else its latest registered one, else none
    (a spec built by hand may carry no input schemas; lineage never stops a worker)."""
    text = spec.input_schemas.get(product.name)
    if text is None:
        try:
            with RegistryClient.from_settings(spec.settings) as registry:
                text = registry.get_latest(product.value_subject).schema
        except MeshError as exc:
            log.info("%s: no schema of %s for lineage: %s", spec.app_id, product.name, exc)
            return {}
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else {}


class LineageRun(Service):
    """The run of one worker; start it with the app (see :meth:`attach`)."""

    def __init__(self, spec: ProcessorSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from mesh_stream.exports import openlineage

        self._ol = openlineage
        self.spec = spec
        self.run_id = openlineage.new_run_id()
        self.interval_s = spec.settings.openlineage_running_minutes * 60
        self.server = KafkaServer.from_connection(spec.connection)
        self.output = ExportedProduct(spec.output, json.loads(spec.output_schema))
        self.inputs = [ExportedProduct(p, _input_schema(spec, p)) for p in spec.inputs]
        self._senders = _Senders(spec.settings, spec)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openlineage")
        self._last: Future[None] | None = None
        self._warned = False
        self._failed = False

    @classmethod
    def for_worker(cls, spec: ProcessorSpec) -> LineageRun | None:
        """The worker's run, or None when no OpenLineage transport is configured."""
        settings = spec.settings
        if settings.openlineage_url is None and not settings.openlineage_topic:
            return None
        return cls(spec)

    def attach(self, app: faust.App) -> None:
        """Start with ``app`` (after its topics exist: :func:`prepare` made them)."""

        async def start_lineage_run() -> None:
            await app.add_runtime_dependency(self)

        app.task(start_lineage_run)

    def _emit(self, state: Any, error: str | None = None) -> None:
        try:
            event = self._ol.run_event(
                state, self.run_id, self.output, self.inputs, self.server, error=error
            )
        except Exception as exc:
            self._warn(exc)
            return
        self._last = self._pool.submit(self._send, event)

    def _send(self, event: Any) -> None:
        try:
            self._senders.send(event, self.spec.output.name)
        except Exception as exc:
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            text = str(exc)
            url = self.spec.settings.openlineage_url
            if url is not None:  # it may carry a token
                text = text.replace(url.get_secret_value(), "<MESH_OPENLINEAGE_URL>")
            log.warning(
                "%s: OpenLineage events not sent (%s: %s); the worker goes on, further "
                "failures are not logged",
                self.spec.app_id,
                type(exc).__name__,
                text,
            )

    async def on_started(self) -> None:
        self._emit(self._ol.RunState.START)

    @Service.task
    async def _running(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval_s)
            if not self.should_stop and not self._failed:  # FAIL is the run's last event
                self._emit(self._ol.RunState.RUNNING)

    def fail(self, reason: BaseException) -> None:
        """The worker crashed: FAIL (once), with the reason."""
        if not self._failed:
            self._failed = True
            self._emit(self._ol.RunState.FAIL, error=f"{type(reason).__name__}: {reason}")

    async def on_stop(self) -> None:
        if not self._failed:
            self._emit(self._ol.RunState.COMPLETE)
        last = self._last
        if last is not None:
            try:
                await asyncio.wait_for(asyncio.wrap_future(last), STOP_WAIT_S)
            except TimeoutError:
                self._warn(TimeoutError(f"the last event took over {STOP_WAIT_S} s"))
        self._pool.shutdown(wait=False)
