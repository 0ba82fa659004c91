"""The registry under broker outages, bad records and start-up, on a broker of the test's own.

* the broker goes away while a write is pending: that write answers 503, readiness says
  "not ready" while the writer is recreated, and once the broker is back the registry
  recovers by itself: the next write succeeds with the next id, nothing half-written;
* the broker is down while the registry is idle: readiness says Kafka is unreachable,
  writes answer 503 before a client stops waiting (nothing stored), and both recover when
  it returns;
* a record that cannot be encoded (lone surrogate) is a 422 and one Kafka refuses (too
  large) aborts its transaction: neither leaves the store stuck;
* during start-up replay every route but /health answers 503 and /health/ready says how
  far the replay is.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from mesh_stream.broker import LocalCluster
from mesh_stream.errors import (
    RegistryUnavailableError,
    RequestTooLargeError,
    UnencodableInputError,
)
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.error_codes import status_and_code
from mesh_stream.registry.service.app import create_app
from mesh_stream.registry.service.kafka_store import KafkaStore
from mesh_stream.registry.service.schemas import SchemaRegistry
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.registry.service.state import Record
from tests.conftest import KafkaAddress
from tests.integration.own_broker import own_cluster, running, transactions_ready

pytestmark = pytest.mark.chaos

SUBJECT = "orders.outage.v1-value"


def _schema(n: int) -> str:
    """Version n adds optional field f<n>: every version is BACKWARD compatible."""
    fields: list[dict[str, Any]] = [{"name": "id", "type": "string", "doc": "Order id."}]
    fields += [
        {"name": f"f{i}", "type": ["null", "long"], "default": None, "doc": f"Field {i}."}
        for i in range(2, n + 1)
    ]
    return json.dumps({"type": "record", "name": "Order", "namespace": "orders", "fields": fields})


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A one-node cluster on free ports that these tests stop and start at will."""
    with own_cluster(tmp_path_factory.mktemp("registry-outage")) as cluster:
        yield cluster


