"""The registry process is killed and restarted: nothing is lost, ids keep growing; a
second instance follows the first (one writer); writer ids that differ are refused."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import ANY

import httpx
import pytest

from mesh_stream.errors import RegistryWriterConflictError
from mesh_stream.registry.service.kafka_store import KafkaStore
from mesh_stream.registry.service.schemas import SchemaRegistry
from tests.conftest import KafkaAddress

pytestmark = pytest.mark.chaos

TOKENS = {"admin": "root-token", "orders": "orders-token"}
AUTH = ("orders", TOKENS["orders"])
MESH = str(Path(sys.executable).with_name("mesh"))


def _schema(n: int) -> dict[str, object]:
    """Version n adds optional field f<n>, so every version is BACKWARD compatible."""
    fields = [{"name": "id", "type": "string", "doc": "Order id."}] + [
        {"name": f"f{i}", "type": ["null", "long"], "default": None, "doc": f"Field {i}."}
        for i in range(2, n + 1)
    ]
    return {
        "type": "record",
        "name": "Order",
        "namespace": "orders",
        "doc": "An order item.",
        "fields": fields,
    }


@contextmanager
def serve(
    kafka: KafkaAddress, topic: str, writer_id: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_CREDENTIALS": ",".join(f"{p}:{t}" for p, t in TOKENS.items()),
    }
    env.pop("MESH_REGISTRY_CREDENTIALS_FILE", None)
    process = subprocess.Popen(
        [MESH, "registry", "serve", "--port", "0", "--topic", topic, "--writer-id", writer_id],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    url = None
    lines = []
    while url is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        found = re.search(r"listening on (http://\S+)", line)
        url = found.group(1) if found else None
        if not line and process.poll() is not None:
            break
    assert url is not None, "registry did not start:\n" + "".join(lines)
    try:
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stderr.close()


def _snapshot(url: str) -> dict[str, object]:
    subjects = httpx.get(f"{url}/subjects").json()
    versions = {
        s: [
            httpx.get(f"{url}/subjects/{s}/versions/{v}").json()
            for v in httpx.get(f"{url}/subjects/{s}/versions").json()
        ]
        for s in subjects
    }
    return {
        "subjects": subjects,
        "versions": versions,
        "global": httpx.get(f"{url}/config").json(),
        "subject_config": httpx.get(f"{url}/config/{subjects[0]}").json(),
        "products": httpx.get(f"{url}/products").json(),
    }


def test_kill_and_restart_keeps_everything(kafka: KafkaAddress) -> None:
    topic = f"_mesh_registry-restart-{uuid.uuid4().hex[:8]}"
    writer = f"writer-{uuid.uuid4().hex[:8]}"
    subjects = [f"orders.item-{n}.v1-value" for n in range(3)]
    with serve(kafka, topic, writer) as (url, process):
        ids = []
        for n, subject in enumerate(subjects):
            for version in range(1, n + 2):
                answer = httpx.post(
                    f"{url}/subjects/{subject}/versions",
                    json={"schema": json.dumps(_schema(version))},
                    auth=AUTH,
                )
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["id"])
        assert (
            httpx.put(
                f"{url}/config/{subjects[0]}", json={"compatibility": "FULL"}, auth=AUTH
            ).status_code
            == 200
        )
        assert (
            httpx.put(
                f"{url}/config", json={"compatibility": "FORWARD"}, auth=("admin", TOKENS["admin"])
            ).status_code
            == 200
        )
        descriptor = {
            "name": "orders.item-0",
            "domain": "orders",
            "kind": "source-aligned",
            "description": "Items of every order placed, one record per item.",
            "owner": {"team": "order-items", "contact": "items@example.com"},
            "schema": "schemas/orders/item.avsc",
            "slos": {"freshness_seconds": 5, "availability": 99.9},
            "classification": "internal",
        }
        answer = httpx.put(f"{url}/products/orders.item-0", json=descriptor, auth=AUTH)
        assert answer.status_code == 200, answer.text
        before = _snapshot(url)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    with serve(kafka, topic, writer) as (url, _process):
        after = _snapshot(url)
        assert after == before
        # Same schema text keeps its id; a new schema gets an id above every old one.
        again = httpx.post(
            f"{url}/subjects/{subjects[2]}/versions",
            json={"schema": json.dumps(_schema(3))},
            auth=AUTH,
        )
        assert again.json()["id"] == ids[-1]
        fresh = httpx.post(
            f"{url}/subjects/{subjects[2]}/versions",
            json={"schema": json.dumps(_schema(4))},
            auth=AUTH,
        )
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["id"] == max(ids) + 1
        assert fresh.json()["version"] == 4


def test_a_second_instance_follows_the_first_and_forwards_its_writes(
    kafka: KafkaAddress,
) -> None:
    """Same writer id: the second instance does not fence a live writer (issue 12: several
    instances), it serves reads and forwards writes to it."""
    topic = f"_mesh_registry-follow-{uuid.uuid4().hex[:8]}"
    writer = f"writer-{uuid.uuid4().hex[:8]}"
    subject = "orders.followed.v1-value"
    with serve(kafka, topic, writer) as (first, _p1):
        one = httpx.post(
            f"{first}/subjects/{subject}/versions",
            json={"schema": json.dumps(_schema(1))},
            auth=AUTH,
        )
        assert one.status_code == 200, one.text
        with serve(kafka, topic, writer) as (second, _p2):
            still = httpx.post(
                f"{first}/subjects/{subject}/versions",
                json={"schema": json.dumps(_schema(2))},
                auth=AUTH,
            )
            assert still.json() == {"id": 2, "version": 2, "subject": subject, "guid": ANY}, (
                still.text
            )
            forwarded = httpx.post(
                f"{second}/subjects/{subject}/versions",
                json={"schema": json.dumps(_schema(3))},
                auth=AUTH,
            )
            assert forwarded.json() == {"id": 3, "version": 3, "subject": subject, "guid": ANY}
            assert httpx.get(f"{first}/health/ready").json()["role"] == "writer"
            assert httpx.get(f"{second}/health/ready").json()["role"] == "follower"
            # The follower serves reads from its own view, which sees every write.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                seen = httpx.get(f"{second}/subjects/{subject}/versions").json()
                if seen == [1, 2, 3]:
                    break
                time.sleep(0.1)
            assert seen == [1, 2, 3]


def _all_ids(url: str) -> dict[int, str]:
    """Every schema id the registry at ``url`` serves, with its schema text."""
    found: dict[int, str] = {}
    for subject in httpx.get(f"{url}/subjects").json():
        for version in httpx.get(f"{url}/subjects/{subject}/versions").json():
            entry = httpx.get(f"{url}/subjects/{subject}/versions/{version}").json()
            assert found.setdefault(entry["id"], entry["schema"]) == entry["schema"]
    return found


def test_a_second_writer_id_on_the_topic_is_refused_at_start_up(kafka: KafkaAddress) -> None:
    topic = f"_mesh_registry-two-ids-{uuid.uuid4().hex[:8]}"
    first_id, second_id = f"writer-a-{uuid.uuid4().hex[:6]}", f"writer-b-{uuid.uuid4().hex[:6]}"
    with serve(kafka, topic, first_id) as (url, _process):
        for n in range(1, 4):
            answer = httpx.post(
                f"{url}/subjects/orders.two-{n}.v1-value/versions",
                json={"schema": json.dumps(_schema(n))},
                auth=AUTH,
            )
            assert answer.json()["id"] == n
        env = {
            **os.environ,
            "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "MESH_REGISTRY_CREDENTIALS": ",".join(f"{p}:{t}" for p, t in TOKENS.items()),
        }
        env.pop("MESH_REGISTRY_CREDENTIALS_FILE", None)
        second = subprocess.run(
            [MESH, "registry", "serve", "--port", "0", "--topic", topic, "--writer-id", second_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode != 0
        assert "refusing to start: registry topic" in second.stderr
        assert f"has another writer: writer id '{first_id}'" in second.stderr
        assert f"this instance's writer id is '{second_id}'" in second.stderr
        assert "MESH_REGISTRY_WRITER_ID" in second.stderr
        assert "Traceback" not in second.stderr
        # The first writer never noticed: it still writes, ids go on from its own view.
        more = httpx.post(
            f"{url}/subjects/orders.two-4.v1-value/versions",
            json={"schema": json.dumps(_schema(4))},
            auth=AUTH,
        )
        assert more.json()["id"] == 4
        assert httpx.get(f"{url}/health/ready").json()["status"] == "ready"
        assert sorted(_all_ids(url)) == [1, 2, 3, 4]


# A registry with a short writer lease (MESH_REGISTRY_WRITER_LEASE_SECONDS), as `mesh registry
# serve` builds it, in a process of its own so the test can freeze it
# (SIGSTOP: a long GC pause, a frozen VM) past its lease and let another writer take over.
LEASED_REGISTRY = """
import sys, time
from mesh_stream.registry.service.server import RegistryServer, bind_listener, build_registry
from mesh_stream.settings import MeshSettings
listener = bind_listener("127.0.0.1", 0)
url = f"http://127.0.0.1:{listener.getsockname()[1]}"
settings = MeshSettings(
    bootstrap_servers=sys.argv[1], registry_topic=sys.argv[2], registry_writer_id=sys.argv[3],
    registry_writer_lease_seconds=2, registry_open_writes=True,
)
app, store = build_registry(settings, validators=[], advertised_url=url)
server = RegistryServer(app, listener=listener)
print(server.start(), flush=True)
while True:
    time.sleep(1)
