"""`mesh bench --portal` at 50 products: the report's shape, and every timed load rendered every
card the server sent; real figures, no timing asserted (the 1,000-product figure is for
docs/benchmarks.md, measured by hand: `mesh bench --portal`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mesh_stream.bench.portal_bench import FIGURES, LOADS, PAGES, WARMUPS, catalog

MESH = str(Path(sys.executable).with_name("mesh"))
SPREAD = {"median", "min", "max"}


def test_the_catalog_is_realistic_and_registrable() -> None:
    products = catalog(200)
    names = [descriptor["name"] for _, descriptor in products]
    assert len(set(names)) == 200
    assert len({d["domain"] for _, d in products}) == 20
    assert {d["kind"] for _, d in products} == {"source-aligned", "aggregate", "consumer-aligned"}
    seen: set[str] = set()
    for schema, descriptor in products:
        assert len(schema["fields"]) == 10
        assert all(field["doc"] for field in schema["fields"])
        assert set(descriptor["inputs"]) <= seen  # inputs registered first
        seen.add(descriptor["name"])
    assert any("revenue" in f["doc"] for s, _ in products for f in s["fields"])
    assert catalog(50) == catalog(50)  # deterministic


def test_portal_bench_renders_every_card_in_every_load(tmp_path: Path) -> None:
    run = subprocess.run(
        [MESH, "bench", "--portal", "--portal-products", "50", "--json", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert set(report) == {"generated_at", "machine", "broker", "portal"}
    assert report == json.loads((tmp_path / "portal-bench.json").read_text())
    text = (tmp_path / "portal-bench.txt").read_text()
    assert "portal page speed: 50 products" in text
    assert "target: all products rendered in under 1,000 ms:" in text
    [result] = report["portal"]
    assert (result["products"], result["loads"], result["warmups"]) == (50, LOADS, WARMUPS)
    csp = [e for e in result["console_errors"] if "Content Security Policy" in e]
    assert csp == []
    assert [case["path"] for case in result["cases"]] == [path for _, path in PAGES]
    everything, query = result["cases"]
    assert everything["cards"] == 50  # 50 products, all on the first page
    assert 0 < query["cards"] < 50  # only the products with a field doc saying revenue
    for case in result["cases"]:
        assert case["cards_in_dom"] == [case["cards"]] * LOADS
        assert len(case["runs"]) == LOADS
        for figure in FIGURES:
            assert set(case[figure]) == SPREAD
            assert case[figure]["min"] <= case[figure]["median"] <= case[figure]["max"]
        for timed in case["runs"]:
            assert timed["cards_in_dom"] == case["cards"]
            assert timed["html_bytes"] > 10_000
            for figure in ("server_ms", "response_ms", "cards_ms", "load_ms", "rendered_ms"):
                assert timed[figure] > 0, (case["case"], figure, timed)
            assert timed["cards_ms"] <= timed["load_ms"]
            assert timed["dom_content_loaded_ms"] <= timed["load_ms"]
