"""The registry benchmark runs against the real registry and reports consistent numbers."""

from __future__ import annotations

import math

from mesh_stream.bench.registry_bench import run_registry_bench
from tests.conftest import RegistryAddress


def test_registry_bench_reports_throughput_latency_and_cache_cost(
    registry: RegistryAddress,
) -> None:
    result = run_registry_bench(
        registry.url,
        seconds=1.5,
        concurrency=4,
        principal="admin",
        token=registry.admin_token,
        cache_iterations=20_000,
    )
    load = result["get_schema_by_id"]
    assert load["errors"] == 0
    assert load["requests"] > 0
    assert math.isclose(load["requests_per_s"], load["requests"] / load["elapsed_s"])
    assert 0 < load["p50_ms"] <= load["p99_ms"]
    cache = result["client_cache_hit"]
    assert cache["iterations"] == 20_000
    # A cache hit is a dict lookup: far below one HTTP round trip.
    assert 0 < cache["ns_per_call"] < load["p50_ms"] * 1_000_000
