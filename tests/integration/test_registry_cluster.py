"""Several `mesh registry serve` instances on one topic: all read, one writes, the others
forward writes to it; killing the writer (SIGKILL) hands the role to a survivor, and no
acknowledged registration is lost or shares its id with another schema."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from unittest.mock import ANY

import httpx
import pytest

from tests.conftest import KafkaAddress
from tests.integration.registry_process import TOKENS, RegistryProcess

pytestmark = pytest.mark.chaos

AUTH = ("orders", TOKENS["orders"])
ADMIN = ("admin", TOKENS["admin"])
#: The issue's bound on how long writes stop when the writer dies.
TAKEOVER_SECONDS = 15.0


def _schema(n: int) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "Item",
            "namespace": "orders",
            "doc": f"An order item, shape {n}.",
            "fields": [
                {"name": "id", "type": "string", "doc": "Item id."},
                {"name": f"f{n}", "type": ["null", "string"], "default": None, "doc": "Extra."},
            ],
        }
    )


def _cluster(stack: ExitStack, kafka: KafkaAddress, size: int) -> list[RegistryProcess]:
    """``size`` registry processes on one fresh topic, started one after the other."""
    session = uuid.uuid4().hex[:8]
    topic, writer = f"_mesh_registry-cluster-{session}", f"writer-cluster-{session}"
    processes = []
    for _ in range(size):
        process = RegistryProcess(kafka, topic=topic, writer_id=writer)
        stack.enter_context(process)
        processes.append(process)
    return processes


def _ready(url: str) -> dict[str, object]:
    answer = httpx.get(f"{url}/health/ready", timeout=5)
    body: dict[str, object] = answer.json()
    return body


def _eventually(check: object, what: str, seconds: float = 10.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_two_instances_serve_reads_and_the_follower_forwards_writes(
    kafka: KafkaAddress,
) -> None:
    with ExitStack() as stack:
        writer, follower = _cluster(stack, kafka, 2)
        assert _ready(writer.url)["role"] == "writer"
        ready = _ready(follower.url)
        assert (ready["status"], ready["role"], ready["writer_url"]) == (
            "ready",
            "follower",
            writer.url,
        )
        subject = "orders.cluster.v1-value"
        first = httpx.post(
            f"{writer.url}/subjects/{subject}/versions", json={"schema": _schema(1)}, auth=AUTH
        )
        assert first.json() == {"id": 1, "version": 1, "subject": subject, "guid": ANY}, first.text
        # Through the follower: forwarded, answered by the writer as it is.
        second = httpx.post(
            f"{follower.url}/subjects/{subject}/versions", json={"schema": _schema(2)}, auth=AUTH
        )
        assert second.status_code == 200, second.text
        assert second.json() == {"id": 2, "version": 2, "subject": subject, "guid": ANY}
        assert second.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
        # Governance judges a forwarded write on the writer: refused there, nothing stored.
        undocumented = {"type": "record", "name": "Item", "namespace": "orders", "fields": []}
        gated = httpx.post(
            f"{follower.url}/subjects/{subject}/versions",
            json={"schema": json.dumps(undocumented)},
            auth=AUTH,
        )
        assert gated.status_code == 422, gated.text
        assert gated.json()["error_code"] == 42218
        assert "documentation: record 'Item' has no doc" in gated.json()["message"]
        # Both serve both schemas by id (the follower once its tail has read them).
        for url in (writer.url, follower.url):
            _eventually(
                lambda url=url: httpx.get(f"{url}/schemas/ids/2").status_code == 200,
                f"{url} never served schema id 2",
            )
            for n in (1, 2):
                assert json.loads(httpx.get(f"{url}/schemas/ids/{n}").json()["schema"]) == (
                    json.loads(_schema(n))
                )
        # Config, with the query string and its error answer, forwarded too.
        level = httpx.put(
            f"{follower.url}/config/{subject}", json={"compatibility": "FULL"}, auth=AUTH
        )
        assert level.json() == {"compatibility": "FULL"}, level.text
        refused = httpx.put(f"{follower.url}/config", json={"compatibility": "NONE"}, auth=AUTH)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error_code"] == 40301
        allowed = httpx.put(f"{follower.url}/config", json={"compatibility": "NONE"}, auth=ADMIN)
        assert allowed.status_code == 200, allowed.text
        # Lookups are reads: the follower answers them from its own view.
        _eventually(
            lambda: (
                httpx.get(f"{follower.url}/config/{subject}").json().get("compatibilityLevel")
                == "FULL"
            ),
            "the follower never saw the subject's level",
        )
        found = httpx.post(f"{follower.url}/subjects/{subject}", json={"schema": _schema(1)})
        assert (found.json()["id"], found.json()["version"]) == (1, 1), found.text
        # A wrong credential is refused by the follower itself, never forwarded.
        wrong = httpx.post(
            f"{follower.url}/subjects/{subject}/versions",
            json={"schema": _schema(3)},
            auth=("orders", "wrong"),
        )
        assert wrong.status_code == 401, wrong.text
        assert httpx.get(f"{writer.url}/subjects/{subject}/versions").json() == [1, 2]
        # What a client writes through the follower it reads there at once (h59: 404 for
        # some 25 ms, and `mesh products apply` behind a load balancer stopped half done).
        # (A new subject each time, as apply registers them: 56 of 60 read back 404 before.)
        for n in range(1, 21):
            again = f"orders.read-back-{n}.v1-value"
            made = httpx.post(
                f"{follower.url}/subjects/{again}/versions", json={"schema": _schema(n)}, auth=AUTH
            )
            assert made.status_code == 200, made.text
            read = httpx.get(f"{follower.url}/subjects/{again}/versions/1")
            assert read.status_code == 200, (n, read.text)


class Client:
    """Registers with retries, as a client of a registry cluster should: on a 503 or 429
    (after its Retry-After, at most 1 s here) and on a dead address (then through another
    instance)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.lock = threading.Lock()
        self.acked: dict[str, tuple[int, str]] = {}
        self.retries = 0

    def register(self, n: int) -> None:
        subject, schema = f"orders.burst-{n}.v1-value", _schema(n)
        url = self.urls[n % len(self.urls)]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                answer = httpx.post(
                    f"{url}/subjects/{subject}/versions",
                    json={"schema": schema},
                    auth=AUTH,
                    timeout=40,
                )
            except httpx.TransportError:
                url = self.urls[(self.urls.index(url) + 1) % len(self.urls)]
                with self.lock:
                    self.retries += 1
                time.sleep(0.2)
                continue
            if answer.status_code in (429, 503):
                # 50302: no writer known / not forwarded; 50301: the writer just lost the role;
                # 42902: this principal has its most schema requests in flight at the writer
                assert answer.json()["error_code"] in (42902, 50301, 50302), answer.text
                with self.lock:
                    self.retries += 1
                time.sleep(min(float(answer.headers.get("Retry-After", "1")), 1.0))
                continue
            assert answer.status_code == 200, answer.text
            with self.lock:
                self.acked[subject] = (answer.json()["id"], schema)
            return
        raise AssertionError(f"{subject} was never registered")


