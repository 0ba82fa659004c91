"""The uvicorn runner and the HTTP edge's guards (body decoding, schema limits, heavy pool)."""

from __future__ import annotations

import json
import socket
import threading

import anyio
import pytest

from mesh_stream.errors import (
    ConfigurationError,
    InvalidRequestError,
    InvalidSchemaError,
    TooManyRequestsError,
    UnencodableInputError,
)
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.edge import (
    EdgeLimits,
    HeavyGate,
    check_schema_text,
    decode_json_body,
    json_depth,
)
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.settings import MeshSettings


def test_taken_port_names_the_fix() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = RegistryServer(create_app(InMemoryStore()), port=port)
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}.*--port"):
            server.start(timeout=10)


def test_edge_limits_come_from_the_settings() -> None:
    settings = MeshSettings(
        registry_max_body_bytes=2048,
        registry_max_schema_bytes=100,
        registry_max_schema_fields=3,
        registry_max_schema_depth=4,
        registry_heavy_workers=5,
        registry_heavy_per_client=6,
        registry_auth_failures_per_minute=7,
    )
    assert EdgeLimits.from_settings(settings) == EdgeLimits(2048, 100, 3, 4, 5, 6, 7)
    assert EdgeLimits.from_settings(MeshSettings()) == EdgeLimits()


def _refused(raw: bytes) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as refused:
        decode_json_body(raw)
    return refused.value


def test_json_bodies_are_decoded_strictly_with_exact_reasons() -> None:
    assert decode_json_body(b'{"a": [1, 2.5, "\\ud83d\\ude00"]}') == {"a": [1, 2.5, "\U0001f600"]}
    assert decode_json_body('{"a": "é"}'.encode("utf-16")) == {"a": "é"}
    cases = {
        b"[" * 100_000 + b"]" * 100_000: (
            "malformed JSON body: nested over 20000 levels deep, more than the 64 a "
            "registry request may have"
        ),
        b'{"schema": "\xff"}': "malformed JSON body: not valid UTF-8 at byte 12; send UTF-8 JSON",
        b'{"a": NaN}': "malformed JSON body: NaN is not JSON",
        b'{"a": -Infinity}': "malformed JSON body: -Infinity is not JSON",
        b'{"a": 1e400}': "malformed JSON body: number 1e400 is out of range for a 64-bit float",
        b'{"a": ' + b"9" * 5000 + b"}": (
            "malformed JSON body: a number of 5000 digits, more than the 100 a registry "
            "request may have"
        ),
        b'{"a": }': "malformed JSON body: Expecting value (line 1, column 7)",
        b'{"a": "[[': "malformed JSON body: Unterminated string starting at (line 1, column 7)",
    }
    for raw, message in cases.items():
        refused = _refused(raw)
        assert (refused.status, refused.error_code, refused.message) == (400, 40001, message)


