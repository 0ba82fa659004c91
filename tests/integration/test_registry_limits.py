"""One client cannot starve the others: the registry's HTTP edge on its Kafka store, over HTTP.

CPU-heavy requests (schema parsing, lookup, compatibility, register, product writes) run in a
bounded pool with a per-principal (per-address when anonymous) in-flight limit, schemas over
a size limit are refused before any parse, and failed authentications are rate-limited per
client address. A second client address is 127.0.0.2 (any 127/8 address reaches the
loopback listener), so "another client" really is another address to the server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from mesh_stream.descriptor import DataProduct
from mesh_stream.registry.problems import DescriptorProblem
from mesh_stream.registry.service.edge import HeavyGate
from mesh_stream.registry.service.server import RegistryServer, build_registry
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress

TOKENS = {"admin": "admin-secret", "orders": "orders-secret", "payments": "payments-secret"}
ADMIN = ("admin", TOKENS["admin"])
ORDERS = ("orders", TOKENS["orders"])
PAYMENTS = ("payments", TOKENS["payments"])
WIDE_FIELDS = 1500
MAX_FIELDS = 3000


def wide_schema(fields: int, extra: int = 0, *, documented: bool = False) -> str:
    """A record of ``fields`` strings (+ ``extra`` optional ones): parse and checks cost CPU.
    ``documented``: every field has a doc, as governance wants of a product's schema."""
    doc = {"doc": "A field."} if documented else {}
    return json.dumps(
        {
            "type": "record",
            "name": "Wide",
            "namespace": "orders",
            "doc": "A wide record.",
            "fields": [{"name": f"f{i}", "type": "string", **doc} for i in range(fields)]
            + [
                {"name": f"g{i}", "type": ["null", "string"], "default": None} for i in range(extra)
            ],
        }
    )


SMALL = json.dumps(
    {
        "type": "record",
        "name": "Slow",
        "namespace": "orders",
        "doc": "A product whose governance check waits for the test.",
        "fields": [{"name": "order_id", "type": "string", "doc": "Order id."}],
    }
)


class Gate:
    """A governance validator that holds ``*.slow-*`` products until the test opens it."""

    def __init__(self) -> None:
        self.open = threading.Event()

    def __call__(
        self, product: DataProduct, _schema: Mapping[str, Any] | None, _catalog: Any
    ) -> list[DescriptorProblem]:
        if ".slow-" in product.name:
            assert self.open.wait(60), "the test never opened the gate"
        return []


@dataclass
class Running:
    url: str
    gate: Gate
    heavy: HeavyGate
    wide_subject: str
    slow_subjects: dict[str, str]


@pytest.fixture(scope="module")
def running(kafka: KafkaAddress) -> Iterator[Running]:
    tag = uuid.uuid4().hex[:8]
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr(",".join(f"{p}:{t}" for p, t in TOKENS.items())),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-limits-{tag}",
        registry_writer_id=f"limits-{tag}",
        registry_max_schema_fields=MAX_FIELDS,
        registry_heavy_workers=1,
        registry_heavy_per_client=2,
        registry_auth_failures_per_minute=3,
    )
    gate = Gate()
    app, store = build_registry(settings, validators=(gate,))
    server = RegistryServer(app)
    url = server.start()
    try:
        wide_subject = f"orders.wide-{tag}.v1-value"
        assert httpx.put(
            f"{url}/config/{wide_subject}", json={"compatibility": "FULL"}, auth=ADMIN
        ).is_success
        registered = httpx.post(
            f"{url}/subjects/{wide_subject}/versions",
            json={"schema": wide_schema(WIDE_FIELDS)},
            auth=ADMIN,
            timeout=60,
        )
        assert registered.status_code == 200, registered.text
        slow_subjects = {}
        for domain in ("orders", "payments"):
            subject = f"{domain}.slow-{tag}.v1-value"
            schema = SMALL.replace('"orders"', f'"{domain}"')
            answer = httpx.post(
                f"{url}/subjects/{subject}/versions", json={"schema": schema}, auth=ADMIN
            )
            assert answer.status_code == 200, answer.text
            slow_subjects[domain] = f"{domain}.slow-{tag}"
        yield Running(url, gate, app.state.services.edge.heavy, wide_subject, slow_subjects)
    finally:
        gate.open.set()
        server.stop()
        store.close()


