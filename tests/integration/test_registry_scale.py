"""The registry scale benchmark at a small size, against the real broker: its report has
the promised shape, every answer it timed was right, and a freshly replayed registry on
the benchmark's topic answers every id with its schema (no timed assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mesh_stream.bench.registry_scale import run_registry_scale, scale_schema, subject_name
from mesh_stream.registry.service.kafka_store import KafkaStore
from mesh_stream.registry.service.schemas import SchemaRegistry
from mesh_stream.schema.avro import normalize, parse_schema
from tests.conftest import KafkaAddress

MESH = str(Path(sys.executable).with_name("mesh"))
LATENCY_KEYS = {"requests", "p50_ms", "p99_ms", "max_ms"}
SIZE_KEYS = {
    "subjects",
    "topic",
    "writer_id",
    "records",
    "fill_s",
    "startup_s",
    "replay_records_per_s",
    "rss_growth_mb",
    "lookup_by_id",
    "lookup_by_subject",
    "core_lookup_by_id_us",
    "wrong_answers",
    "checked_ids",
}


def test_scale_bench_at_1k_subjects_replays_a_registry_that_answers_every_id(
    kafka: KafkaAddress,
) -> None:
    lines: list[str] = []
    report = run_registry_scale(
        kafka.bootstrap_servers, sizes=(1_000,), requests=1_000, progress=lines.append
    )
    assert set(report) == {"sizes", "targets", "met"}
    assert report["targets"] == {"startup_s_at_100k": 60.0, "lookup_by_id_p99_ms_at_100k": 5.0}
    assert report["met"] is None  # only judged at 100k subjects
    [size] = report["sizes"]
    assert set(size) == SIZE_KEYS
    assert (size["subjects"], size["records"], size["checked_ids"]) == (1_000, 2_000, 1_000)
    assert size["wrong_answers"] == 0
    for key in ("lookup_by_id", "lookup_by_subject"):
        assert set(size[key]) == LATENCY_KEYS
        assert size[key]["requests"] == 1_000
        assert 0 < size[key]["p50_ms"] <= size[key]["p99_ms"] <= size[key]["max_ms"]
    assert size["startup_s"] > 0
    topic = size["topic"]
    assert lines[0].startswith(f"registry scale: 1,000 subjects written to {topic} in ")
    assert any(
        line.startswith(f"registry: replayed 2,000 records of {topic} in ") for line in lines
    )

    # A fresh replay of the benchmark's topic: every id names its subject's schema.
    store = KafkaStore(kafka.bootstrap_servers, topic=topic, transactional_id=size["writer_id"])
    core = SchemaRegistry(store)
    store.open(core.state.apply)
    try:
        assert len(core.subjects()) == 1_000
        for n in range(1_000):
            schema_id = n + 1
            assert core.get_schema(schema_id) == normalize(parse_schema(scale_schema(n)))
            assert core.subject_versions_of(schema_id) == [(subject_name(n), 1)]
            assert core.lookup(subject_name(n), json.dumps(scale_schema(n))).schema_id == n + 1
    finally:
        store.close()


def test_mesh_bench_registry_scale_writes_its_report(kafka: KafkaAddress, tmp_path: Path) -> None:
    env = {**os.environ, "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    done = subprocess.run(
        [
            MESH,
            "bench",
            "--registry-scale",
            "--scale-subjects",
            "500",
            "--json",
            "--output",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / "registry-scale.json").read_text())
    [size] = report["registry_scale"]["sizes"]
    assert (size["subjects"], size["wrong_answers"], size["checked_ids"]) == (500, 0, 500)
    table = (tmp_path / "registry-scale.txt").read_text().splitlines()
    assert table[0].split()[:2] == ["subjects", "start-up"]
    assert table[1].split()[0] == "500"
    refused = subprocess.run(
        [MESH, "bench", "--registry-scale", "--scale-subjects", "1k"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "'1k' is not a list of positive subject counts; e.g. 1000,10000" in refused.stderr