class OutageAtCommit(KafkaStore):
    """A real Kafka store whose broker is stopped while the next transaction is open.

    The outage is real (the broker process stops); only its moment is chosen: after the
    write's checks, before its records are produced and committed.
    """

    def __init__(self, cluster: LocalCluster, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.outage_next = False

    def _transact(self, encoded: list[tuple[bytes, bytes | None]]) -> int:
        if self.outage_next:
            self.outage_next = False
            self.cluster.stop()
        return super()._transact(encoded)


@contextmanager
def serve(store: KafkaStore, *, wait_for_replay: bool = True) -> Iterator[httpx.Client]:
    app = create_app(store, wait_for_replay=wait_for_replay)
    server = RegistryServer(app)
    try:
        with httpx.Client(base_url=server.start(), timeout=120.0) as http:
            yield http
    finally:
        server.stop()
        store.close()


def register(http: httpx.Client, n: int) -> httpx.Response:
    """Register version ``n`` as a client does: a 50302 answer (written, not yet read back
    from a broker that just came back) is asked again after its Retry-After, for up to 30 s;
    the registration is idempotent, so the same id comes back."""
    deadline = time.monotonic() + 30
    while True:
        answer = http.post(f"/subjects/{SUBJECT}/versions", json={"schema": _schema(n)})
        if answer.status_code != 503 or time.monotonic() > deadline:
            return answer
        if answer.json().get("error_code") != 50302 or "not read back" not in answer.text:
            return answer
        time.sleep(float(answer.headers.get("retry-after", "1")))


def wait_ready(http: httpx.Client, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get("/health/ready")
        if answer.status_code == 200 or time.monotonic() > deadline:
            body: dict[str, Any] = answer.json()
            assert answer.status_code == 200, body
            return body
        time.sleep(0.5)


def test_broker_down_while_a_write_is_pending_then_the_registry_recovers_by_itself(
    own_broker: LocalCluster,
) -> None:
    bootstrap = running(own_broker)
    topic = f"_mesh_registry-outage-{uuid.uuid4().hex[:8]}"
    writer = f"writer-{uuid.uuid4().hex[:8]}"
    transactions_ready(bootstrap, writer)
    store = OutageAtCommit(own_broker, bootstrap, topic=topic, transactional_id=writer, timeout=5)
    with serve(store) as http:
        first = register(http, 1)
        assert first.json() == {"id": 1, "version": 1, "subject": SUBJECT, "guid": ANY}
        ready = http.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert (ready.json()["topic"], ready.json()["writer_id"]) == (topic, writer)

        store.outage_next = True
        failed = register(http, 2)
        assert failed.status_code == 503, failed.text
        assert failed.json()["error_code"] == 50302
        message = failed.json()["message"]
        assert message.startswith(f"registry write to '{topic}' on {bootstrap} failed: ")
        assert "Kafka is unreachable or too slow (timeout 5s)" in message
        assert "The registry recreates its writer by itself" in message

        assert http.get("/health").json() == {"status": "alive"}
        not_ready = http.get("/health/ready")
        assert not_ready.status_code == 503
        assert not_ready.json()["status"] == "not ready"
        assert not_ready.json()["reason"].startswith(
            "the registry writer is being recreated after: "
        )
        again = register(http, 2)
        assert again.status_code == 503, again.text
        assert again.json()["error_code"] == 50302
        # Reads keep working from the replayed view.
        assert http.get(f"/subjects/{SUBJECT}/versions").json() == [1]

        running(own_broker)
        assert wait_ready(http)["status"] == "ready"
        second = register(http, 2)
        assert second.status_code == 200, second.text
        assert second.json() == {"id": 2, "version": 2, "subject": SUBJECT, "guid": ANY}
        third = register(http, 3)
        assert third.json() == {"id": 3, "version": 3, "subject": SUBJECT, "guid": ANY}
        assert http.get(f"/subjects/{SUBJECT}/versions").json() == [1, 2, 3]
        for n in (1, 2, 3):
            stored = http.get(f"/schemas/ids/{n}").json()["schema"]
            assert json.loads(stored)["fields"] == json.loads(_schema(n))["fields"]

    # A fresh replay of the log agrees: the write that failed left nothing behind.
    fresh = KafkaStore(bootstrap, topic=topic, transactional_id=writer, timeout=30)
    core = SchemaRegistry(fresh)
    fresh.open(core.state.apply)
    try:
        assert core.versions(SUBJECT) == [1, 2, 3]
        assert sorted(core.state.schemas) == [1, 2, 3]
    finally:
        fresh.close()


def test_broker_down_while_idle_is_not_ready_and_writes_resume_when_it_is_back(
    own_broker: LocalCluster,
) -> None:
    bootstrap = running(own_broker)
    topic = f"_mesh_registry-idle-{uuid.uuid4().hex[:8]}"
    transactions_ready(bootstrap, f"w-{topic}")
    # The store's default Kafka timeout (30 s): a write must still be refused before a
    # client stops waiting, or the client reports a failure the registry may later undo.
    store = KafkaStore(bootstrap, topic=topic, transactional_id=f"w-{topic}")
    client_wait = inspect.signature(RegistryClient).parameters["timeout"].default
    with serve(store) as http:
        assert register(http, 1).json()["id"] == 1
        own_broker.stop()
        not_ready = http.get("/health/ready")
        assert not_ready.status_code == 503
        assert not_ready.json()["reason"].startswith(f"Kafka at {bootstrap} is unreachable: ")
        asked = time.monotonic()
        refused = register(http, 2)
        assert time.monotonic() - asked < client_wait, "refused after the client gave up"
        assert refused.status_code == 503, refused.text
        assert refused.json()["error_code"] == 50302
        assert refused.json()["message"].startswith(
            f"cannot read the end offset of registry topic '{topic}' from {bootstrap}: "
        )
        running(own_broker)
        wait_ready(http)
        assert register(http, 2).json() == {"id": 2, "version": 2, "subject": SUBJECT, "guid": ANY}


def test_unencodable_and_refused_records_abort_and_leave_the_store_usable(
    kafka: KafkaAddress,
) -> None:
    topic = f"_mesh_registry-bad-{uuid.uuid4().hex[:8]}"
    store = KafkaStore(kafka.bootstrap_servers, topic=topic, transactional_id=f"w-{topic}")
    core = SchemaRegistry(store)
    store.open(core.state.apply)
    try:
        surrogate = Record(("product", "orders.x"), {"descriptor": {"description": "\ud800"}})
        with pytest.raises(UnencodableInputError) as bad:
            store.append([surrogate])
        assert status_and_code(bad.value) == (422, 42216)
        assert bad.value.message == (
            "the request holds text that cannot be stored as UTF-8: '\\ud800' at character 30 "
            "of the product record ['orders.x'] (surrogates not allowed); send valid Unicode "
            "(a lone surrogate such as \\ud800 is not)"
        )
        huge = Record(("product", "orders.huge"), {"descriptor": {"description": "x" * 2**21}})
        with pytest.raises(RequestTooLargeError) as large:
            store.append([Record(("config", "a"), {"compatibility": "FULL"}), huge])
        assert status_and_code(large.value) == (413, 41301)
        assert large.value.message.startswith(
            f"a registry record is larger than Kafka accepts on {topic!r} ("
        )
        # Neither left a transaction open: writes of every kind still work, ids go on.
        assert core.register(SUBJECT, _schema(1)).schema_id == 1
        assert core.register("payments.other.v1-value", _schema(2)).schema_id == 2
        assert core.state.configs == {}
        assert core.state.products == {}
    finally:
        store.close()


def test_during_start_up_replay_only_health_answers(kafka: KafkaAddress) -> None:
    """A big log replays in the background; meanwhile readiness says how far it is."""
    topic = f"_mesh_registry-replay-{uuid.uuid4().hex[:8]}"
    from mesh_stream.bench.registry_scale import fill_topic, subject_name

    subjects = 60_000
    texts = fill_topic(kafka.bootstrap_servers, topic, subjects)
    store = KafkaStore(
        kafka.bootstrap_servers, topic=topic, transactional_id=f"w-{topic}", timeout=60
    )
    with serve(store, wait_for_replay=False) as http:
        early = http.get("/health/ready")
        assert early.status_code == 503
        assert early.json()["status"] == "not ready"
        # Before the end offset is known the probe says so; then it counts records.
        finding_end = f"replaying the registry log: reading where {topic} ends"
        while (reason := early.json()["reason"]) == finding_end:
            early = http.get("/health/ready")
        assert early.status_code == 503, early.text
        assert reason.startswith("replaying the registry log: ")
        assert reason.endswith(f" of {2 * subjects:,} records of {topic}")
        blocked = http.get("/subjects")
        assert blocked.status_code == 503
        assert blocked.json()["error_code"] == 50302
        assert blocked.json()["message"].startswith(
            "the registry is starting (replaying the registry log: "
        )
        assert http.get("/health").status_code == 200
        wait_ready(http)
        assert len(http.get("/subjects").json()) == subjects
        last = http.get(f"/subjects/{subject_name(subjects - 1)}/versions/1").json()
        assert (last["id"], last["schema"]) == (subjects, texts[subjects])


def test_failed_writes_in_a_row_leave_nothing_open_and_ids_are_never_reused(
    kafka: KafkaAddress,
) -> None:
    topic = f"_mesh_registry-twice-{uuid.uuid4().hex[:8]}"
    store = KafkaStore(kafka.bootstrap_servers, topic=topic, transactional_id=f"w-{topic}")
    core = SchemaRegistry(store)
    store.open(core.state.apply)
    try:
        for _ in range(2):
            with pytest.raises(RequestTooLargeError):
                store.append([Record(("product", "p"), {"descriptor": "y" * 2**21})])
        assert core.register(SUBJECT, _schema(1)).schema_id == 1
        # A writer never writes an id it has read, even when its caller asks it to.
        with pytest.raises(RegistryUnavailableError) as stale:
            store.append([Record(("schema", 1), {"schema": _schema(2)})])
        assert stale.value.message == (
            "schema id 1 is already in the registry log (the view moved while this write was "
            "prepared); nothing was stored, retry"
        )
        assert core.register(SUBJECT, _schema(2)).schema_id == 2
        assert core.get_schema(1) == core.get_version(SUBJECT, 1).schema
    finally:
        store.close()


def test_a_registry_stopped_while_its_broker_is_down_exits_without_waiting_for_it(
    own_broker: LocalCluster, tmp_path: Path
) -> None:
    """With its broker gone, `mesh registry serve` wrote librdkafka's own line for every
    failed reconnect of each client (905 lines in 20 s), while its own warnings say that Kafka
    is away; and it exits soon after SIGTERM. (By hand it took 14-17 s to exit, the health
    feed, the claim release, each thread and each client waiting on Kafka in turn; here the
    engine before the fix exited in about 4 s, so the bound only guards against worse.)"""
    bootstrap = running(own_broker)
    topic = f"_mesh_registry-close-{uuid.uuid4().hex[:8]}"
    transactions_ready(bootstrap, f"w-{topic}")
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": bootstrap,
        "MESH_REGISTRY_TOPIC": topic,
        "MESH_REGISTRY_WRITER_ID": f"w-{topic}",
    }
    log = tmp_path / "registry.log"
    with log.open("wb") as out:
        serve_cmd = [str(Path(sys.executable).with_name("mesh")), "registry", "serve"]
        registry = subprocess.Popen(
            [*serve_cmd, "--port", str(port), "--open-writes"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as http:
            deadline = time.monotonic() + 60
            while True:
                assert registry.poll() is None, log.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if http.get("/health/ready").status_code == 200:
                        break
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            own_broker.stop()
            while http.get("/health/ready").status_code != 503:  # the outage is seen
                time.sleep(0.5)
            time.sleep(5)  # its threads are inside Kafka calls now, as in the field
        registry.send_signal(signal.SIGTERM)
        started = time.monotonic()
        registry.wait(60)
        took = time.monotonic() - started
    finally:
        if registry.poll() is None:
            registry.kill()
        running(own_broker)  # for the next test of the module
    text = log.read_text(errors="replace")
    assert took < 10, f"exit took {took:.1f} s with the broker down:\n{text[-3000:]}"
    assert "registry stopped" in text
    assert "|FAIL|" not in text, text[-3000:]  # librdkafka's own stderr line
    assert "FAIL [rdkafka#" not in text, text[-3000:]  # the same line through Python logging


def test_mesh_up_refuses_a_running_registry_that_keeps_its_data_on_another_cluster(
    own_broker: LocalCluster, kafka: KafkaAddress, tmp_path: Path
) -> None:
    """A registry of another mesh (its log on this module's own cluster) at MESH_REGISTRY_URL
    of a `mesh up` on the shared cluster: it was used without a word, every simulator
    crash-looped on it and the view showed its health as this mesh's (a platform operator's
    campaign). Its `/health/ready` names its cluster, and `mesh up` stops, naming both."""
    bootstrap = running(own_broker)
    topic = f"_mesh_registry-other-{uuid.uuid4().hex[:8]}"
    transactions_ready(bootstrap, f"w-{topic}")
    store = KafkaStore(bootstrap, topic=topic, transactional_id=f"w-{topic}")
    with serve(store) as http:
        ready = wait_ready(http)
        assert ready["kafka_cluster_id"]  # the own cluster's id
        url = str(http.base_url).rstrip("/")
        env = {
            **os.environ,
            "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "MESH_REGISTRY_URL": url,
        }
        argv = [sys.executable, "-m", "mesh_stream.cli.main", "up", "--register-only"]
        argv += ["--project", str(Path(__file__).resolve().parents[2])]
        argv += ["--data-dir", str(tmp_path)]
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=90, check=False
        )
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert (
        f"error: the registry at MESH_REGISTRY_URL={url} keeps its data on another Kafka "
        f"cluster (id {ready['kafka_cluster_id']}) than this mesh's at "
        f"{kafka.bootstrap_servers} (id "
    ) in said
    assert "registration:" not in said
    assert "registry: using" not in said
