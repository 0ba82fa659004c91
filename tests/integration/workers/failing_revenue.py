"""A revenue worker whose key function fails on one order, started by ``test_rekey_stage.py``.

``python -m tests.integration.workers.failing_revenue worker -l info`` runs the revenue
processor over private 1-partition copies of its products (run ``MESH_BENCH_RUN_ID``); its
``key`` (or, with ``MESH_TEST_FAIL_IN=apply``, its ``apply``) raises on the order whose
``order_id`` is ``MESH_TEST_FAIL_ORDER`` (when that is set), the way a bug in a processor's own
code would. With ``MESH_TEST_RETAIN_MS`` its closed windows are kept that long (not a day);
with ``MESH_TEST_READ_ITEMS`` it also reads each order's lines (``items``), which its
``apply`` does not use, so that large orders make large internal records; with
``MESH_TEST_KEEP_SKUS`` as well its ``apply`` keeps every line's SKU in the window's state,
which then grows with every order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from domains.analytics.processors import revenue
from mesh_stream.descriptor import load_descriptors
from mesh_stream.processing import Event, Tumbling
from mesh_stream.processing.app import ProcessorSpec
from mesh_stream.processing.engine import retarget, run
from mesh_stream.registration import ensure_topics, schema_text
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

REPO_ROOT = Path(__file__).resolve().parents[3]


def failing_spec(settings: MeshSettings, run_id: str) -> ProcessorSpec:
    """The revenue processor's spec over private 1-partition copies of its products."""
    products = {p.name: p for p in load_descriptors(REPO_ROOT / "domains")}
    domain = f"fail{run_id}"
    source = products["orders.order-placed"].model_copy(
        update={"name": f"{domain}.order-placed", "domain": domain, "partitions": 1}
    )
    output = products[revenue.PRODUCT].model_copy(
        update={
            "name": f"{domain}.revenue-by-region",
            "domain": domain,
            "partitions": 1,
            "inputs": (source.name,),
        }
    )
    ensure_topics(settings.resolved_bootstrap_servers(), [source, output])
    text = schema_text(output, REPO_ROOT)
    with RegistryClient.from_settings(settings) as registry:
        schema_id = registry.register_schema(output.value_subject, text)
    return ProcessorSpec(output, (source,), schema_id, settings, text)


def main() -> None:
    failing = os.environ.get("MESH_TEST_FAIL_ORDER")
    in_apply = os.environ.get("MESH_TEST_FAIL_IN") == "apply"
    [orders] = revenue.PROCESSOR.inputs

    def key(order: Mapping[str, Any]) -> str | None:
        if order["order_id"] == failing and not in_apply:
            raise ValueError(f"route cannot handle order {failing}")
        return orders.key(order)

    keep_skus = bool(os.environ.get("MESH_TEST_KEEP_SKUS"))

    def apply(window: dict[str, Any], event: Event) -> None:
        if event.fields["order_id"] == failing and in_apply:
            raise ValueError(f"apply cannot handle order {failing}")
        revenue.add_order(window, event)
        if keep_skus:
            window.setdefault("skus", []).extend(item["sku"] for item in event.fields["items"])

    reads = (*orders.reads, "order_id")
    if os.environ.get("MESH_TEST_READ_ITEMS"):
        reads += ("items",)
    buggy = dataclasses.replace(
        revenue.PROCESSOR,
        inputs=(dataclasses.replace(orders, key=key, reads=reads),),
        apply=apply,
    )
    retain = os.environ.get("MESH_TEST_RETAIN_MS")
    if retain is not None:
        window = revenue.PROCESSOR.window
        assert isinstance(window, Tumbling)
        buggy = dataclasses.replace(
            buggy, window=dataclasses.replace(window, retain_ms=int(retain))
        )
    spec = failing_spec(MeshSettings(), os.environ["MESH_BENCH_RUN_ID"])
    run(retarget(buggy, spec), spec=spec)


if __name__ == "__main__":
    main()
