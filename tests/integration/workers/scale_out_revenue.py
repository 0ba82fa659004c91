"""A revenue worker on private 3-partition products, started (twice) by the scale-out test.

``python -m tests.integration.workers.scale_out_revenue worker -l info`` runs the revenue
processor's own code over the products of run ``MESH_SCALE_OUT_RUN_ID`` (domain
``scale<run id>``). Unlike the benchmark's copies, the input keeps its 3 partitions, so two
workers of the same app can each own part of the input, the internal topic and the tables.
"""

from __future__ import annotations

import os
from pathlib import Path

from domains.analytics.processors import revenue
from mesh_stream.descriptor import DataProduct, load_descriptors
from mesh_stream.processing.app import ProcessorSpec
from mesh_stream.processing.engine import retarget, run
from mesh_stream.registration import ensure_topics, schema_text
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 3
RUN_ID_VARIABLE = "MESH_SCALE_OUT_RUN_ID"


def scale_out_products(run_id: str) -> tuple[DataProduct, DataProduct]:
    """Private copies of orders.order-placed and analytics.revenue-by-region, 3 partitions each."""
    products = {p.name: p for p in load_descriptors(REPO_ROOT / "domains")}
    domain = f"scale{run_id}"
    source = products["orders.order-placed"].model_copy(
        update={"name": f"{domain}.order-placed", "domain": domain, "partitions": PARTITIONS}
    )
    output = products[revenue.PRODUCT].model_copy(
        update={
            "name": f"{domain}.revenue-by-region",
            "domain": domain,
            "partitions": PARTITIONS,
            "inputs": (source.name,),
        }
    )
    return source, output


def scale_out_spec(settings: MeshSettings, run_id: str) -> ProcessorSpec:
    """The revenue processor's spec over the private products; registers the output schema."""
    source, output = scale_out_products(run_id)
    ensure_topics(settings.resolved_bootstrap_servers(), [source, output])
    with RegistryClient.from_settings(settings) as registry:
        schema_id = registry.register_schema(output.value_subject, schema_text(output, REPO_ROOT))
    return ProcessorSpec(output, (source,), schema_id, settings, schema_text(output, REPO_ROOT))


def main() -> None:
    spec = scale_out_spec(MeshSettings(), os.environ[RUN_ID_VARIABLE])
    run(retarget(revenue.PROCESSOR, spec), spec=spec)


if __name__ == "__main__":
    main()
