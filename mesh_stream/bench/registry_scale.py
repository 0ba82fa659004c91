"""Registry scale benchmark: start-up replay time and lookup p99 at 1k, 10k, 100k subjects.

For each size it fills a fresh registry topic with one schema and one subject version per
subject, written as the registry itself writes them (:class:`Record` encoding, schema text
normalised as the registry stores it), then times a fresh registry's start-up (topic
check, writer init, replay of every record, writer claim), serves it over HTTP and measures
``GET /schemas/ids/{id}`` and ``POST /subjects/{subject}`` (Confluent's lookup) one request
at a time, checking every answer. ``mesh bench --registry-scale`` runs it alone;
``mesh bench`` runs it at 1k and 10k subjects.
"""

from __future__ import annotations

import json
import math
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import httpx

from mesh_stream.kafka.clients import NO_LOSS_PRODUCER_CONFIG, make_producer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.topics import cluster_info, ensure_topic, topic_spec
from mesh_stream.registry.service.app import create_app
from mesh_stream.registry.service.kafka_store import KafkaStore
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.registry.service.state import Record
from mesh_stream.schema.avro import normalize, parse_schema

DEFAULT_SIZES = (1_000, 10_000)
FULL_SIZES = (1_000, 10_000, 100_000)
NAME_MARK = "ScaleBenchNAMEMARK"
Call = tuple[str, str, Any, dict[str, Any]]


def scale_schema(n: int) -> dict[str, Any]:
    """Subject n's schema: three fields, a record name of its own (so one id per subject)."""
    return {
        "type": "record",
        "name": f"Scale{n}" if n >= 0 else NAME_MARK,
        "namespace": "bench.scale",
        "doc": "A subject of the registry scale benchmark.",
        "fields": [
            {"name": "id", "type": "string", "doc": "Entity id."},
            {"name": "amount", "type": "long", "doc": "Amount in cents."},
            {"name": "note", "type": ["null", "string"], "default": None, "doc": "A note."},
        ],
    }


def subject_name(n: int) -> str:
    return f"bench.scale-{n:06d}.v1-value"


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values)) - 1)
    return sorted_values[max(0, index)]


