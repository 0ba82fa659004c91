"""Registry benchmark: ``GET /schemas/ids/{id}`` throughput and p99 latency at a fixed
concurrency, and the cost of a :class:`RegistryClient` cache hit (the path every consumer
takes per record). ``mesh bench`` calls :func:`run_registry_bench`."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import httpx

from mesh_stream.errors import ConfigurationError
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import shown_url

BENCH_SUBJECT = "bench.registry-bench.v1-value"
BENCH_SCHEMA = {
    "type": "record",
    "name": "RegistryBench",
    "namespace": "bench",
    "doc": "Payload of the registry benchmark.",
    "fields": [{"name": "n", "type": "long", "doc": "A counter."}],
}


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values)) - 1)
    return sorted_values[max(0, index)]


def _a_schema_id(client: RegistryClient) -> int:
    """An id to fetch: the latest schema of any subject, else one registered for the bench."""
    for subject in client.subjects():
        return client.get_latest(subject).schema_id
    try:
        return client.register_schema(BENCH_SUBJECT, BENCH_SCHEMA)
    except Exception as exc:
        raise ConfigurationError(
            "the registry has no schema to fetch and the benchmark could not register one; "
            "pass principal/token of admin or the `bench` domain (MESH_REGISTRY_PRINCIPAL, "
            f"MESH_REGISTRY_TOKEN): {exc}"
        ) from exc


async def _load(url: str, schema_id: int, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0) as http:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await http.get(f"/schemas/ids/{schema_id}")
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "elapsed_s": elapsed,
        "requests_per_s": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": _percentile(ordered, 0.50) * 1000,
        "p99_ms": _percentile(ordered, 0.99) * 1000,
    }


def _cache_hit_ns(client: RegistryClient, schema_id: int, iterations: int) -> dict[str, Any]:
    expected = client.get_schema(schema_id)  # warms the cache with one HTTP call
    calls_before = client.http_calls
    started = time.perf_counter_ns()
    for _ in range(iterations):
        client.get_schema(schema_id)
    per_call = (time.perf_counter_ns() - started) / iterations
    if client.http_calls != calls_before or client.get_schema(schema_id) != expected:
        raise AssertionError("RegistryClient.get_schema went to the network on a cache hit")
    return {"iterations": iterations, "ns_per_call": per_call, "schema_bytes": len(expected)}


def run_registry_bench(
    registry_url: str,
    *,
    seconds: float,
    concurrency: int,
    principal: str | None = None,
    token: str | None = None,
    cache_iterations: int = 200_000,
) -> dict[str, Any]:
    """Measure the registry at ``registry_url``; returns JSON-able numbers.

    ``principal``/``token`` are only needed when the registry holds no schema yet.
    """
    if seconds <= 0 or concurrency < 1:
        raise ConfigurationError("run_registry_bench needs seconds > 0 and concurrency >= 1")
    with RegistryClient(registry_url, principal=principal, token=token) as client:
        schema_id = _a_schema_id(client)
        load = asyncio.run(_load(registry_url, schema_id, seconds, concurrency))
        cache = _cache_hit_ns(client, schema_id, cache_iterations)
    return {
        "registry_url": shown_url(registry_url),
        "schema_id": schema_id,
        "concurrency": concurrency,
        "get_schema_by_id": load,
        "client_cache_hit": cache,
    }


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    print(json.dumps(run_registry_bench(sys.argv[1], seconds=5, concurrency=16), indent=2))