def other_client(address: str = "127.0.0.2", **kwargs: Any) -> httpx.Client:
    """A client whose connections come from ``address``: another address to the server."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), **kwargs)


def descriptor(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "domain": name.split(".", maxsplit=1)[0],
        "kind": "source-aligned",
        "description": "A product the gate holds.",
        "owner": {"team": "core", "contact": "core@example.com"},
        "schema": "schemas/x/slow.avsc",
        "slos": {"freshness_seconds": 5, "availability": 99.0},
        "classification": "internal",
        "tags": ["limits"],
    }


def wait_for(condition: Callable[[], bool], what: str) -> None:
    event = threading.Event()
    for _ in range(600):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_reads_answer_while_heavy_requests_are_in_flight_and_a_client_over_its_limit_gets_429(
    running: Running,
) -> None:
    url, heavy = running.url, running.heavy
    orders_product = running.slow_subjects["orders"]
    payments_product = running.slow_subjects["payments"]
    compat = f"{url}/compatibility/subjects/{running.wide_subject}/versions/latest"
    with ThreadPoolExecutor(max_workers=6) as pool:
        held = [
            pool.submit(
                httpx.put,
                f"{url}/products/{orders_product}",
                json=descriptor(orders_product),
                auth=ORDERS,
                timeout=60,
            )
        ]
        wait_for(lambda: heavy.in_flight("principal 'orders'") == 1, "the first orders write")
        held.append(
            pool.submit(
                httpx.post,
                compat,
                json={"schema": wide_schema(WIDE_FIELDS, extra=1)},
                auth=ORDERS,
                timeout=60,
            )
        )
        wait_for(lambda: heavy.in_flight("principal 'orders'") == 2, "the queued orders check")

        # orders has 2 in flight, its limit: a third is refused at once, naming the setting.
        refused = httpx.post(compat, json={"schema": SMALL}, auth=ORDERS)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json() == {
            "error_code": 42902,
            "message": "principal 'orders' already has 2 schema requests (parse, lookup, "
            "compatibility, register) in flight, the most one client may have; retry after "
            "1 s or raise MESH_REGISTRY_HEAVY_PER_CLIENT",
        }
        # Other principals, and anonymous clients by address, queue for the pool as usual.
        held.append(
            pool.submit(
                httpx.put,
                f"{url}/products/{payments_product}",
                json=descriptor(payments_product),
                auth=PAYMENTS,
                timeout=60,
            )
        )
        with other_client(timeout=60) as anonymous:
            held.append(
                pool.submit(
                    anonymous.post,
                    f"{url}/subjects/{running.wide_subject}",
                    json={"schema": wide_schema(WIDE_FIELDS)},
                )
            )
            wait_for(lambda: heavy.in_flight() == 4, "four heavy requests in flight")

            # The pool is full and three requests wait for it: reads still answer.
            assert heavy.in_flight() == 4
            subjects = httpx.get(f"{url}/subjects", timeout=10)
            assert subjects.status_code == 200
            assert running.wide_subject in subjects.json()
            latest = httpx.get(f"{url}/subjects/{running.wide_subject}/versions/latest")
            assert (latest.status_code, latest.json()["version"]) == (200, 1)
            assert httpx.get(f"{url}/schemas/ids/{latest.json()['id']}").status_code == 200
            assert httpx.get(f"{url}/config").json() == {"compatibilityLevel": "BACKWARD"}
            assert heavy.in_flight() == 4  # they were all still in flight meanwhile

            running.gate.open.set()
            answers = [future.result(timeout=60) for future in held]
    assert [a.status_code for a in answers] == [200, 200, 200, 200], [a.text for a in answers]
    assert answers[0].json()["name"] == orders_product
    assert answers[1].json() == {"is_compatible": True}
    assert answers[2].json()["name"] == payments_product
    assert answers[3].json()["version"] == 1
    assert heavy.in_flight() == 0


def test_a_flood_of_heavy_compatibility_checks_never_stops_another_clients_reads(
    running: Running,
) -> None:
    url = running.url
    compat = f"{url}/compatibility/subjects/{running.wide_subject}/versions"
    allowed = {"schema": wide_schema(WIDE_FIELDS, extra=1)}
    too_wide = {"schema": wide_schema(9000)}
    stop = threading.Event()
    heavy_answers: list[httpx.Response] = []

    def flood(address: str, body: dict[str, str]) -> None:
        with other_client(address, timeout=60) as client:
            while not stop.is_set():
                heavy_answers.append(client.post(compat, json=body))

    # Four concurrent checks from one address (its limit is 2), one refused one from another.
    floods = [threading.Thread(target=flood, args=("127.0.0.2", allowed)) for _ in range(4)]
    floods.append(threading.Thread(target=flood, args=("127.0.0.3", too_wide)))
    for thread in floods:
        thread.start()
    reads: list[httpx.Response] = []
    try:
        wait_for(lambda: running.heavy.in_flight("client 127.0.0.2") > 0, "the flood")
        with httpx.Client(timeout=30) as reader:
            for _ in range(40):
                reads.append(reader.get(f"{url}/subjects/{running.wide_subject}/versions"))
                reads.append(reader.get(f"{url}/schemas/ids/1"))
        wait_for(
            lambda: {200, 422} <= {a.status_code for a in heavy_answers},
            "a checked and a refused schema",
        )
    finally:
        stop.set()
        for thread in floods:
            thread.join(60)
    assert [r.status_code for r in reads] == [200] * 80
    assert all(r.json() == [1] for r in reads[::2])
    statuses = {a.status_code for a in heavy_answers}
    assert statuses <= {200, 422, 429}, [a.text for a in heavy_answers if a.status_code >= 500]
    for answer in heavy_answers:
        if answer.status_code == 200:
            assert answer.json() == {"is_compatible": True}
        elif answer.status_code == 429:
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["error_code"] == 42902
            assert answer.json()["message"].startswith("client 127.0.0.2 already has 2 schema")
        else:
            assert answer.json() == {
                "error_code": 42201,
                "message": f"Invalid schema: the schema has 9000 record fields, more than the "
                f"limit of {MAX_FIELDS} (MESH_REGISTRY_MAX_SCHEMA_FIELDS)",
            }


def test_schema_and_body_size_limits_are_named(running: Running) -> None:
    url = running.url
    subject = running.wide_subject
    for path in (f"/subjects/{subject}", f"/subjects/{subject}/versions"):
        too_wide = httpx.post(url + path, json={"schema": wide_schema(MAX_FIELDS + 1)}, auth=ADMIN)
        assert too_wide.status_code == 422
        assert too_wide.json()["message"] == (
            f"Invalid schema: the schema has {MAX_FIELDS + 1} record fields, more than the "
            f"limit of {MAX_FIELDS} (MESH_REGISTRY_MAX_SCHEMA_FIELDS)"
        )
    deep = httpx.post(
        f"{url}/compatibility/subjects/{subject}/versions",
        json={"schema": "[" * 200 + "]" * 200},
        auth=ADMIN,
    )
    assert deep.json() == {
        "error_code": 42201,
        "message": "Invalid schema: nested too deeply: 200 JSON levels, more than the limit of "
        "128 (MESH_REGISTRY_MAX_SCHEMA_DEPTH)",
    }
    big = httpx.post(
        f"{url}/subjects/{subject}/versions",
        json={"schema": " " * (1024 * 1024)},
        auth=ADMIN,
    )
    assert big.status_code == 413
    assert big.json() == {
        "error_code": 41301,
        "message": "request body is larger than 1048576 bytes; send less (the limit is "
        "MESH_REGISTRY_MAX_BODY_BYTES)",
    }
    assert httpx.get(f"{url}/subjects/{subject}/versions").json() == [1]


def test_failed_authentications_are_rate_limited_per_address_and_successes_never(
    running: Running,
) -> None:
    url = running.url
    with other_client(timeout=10) as guesser:
        for guess in range(3):
            wrong = guesser.get(f"{url}/subjects", headers={"Authorization": f"Bearer g{guess}"})
            assert (wrong.status_code, wrong.json()["error_code"]) == (401, 40101)
        limited = guesser.get(f"{url}/subjects", headers={"Authorization": "Bearer g3"})
        assert limited.status_code == 429
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 20
        assert limited.json() == {
            "error_code": 42901,
            "message": f"too many failed authentications from client 127.0.0.2 (more than 3 "
            f"a minute); retry after {retry_after} s (the limit is "
            f"MESH_REGISTRY_AUTH_FAILURES_PER_MINUTE)",
        }
        # Blocked addresses are refused before the credential is compared: a right one too.
        right = guesser.get(f"{url}/subjects", auth=ADMIN)
        assert (right.status_code, right.json()["error_code"]) == (429, 42901)
        basic = guesser.get(f"{url}/subjects", auth=("orders", "nope"))
        assert basic.status_code == 429
        # Reads without a credential are not authentications: they still answer.
        assert guesser.get(f"{url}/subjects").status_code == 200
    # Another address is not affected, and successful requests never use up its budget.
    with httpx.Client(timeout=10) as user:
        for _ in range(30):
            assert user.get(f"{url}/subjects", auth=ORDERS).status_code == 200
            assert (
                user.get(
                    f"{url}/config", headers={"Authorization": f"Bearer {TOKENS['payments']}"}
                ).status_code
                == 200
            )
        assert user.get(f"{url}/subjects", auth=("orders", "nope")).status_code == 401


def test_mesh_registry_serve_applies_the_limit_options(kafka: KafkaAddress) -> None:
    """The CLI path end to end: `--max-schema-fields` and the env var for heavy workers."""
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env.update(
        MESH_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        MESH_REGISTRY_CREDENTIALS="admin:admin-secret",
        MESH_REGISTRY_AUTH_FAILURES_PER_MINUTE="1",
    )
    command = [str(Path(sys.executable).with_name("mesh")), "registry", "serve", "--port", "0"]
    command += ["--topic", f"_mesh_registry-cli-{tag}", "--writer-id", f"cli-{tag}"]
    process = subprocess.Popen(
        [*command, "--max-schema-fields", "10"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:  # the first lines: the URL comes once replayed
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url is not None, "mesh registry serve did not start"
        # Keep reading, or a full pipe would stall the registry.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        subject = f"orders.cli-{tag}.v1-value"
        answer = httpx.post(
            f"{url}/subjects/{subject}/versions",
            json={"schema": wide_schema(11, documented=True)},
            auth=ADMIN,
            timeout=30,
        )
        assert answer.json() == {
            "error_code": 42201,
            "message": "Invalid schema: the schema has 11 record fields, more than the limit of "
            "10 (MESH_REGISTRY_MAX_SCHEMA_FIELDS)",
        }
        ok = httpx.post(
            f"{url}/subjects/{subject}/versions",
            json={"schema": wide_schema(10, documented=True)},
            auth=ADMIN,
            timeout=30,
        )
        assert (ok.status_code, ok.json()["version"]) == (200, 1)
        assert httpx.get(f"{url}/config", auth=("admin", "wrong")).status_code == 401
        assert httpx.get(f"{url}/config", auth=("admin", "wrong")).status_code == 429
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
