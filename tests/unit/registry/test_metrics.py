"""``GET /metrics``: Prometheus text that parses, counters that move with real requests, the
access log, and ``/health/live``."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
from prometheus_client.parser import text_string_to_metric_families

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.metrics import ACCESS_LOGGER
from tests.unit.registry.conftest import ADMIN, TOKENS, make_client, schema

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of ``GET /metrics``, parsed by Prometheus' own text parser."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_method_and_status() -> None:
    client = make_client()
    subject = "orders.order-placed.v1-value"
    for version in range(1, 4):
        fields = [f"f{i}" for i in range(version)]
        registered = client.post(
            f"/subjects/{subject}/versions", json={"schema": schema(*fields)}, auth=ADMIN
        )
        assert registered.status_code == 200, registered.text
    assert client.get(f"/subjects/{subject}/versions/2", auth=ADMIN).status_code == 200
    assert client.get("/subjects/orders.nothing.v1-value/versions", auth=ADMIN).status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.request("BREW", "/subjects").status_code == 405

    samples = scrape(client)
    versions = "/subjects/{subject:path}/versions"
    requests = "mesh_registry_requests_total"
    assert value(samples, requests, method="POST", route=versions, status="200") == 3
    assert value(samples, requests, method="GET", route=versions + "/{version}", status="200") == 1
    assert value(samples, requests, method="GET", route=versions, status="404") == 1
    assert value(samples, requests, method="GET", route="(unmatched)", status="404") == 1
    assert value(samples, requests, method="other", route="/subjects", status="405") == 1
    # never a raw path as a label: a client cannot grow the label set
    routes = {dict(labels).get("route") for (name, labels) in samples if name == requests}
    assert all(route is None or "orders." not in route for route in routes)
    latency = "mesh_registry_request_duration_seconds"
    assert value(samples, latency + "_count", method="POST", route=versions) == 3
    assert value(samples, latency + "_sum", method="POST", route=versions) > 0
    # the registry's state and its writes
    assert value(samples, "mesh_registry_state_entries", kind="subjects") == 1
    assert value(samples, "mesh_registry_state_entries", kind="versions") == 3
    assert value(samples, "mesh_registry_state_entries", kind="schemas") == 3
    assert value(samples, "mesh_registry_log_records_applied_total") >= 6  # 3 schemas, 3 versions
    writes = "mesh_registry_store_write_duration_seconds_count"
    assert value(samples, writes, stage="append") >= 3
    assert value(samples, "mesh_registry_replayed") == 1
    assert value(samples, "mesh_registry_role", role="writer") == 1
    assert value(samples, "mesh_registry_role", role="follower") == 0

    # a scrape is a request too: the counters move between two scrapes
    again = scrape(client)
    assert value(again, requests, method="GET", route="/metrics", status="200") == 1 + value(
        samples, requests, method="GET", route="/metrics", status="200"
    )


def test_replay_duration_and_state_after_a_restart() -> None:
    store = InMemoryStore()
    first = make_client(store)
    assert (
        first.post(
            "/subjects/orders.a.v1-value/versions", json={"schema": schema()}, auth=ADMIN
        ).status_code
        == 200
    )
    restarted = make_client(InMemoryStore(store.records))
    samples = scrape(restarted)
    assert value(samples, "mesh_registry_state_entries", kind="subjects") == 1
    assert ("mesh_registry_replay_duration_seconds", ()) in samples
    # each app has its own metrics: the restarted one has answered no write
    assert value(samples, "mesh_registry_store_write_duration_seconds_count", stage="append") == 0


def test_metrics_and_liveness_need_no_credential_even_with_read_auth() -> None:
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS), read_requires_auth=True)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/subjects").status_code == 401
    assert client.get("/health/live").json() == {"status": "alive"}
    samples = scrape(client)
    requests = "mesh_registry_requests_total"
    assert value(samples, requests, method="GET", route="/subjects", status="401") == 1
    assert value(samples, requests, method="GET", route="/health/live", status="200") == 1


def test_access_log_has_one_line_per_request_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client()
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client.get("/subjects?token=admin-secret", auth=ADMIN)
    client.post(
        "/subjects/orders.b.v1-value/versions", json={"schema": schema()}, auth=ADMIN
    ).raise_for_status()
    lines = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(lines) == 2
    first, second = lines
    assert (first.method, first.path, first.route, first.status) == (  # type: ignore[attr-defined]
        "GET",
        "/subjects",
        "/subjects",
        200,
    )
    assert second.route == "/subjects/{subject:path}/versions"  # type: ignore[attr-defined]
    assert second.path == "/subjects/orders.b.v1-value/versions"  # type: ignore[attr-defined]
    assert second.client == "testclient"  # type: ignore[attr-defined]
    assert second.duration_ms >= 0  # type: ignore[attr-defined]
    assert first.getMessage().startswith("GET /subjects -> 200 in ")
    for record in lines:
        text = record.getMessage() + json.dumps(vars(record), default=str)
        assert "admin-secret" not in text
        assert "Basic " not in text


def test_access_log_escapes_control_characters_of_the_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """h39: `GET /nothing%0D%0Aforged-line` wrote a second, forged line into the log."""
    client = make_client()
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client.get("/nothing%0D%0Aforged-line")
    client.get("/subjects/%1B%5B31mRED%1B%5B0m/versions")
    client.get("/a%5Cr%5Cn")  # a backslash is escaped too: not read as the CR LF above
    paths = [r.path for r in caplog.records if r.name == ACCESS_LOGGER]  # type: ignore[attr-defined]
    assert paths == [
        "/nothing\\r\\nforged-line",
        "/subjects/\\x1b[31mRED\\x1b[0m/versions",
        "/a\\\\r\\\\n",
    ]
    for record in caplog.records:
        assert "\n" not in record.getMessage()
        assert "\x1b" not in record.getMessage()


class ReplayingStore(InMemoryStore):
    """A store still replaying its log (as a Kafka store is right after start)."""

    def starting(self) -> str | None:
        return "replaying the registry log: 10 of 100 records"


def test_during_the_replay_metrics_and_health_answer_and_other_routes_wait() -> None:
    app = create_app(ReplayingStore(), credentials=Credentials(TOKENS), wait_for_replay=False)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/subjects", auth=ADMIN).status_code == 503
    assert client.get("/health/live").status_code == 200
    samples = scrape(client)
    assert value(samples, "mesh_registry_replayed") == 0
    requests = "mesh_registry_requests_total"
    # answered by the start-up gate before routing, still counted by its route template
    assert value(samples, requests, method="GET", route="/subjects", status="503") == 1