def test_a_lone_surrogate_is_named_by_its_field_path() -> None:
    for raw, path in (
        (b'{"owner": {"team": "x\\ud800"}}', "owner.team"),
        (b'{"tags": ["ok", "\\udfff"]}', "tags[1]"),
        (b'{"a": {"\\ud800": 1}}', "a.\\ud800 (the key)"),
        (b'"\\ud800"', "(body)"),
    ):
        with pytest.raises(UnencodableInputError) as refused:
            decode_json_body(raw)
        assert refused.value.message == (
            f"the JSON body has a lone UTF-16 surrogate (e.g. \\ud800) in {path}; the "
            f"registry stores UTF-8 text, which cannot hold it: send a valid character or a "
            f"surrogate pair"
        )
    # An escaped backslash before `ud800` is plain text, not a surrogate.
    assert decode_json_body(b'{"doc": "\\\\ud800"}') == {"doc": "\\ud800"}


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[{{{\\"]]]", "b": [[1]]}') == 3
    assert json_depth(b"1") == 0


def _record(fields: int, doc: str = "ok") -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "R",
            "doc": doc,
            "fields": [{"name": f"f{i}", "type": "string"} for i in range(fields)],
        }
    )


def test_schema_limits_name_their_setting() -> None:
    limits = EdgeLimits(max_schema_bytes=2000, max_schema_fields=20, max_schema_depth=6)
    check_schema_text(_record(20), limits)
    check_schema_text("not json at all", limits)  # the parser names what is wrong
    for schema, message in (
        (
            _record(21),
            "Invalid schema: the schema has 21 record fields, more than the limit of 20 "
            "(MESH_REGISTRY_MAX_SCHEMA_FIELDS)",
        ),
        (
            _record(80),
            "Invalid schema: the schema is 2846 bytes, more than the limit of 2000 "
            "(MESH_REGISTRY_MAX_SCHEMA_BYTES)",
        ),
        (
            "[" * 7 + "]" * 7,
            "Invalid schema: nested too deeply: 7 JSON levels, more than the limit of 6 "
            "(MESH_REGISTRY_MAX_SCHEMA_DEPTH)",
        ),
    ):
        with pytest.raises(InvalidSchemaError) as refused:
            check_schema_text(schema, limits)
        assert refused.value.message == message
    with pytest.raises(UnencodableInputError, match=r"lone UTF-16 surrogate .* in doc;"):
        check_schema_text(_record(1, doc="\ud800"), limits)


def test_the_heavy_gate_limits_each_client_and_releases_its_slots() -> None:
    gate = HeavyGate(workers=1, per_client=2)
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow() -> str:
        started.release()
        release.wait(10)
        return "done"

    async def scenario() -> list[object]:
        results: list[object] = []

        async def call(client: str) -> None:
            try:
                results.append(await gate.run(client, slow))
            except TooManyRequestsError as exc:
                results.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(call, "client a")
            group.start_soon(call, "client a")
            await anyio.to_thread.run_sync(started.acquire)  # one runs, one waits for the pool
            assert (gate.in_flight("client a"), gate.in_flight()) == (2, 2)
            await call("client a")  # a third from the same client: refused at once
            group.start_soon(call, "client b")  # another client still gets in line
            while gate.in_flight("client b") == 0:
                await anyio.sleep(0.01)
            assert gate.in_flight() == 3
            release.set()
        return results

    results = anyio.run(scenario)
    refused = [r for r in results if isinstance(r, TooManyRequestsError)]
    assert [r for r in results if r == "done"] == ["done"] * 3
    assert len(refused) == 1
    assert (refused[0].status, refused[0].error_code, refused[0].retry_after) == (429, 42902, 1)
    assert refused[0].message == (
        "client a already has 2 schema requests (parse, lookup, compatibility, register) in "
        "flight, the most one client may have; retry after 1 s or raise "
        "MESH_REGISTRY_HEAVY_PER_CLIENT"
    )
    assert gate.in_flight() == 0


def test_a_body_of_many_containers_is_refused_before_it_is_parsed() -> None:
    many = json.dumps({"tags": [[] for _ in range(10_000)]}).encode()
    refused = _refused(many)
    assert refused.message == (
        "malformed JSON body: 10002 arrays and objects, more than the 10000 a registry "
        "request may have"
    )
    assert decode_json_body(json.dumps([[] for _ in range(9_999)]).encode()) == [[]] * 9_999


def test_a_forwarded_for_header_does_not_move_a_caller_out_of_its_failure_budget() -> None:
    """uvicorn trusted X-Forwarded-For from 127.0.0.1: every failed sign-in named another
    address and none was ever refused with 429 (h32). The peer's address counts."""
    import httpx

    from mesh_stream.registry.service.auth import Credentials
    from mesh_stream.registry.service.edge import EdgeLimits

    app = create_app(
        InMemoryStore(),
        credentials=Credentials({"admin": "a-long-enough-token"}),
        limits=EdgeLimits(auth_failures_per_minute=3),
    )
    server = RegistryServer(app)
    url = server.start()
    try:
        statuses = [
            httpx.get(
                f"{url}/subjects",
                auth=("admin", "wrong"),
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(5)
        ]
    finally:
        server.stop()
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]