"""


@contextmanager
def leased(kafka: KafkaAddress, topic: str, writer_id: str) -> Iterator[tuple[str, int]]:
    process = subprocess.Popen(
        [sys.executable, "-c", LEASED_REGISTRY, kafka.bootstrap_servers, topic, writer_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://"), process.communicate(timeout=10)
        yield url, process.pid
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_a_writer_that_sees_another_writer_id_after_its_own_claim_stops_writing(
    kafka: KafkaAddress,
) -> None:
    topic = f"_mesh_registry-takeover-{uuid.uuid4().hex[:8]}"
    old_id, new_id = f"writer-old-{uuid.uuid4().hex[:6]}", f"writer-new-{uuid.uuid4().hex[:6]}"
    subject = "orders.takeover.v1-value"

    def register(url: str, n: int) -> httpx.Response:
        return httpx.post(
            f"{url}/subjects/{subject}/versions", json={"schema": json.dumps(_schema(n))}
        )

    with leased(kafka, topic, old_id) as (old, old_pid):
        assert register(old, 1).json()["id"] == 1
        os.kill(old_pid, signal.SIGSTOP)
        try:
            time.sleep(3)  # past the old writer's 2 s lease
            with leased(kafka, topic, new_id) as (new, _new_pid):
                assert register(new, 2).json() == {
                    "id": 2,
                    "version": 2,
                    "subject": subject,
                    "guid": ANY,
                }
                os.kill(old_pid, signal.SIGCONT)
                stale = register(old, 3)
                assert stale.status_code == 503, stale.text
                assert stale.json()["error_code"] == 50303
                message = stale.json()["message"]
                assert message.startswith(
                    f"registry writes stopped: registry topic '{topic}' has another writer: "
                    f"writer id '{new_id}'"
                )
                assert f"this instance's writer id is '{old_id}'" in message
                assert "same MESH_REGISTRY_WRITER_ID" in message
                not_ready = httpx.get(f"{old}/health/ready")
                assert not_ready.status_code == 503
                assert not_ready.json()["reason"] == message
                # The new writer goes on; every id names one schema on both instances.
                assert register(new, 3).json() == {
                    "id": 3,
                    "version": 3,
                    "subject": subject,
                    "guid": ANY,
                }
                assert httpx.get(f"{new}/health/ready").status_code == 200
                ids = _all_ids(new)
                assert sorted(ids) == [1, 2, 3]
                deadline = time.monotonic() + 10
                while _all_ids(old) != ids and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert _all_ids(old) == ids
        finally:
            os.kill(old_pid, signal.SIGCONT)


def test_a_frozen_writer_taken_over_by_its_own_writer_id_forwards_once_it_wakes(
    kafka: KafkaAddress,
) -> None:
    """Same writer id: a writer frozen past its lease is replaced (the new one fences it);
    awake again, it reads the new claim and forwards writes to the new writer."""
    topic = f"_mesh_registry-frozen-{uuid.uuid4().hex[:8]}"
    writer_id = f"writer-{uuid.uuid4().hex[:6]}"
    subject = "orders.frozen.v1-value"

    def register(url: str, n: int) -> httpx.Response:
        return httpx.post(
            f"{url}/subjects/{subject}/versions", json={"schema": json.dumps(_schema(n))}
        )

    with leased(kafka, topic, writer_id) as (old, old_pid):
        assert register(old, 1).json()["id"] == 1
        os.kill(old_pid, signal.SIGSTOP)
        try:
            time.sleep(3)  # past the old writer's 2 s lease
            with leased(kafka, topic, writer_id) as (new, _new_pid):
                assert httpx.get(f"{new}/health/ready").json()["role"] == "writer"
                assert register(new, 2).json() == {
                    "id": 2,
                    "version": 2,
                    "subject": subject,
                    "guid": ANY,
                }
                os.kill(old_pid, signal.SIGCONT)
                answers = [register(old, 3)]
                while answers[-1].status_code == 503 and len(answers) < 20:
                    # the woken writer learns it lost the role (50301), then forwards
                    assert answers[-1].json()["error_code"] == 50301, answers[-1].text
                    time.sleep(0.5)
                    answers.append(register(old, 3))
                assert answers[-1].json() == {
                    "id": 3,
                    "version": 3,
                    "subject": subject,
                    "guid": ANY,
                }
                ready = httpx.get(f"{old}/health/ready").json()
                assert (ready["role"], ready["writer_url"]) == ("follower", new)
                assert sorted(_all_ids(new)) == [1, 2, 3]
        finally:
            os.kill(old_pid, signal.SIGCONT)


def test_serve_answers_health_during_replay_and_reports_progress(kafka: KafkaAddress) -> None:
    """`mesh registry serve` on a big log: /health/ready says "replaying" until it is done,
    stderr has the progress, and 'listening' comes once the view is complete."""
    from mesh_stream.bench.registry_scale import fill_topic
    from mesh_stream.broker.cluster import free_port

    topic = f"_mesh_registry-progress-{uuid.uuid4().hex[:8]}"
    subjects = 60_000
    fill_topic(kafka.bootstrap_servers, topic, subjects)
    port = free_port()
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_OPEN_WRITES": "1",
    }
    for name in ("MESH_REGISTRY_CREDENTIALS", "MESH_REGISTRY_CREDENTIALS_FILE"):
        env.pop(name, None)
    process = subprocess.Popen(
        [MESH, "registry", "serve", "--port", str(port), "--topic", topic, "--writer-id", topic],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        answers = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{url}/health/ready", timeout=5)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            answers.append((ready.status_code, ready.json()))
            if ready.status_code == 200:
                break
            time.sleep(0.1)
        assert answers[0][0] == 503, answers[0]
        assert answers[0][1]["status"] == "not ready"
        assert answers[0][1]["reason"].startswith("replaying the registry log: ")
        assert answers[-1][0] == 200, answers[-1]
        assert answers[-1][1]["status"] == "ready"
        assert len(httpx.get(f"{url}/subjects").json()) == subjects
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    lines = err.splitlines()
    done = [i for i, line in enumerate(lines) if line.startswith("registry: replayed 120,000 ")]
    listening = [i for i, line in enumerate(lines) if "registry listening on" in line]
    assert done, err[-2000:]
    assert lines[done[0]].startswith(f"registry: replayed 120,000 records of {topic} in ")
    assert listening, err[-2000:]
    assert done[0] < listening[0]


def _open_together(
    stores: list[KafkaStore], cores: list[SchemaRegistry]
) -> dict[int, Exception | None]:
    """Open every store at the same moment, each in a thread; what each open raised."""
    outcomes: dict[int, Exception | None] = {}
    barrier = threading.Barrier(len(stores))

    def start(n: int) -> None:
        barrier.wait()
        try:
            stores[n].open(cores[n].state.apply)
            outcomes[n] = None
        except Exception as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=start, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def test_two_writer_ids_starting_at_once_leave_exactly_one_writer(kafka: KafkaAddress) -> None:
    """Whichever claim lands first wins; the other instance refuses to start, both decide
    from the log alone. Several rounds, to meet both orders of the race."""
    for round_ in range(3):
        topic = f"_mesh_registry-race-{uuid.uuid4().hex[:8]}"
        ids = (f"writer-x-{round_}", f"writer-y-{round_}")
        stores = [KafkaStore(kafka.bootstrap_servers, topic=topic, transactional_id=i) for i in ids]
        cores = [SchemaRegistry(store) for store in stores]
        outcomes = _open_together(stores, cores)
        try:
            winners = [n for n, error in outcomes.items() if error is None]
            assert len(winners) == 1, outcomes
            [winner] = winners
            loser = 1 - winner
            refused = outcomes[loser]
            assert isinstance(refused, RegistryWriterConflictError), refused
            assert f"writer id '{ids[winner]}'" in refused.message
            assert f"this instance's writer id is '{ids[loser]}'" in refused.message
            assert "MESH_REGISTRY_WRITER_ID" in refused.message
            registered = cores[winner].register("orders.race.v1-value", json.dumps(_schema(1)))
            assert registered.schema_id == 1
            assert stores[winner].readiness()[0] is True
        finally:
            for store in stores:
                store.close()