def fill_topic(bootstrap_servers: str, topic: str, subjects: int) -> dict[int, str]:
    """Write ``subjects`` schemas + versions to a new compacted ``topic``; id -> schema text.

    The schema text is the registry's normal form of :func:`scale_schema` (checked on a few
    subjects against :func:`normalize`), so lookups by content find these ids.
    """
    conn = KafkaConnection.create(bootstrap_servers)
    spec = topic_spec(topic, cluster_info(conn), partitions=1, cleanup_policy="compact")
    config = {**spec.config, "min.compaction.lag.ms": "0"}
    ensure_topic(conn, replace(spec, config=config), strict=True)
    template = normalize(parse_schema(scale_schema(-1)))
    texts = {n + 1: template.replace(NAME_MARK, f"Scale{n}") for n in range(subjects)}
    for n in {0, subjects // 2, subjects - 1}:
        if texts[n + 1] != normalize(parse_schema(scale_schema(n))):
            raise AssertionError(f"the generated schema of subject {n} is not in normal form")
    producer = make_producer(
        conn,
        {**NO_LOSS_PRODUCER_CONFIG, "linger.ms": 20, "compression.type": "lz4"},
    )
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for schema_id, text in texts.items():
        records = (
            Record(("schema", schema_id), {"schema": text}),
            Record(
                ("version", subject_name(schema_id - 1), 1), {"id": schema_id, "deleted": False}
            ),
        )
        for record in records:
            key, value = record.encode()
            while True:
                try:
                    producer.produce(topic, value, key, partition=0, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.poll(0)
    if producer.flush(120) or failures:
        raise RuntimeError(f"filling {topic} failed: {failures[:3] or 'flush timed out'}")
    return texts


def _time_requests(url: str, calls: Sequence[Call]) -> tuple[dict[str, float], int]:
    """Latencies (ms) of ``calls`` made one at a time; and how many answers were wrong.

    The client runs in a process of its own, so it does not share the registry's GIL (an
    in-process client doubles the p99 on two cores). A call is (method, path, JSON body,
    fields the answer must have with these values).
    """
    done = subprocess.run(
        [sys.executable, "-m", "mesh_stream.bench.registry_scale", "--client", url],
        input=json.dumps(list(calls)),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the benchmark client failed:\n{done.stderr[-2000:]}")
    latencies, wrong = json.loads(done.stdout)
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": round(_percentile(ordered, 0.50), 3),
        "p99_ms": round(_percentile(ordered, 0.99), 3),
        "max_ms": round(ordered[-1], 3) if ordered else math.nan,
    }, wrong


def _client(url: str, calls: Sequence[Call]) -> tuple[list[float], int]:
    """(In the client process.) Make ``calls`` one at a time: latencies in ms, wrong answers."""
    latencies: list[float] = []
    wrong = 0
    with httpx.Client(base_url=url, timeout=30.0) as http:
        for method, path, body, _expected in calls[:50]:  # warm-up: connection, first parse
            http.request(method, path, json=body)
        for method, path, body, expected in calls:
            started = time.perf_counter()
            response = http.request(method, path, json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            answer = response.json() if response.status_code == 200 else {}
            if any(answer.get(key) != value for key, value in expected.items()):
                wrong += 1
    return latencies, wrong


def _core_lookup_us(store_view: Any, ids: Sequence[int], repeats: int = 20_000) -> float:
    """CPU per lookup by id in the registry core (no HTTP): microseconds."""
    started = time.perf_counter()
    for i in range(repeats):
        store_view.get_schema(ids[i % len(ids)])
    return (time.perf_counter() - started) / repeats * 1e6


def measure_size(
    bootstrap_servers: str,
    subjects: int,
    *,
    requests: int = 2_000,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fill a topic with ``subjects`` subjects, start a registry on it, time it, check it."""
    session = uuid.uuid4().hex[:8]
    topic = f"_mesh_registry-scale-{subjects}-{session}"
    writer_id = f"mesh-registry-scale-{session}"
    started = time.perf_counter()
    texts = fill_topic(bootstrap_servers, topic, subjects)
    fill_s = time.perf_counter() - started
    progress(f"registry scale: {subjects:,} subjects written to {topic} in {fill_s:.1f}s")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    store = KafkaStore(
        bootstrap_servers, topic=topic, transactional_id=writer_id, timeout=60.0, progress=progress
    )
    app = create_app(store, credentials=None)
    startup_s = time.perf_counter() - started
    progress(f"registry scale: {subjects:,} subjects replayed, registry up in {startup_s:.2f}s")
    server = RegistryServer(app)
    try:
        url = server.start()
        core = app.state.services.schemas
        rng = random.Random(subjects)
        ids = list(texts) if subjects <= requests else rng.sample(sorted(texts), requests)
        by_id, wrong_ids = _time_requests(
            url,
            [
                (
                    "GET",
                    f"/schemas/ids/{i}",
                    None,
                    {"schema": texts[i]},
                )
                for i in ids
            ],
        )
        by_subject, wrong_subjects = _time_requests(
            url,
            [
                (
                    "POST",
                    f"/subjects/{subject_name(i - 1)}",
                    {"schema": json.dumps(scale_schema(i - 1))},
                    {"id": i, "version": 1},
                )
                for i in ids
            ],
        )
        core_us = _core_lookup_us(core, ids)
    finally:
        server.stop()
        store.close()
    return {
        "subjects": subjects,
        "topic": topic,
        "writer_id": writer_id,
        "records": 2 * subjects,
        "fill_s": round(fill_s, 2),
        "startup_s": round(startup_s, 2),
        "replay_records_per_s": round(2 * subjects / startup_s),
        "rss_growth_mb": round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1
        ),
        "lookup_by_id": by_id,
        "lookup_by_subject": by_subject,
        "core_lookup_by_id_us": round(core_us, 2),
        "wrong_answers": wrong_ids + wrong_subjects,
        "checked_ids": len(ids),
    }


def run_registry_scale(
    bootstrap_servers: str,
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    requests: int = 2_000,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure every size in ``sizes``; JSON-able, with the targets of issue 11."""
    results = [
        measure_size(bootstrap_servers, n, requests=requests, progress=progress) for n in sizes
    ]
    largest = max(results, key=lambda r: r["subjects"])
    return {
        "sizes": results,
        "targets": {
            "startup_s_at_100k": 60.0,
            "lookup_by_id_p99_ms_at_100k": 5.0,
        },
        "met": None
        if largest["subjects"] < 100_000
        else {
            "startup": largest["startup_s"] < 60.0,
            "lookup_by_id_p99": largest["lookup_by_id"]["p99_ms"] < 5.0,
        },
    }


def render_scale(report: dict[str, Any]) -> str:
    """The scale report as a small table."""
    lines = [
        f"{'subjects':>9} {'start-up s':>10} {'records/s':>10} {'by id p50/p99 ms':>17} "
        f"{'by subject p50/p99 ms':>22} {'core us':>8} {'wrong':>6}"
    ]
    for row in report["sizes"]:
        by_id, by_subject = row["lookup_by_id"], row["lookup_by_subject"]
        lines.append(
            f"{row['subjects']:>9,} {row['startup_s']:>10.2f} {row['replay_records_per_s']:>10,} "
            f"{by_id['p50_ms']:>8.2f}/{by_id['p99_ms']:<8.2f} "
            f"{by_subject['p50_ms']:>11.2f}/{by_subject['p99_ms']:<10.2f} "
            f"{row['core_lookup_by_id_us']:>8.2f} {row['wrong_answers']:>6}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - manual use, and the client process
    if sys.argv[1] == "--client":
        print(json.dumps(_client(sys.argv[2], json.loads(sys.stdin.read()))))
        sys.exit(0)
    sizes = tuple(int(s) for s in sys.argv[2].split(",")) if len(sys.argv) > 2 else FULL_SIZES
    found = run_registry_scale(sys.argv[1], sizes=sizes)
    print(json.dumps(found, indent=2))
    print(render_scale(found))