def test_killing_the_writer_mid_burst_loses_no_acknowledged_registration(
    kafka: KafkaAddress,
) -> None:
    with ExitStack() as stack:
        writer, survivor = _cluster(stack, kafka, 2)
        assert _ready(writer.url)["role"] == "writer"
        client = Client([writer.url, survivor.url])
        killed_at: list[float] = []

        def kill_when_busy() -> None:
            _eventually(lambda: len(client.acked) >= 50, "the burst never started", 120)
            writer.kill()
            killed_at.append(time.monotonic())

        killer = threading.Thread(target=kill_when_busy, daemon=True)
        killer.start()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(client.register, range(200)))
        killer.join(120)
        assert killed_at, "the writer was never killed"
        assert len(client.acked) == 200
        assert client.retries > 0  # the kill was felt

        # Writes resume through the survivor within the bound.
        probe = "orders.after-kill.v1-value"
        while True:
            answer = httpx.post(
                f"{survivor.url}/subjects/{probe}/versions",
                json={"schema": _schema(999)},
                auth=AUTH,
            )
            if answer.status_code == 200:
                break
            assert answer.status_code == 503, answer.text
            assert time.monotonic() - killed_at[0] < TAKEOVER_SECONDS, answer.text
            time.sleep(0.2)
        assert _ready(survivor.url)["role"] == "writer"

        # Every acknowledged registration is there with its id; no id names two schemas.
        ids: dict[int, str] = {}
        for subject, (schema_id, schema) in client.acked.items():
            entry = httpx.get(f"{survivor.url}/subjects/{subject}/versions/latest").json()
            assert entry["id"] == schema_id, (subject, entry)
            assert json.loads(entry["schema"]) == json.loads(schema)
            assert httpx.get(f"{survivor.url}/subjects/{subject}/versions").json() == [1]
            assert ids.setdefault(schema_id, schema) == schema, f"id {schema_id} reused"
        assert len(ids) == 200
        by_id = httpx.get(f"{survivor.url}/schemas/ids/{max(ids)}").json()["schema"]
        assert json.loads(by_id) == json.loads(ids[max(ids)])
        assert answer.json()["id"] == max(ids) + 1


def test_registries_on_different_topics_never_fence_each_other(kafka: KafkaAddress) -> None:
    """Left to their own writer id, a registry on another topic takes one of its own: both
    stay writers and every registration is answered (with one shared id each took the
    writer role from the other, and half the writes were 503; hostile-input campaign 3)."""
    session = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        registries = [
            stack.enter_context(
                RegistryProcess(
                    kafka, topic=f"_mesh_registry-{name}-{session}", default_writer_id=True
                )
            )
            for name in ("main", "staging")
        ]
        answers = []
        for n in range(6):
            for registry in registries:
                answer = httpx.post(
                    f"{registry.url}/subjects/orders.item-value/versions",
                    json={"schema": _schema(n)},
                    auth=AUTH,
                    timeout=30,
                )
                answers.append((answer.status_code, answer.text[:200]))
                time.sleep(0.3)
        assert {status for status, _ in answers} == {200}, answers
        assert [_ready(registry.url)["role"] for registry in registries] == ["writer", "writer"]


def _signed_in_as(url: str, session: str) -> str | None:
    """Who a portal page at ``url`` says is signed in with the session cookie ``session``."""
    page = httpx.get(f"{url}/ui/products", cookies={"mesh_session": session}, timeout=10)
    assert page.status_code == 200, page.text
    found = re.search(
        r'Signed in as <strong>([^<]+)</strong></span>\s*<form method="post" action="/ui/logout"',
        page.text,
    )
    return found.group(1) if found else None


def test_a_sign_out_through_a_follower_ends_the_session_on_every_instance(
    kafka: KafkaAddress, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing out only made the browser forget its cookie (h54): a copy stayed valid on
    every instance for hours. The follower forwards the sign-out to the writer, which writes
    it to the log; both instances refuse the copy from then on."""
    monkeypatch.setenv("MESH_REGISTRY_SESSION_SECRET", "cluster-test-session-secret")
    with ExitStack() as stack:
        writer, follower = _cluster(stack, kafka, 2)
        assert _ready(follower.url)["role"] == "follower"
        browser = httpx.Client(base_url=follower.url, follow_redirects=False, timeout=10)
        stack.callback(browser.close)
        form = browser.get("/ui/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf, form.text
        signed = browser.post(
            "/ui/login",
            data={"token": TOKENS["orders"], "csrf_token": csrf.group(1), "next": "/ui/products"},
        )
        assert signed.status_code == 303, signed.text
        copied = browser.cookies.get("mesh_session")
        assert copied
        for url in (writer.url, follower.url):  # one secret: the session holds on both
            assert _signed_in_as(url, copied) == "orders"
        out = browser.post("/ui/logout", data={"csrf_token": browser.cookies.get("mesh_csrf")})
        assert out.status_code == 303, out.text
        assert out.headers["location"] == "/ui/login"
        assert (
            'mesh_session=""' in out.headers["set-cookie"]
            or "Max-Age=0" in out.headers["set-cookie"]
        ), out.headers
        for url in (writer.url, follower.url):
            assert _signed_in_as(url, copied) is None, url
        # the same token signs in again through the writer: a new session, on both
        again = httpx.Client(base_url=writer.url, follow_redirects=False, timeout=10)
        stack.callback(again.close)
        form = again.get("/ui/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf, form.text
        token = {"token": TOKENS["orders"], "csrf_token": csrf.group(1), "next": "/ui/products"}
        assert again.post("/ui/login", data=token).status_code == 303
        fresh = again.cookies.get("mesh_session")
        assert fresh
        for url in (writer.url, follower.url):
            assert _signed_in_as(url, fresh) == "orders"
