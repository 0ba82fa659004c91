"""A revenue worker on private 3-partition products, started (twice) by the scale-out test.

``python -m tests.integration.workers.scale_out_revenue worker -l info`` runs the revenue
processor's own code over the products of run ``MESH_SCALE_OUT_RUN_ID`` (domain
``scale<run id>``). Unlike the benchmark's copies, the input keeps its 3 partitions, so two
workers of the same app can each own part of the input, the internal topic and the tables.

With ``MESH_TEST_LOSE_HANDOVER`` (``partition:offset,...``) each of those internal records is
lost the first time faust's consumer hands it to the aggregate's stream, as faust loses one
when it resumes its flow control after seeking (see ``faust_seams.ReadInOrder``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from faust.transport.conductor import Conductor

from domains.analytics.processors import revenue
from mesh_stream.descriptor import DataProduct, load_descriptors
from mesh_stream.processing.app import ProcessorSpec
from mesh_stream.processing.engine import retarget, run
from mesh_stream.processing.names import INTERNAL_TOPIC
from mesh_stream.registration import ensure_topics, schema_text
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 3
RUN_ID_VARIABLE = "MESH_SCALE_OUT_RUN_ID"
LOSE_HANDOVER_VARIABLE = "MESH_TEST_LOSE_HANDOVER"


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


def lose_handovers(internal_topic: str, positions: set[tuple[int, int]]) -> None:
    """Make faust lose the records of ``internal_topic`` at ``positions`` (partition, offset)
    once each, between its consumer and the stream, where its flow control drops them."""
    build = Conductor._build_handler
    lost: set[tuple[int, int]] = set()

    def losing_build(self: Conductor, tp: Any, channels: Any) -> Any:
        on_message = build(self, tp, channels)

        async def losing_on_message(message: Any) -> None:
            where = (message.partition, message.offset)
            if message.topic == internal_topic and where in positions and where not in lost:
                lost.add(where)
                return
            await on_message(message)

        return losing_on_message

    Conductor._build_handler = losing_build  # type: ignore[method-assign]


def main() -> None:
    spec = scale_out_spec(MeshSettings(), os.environ[RUN_ID_VARIABLE])
    if lose := os.environ.get(LOSE_HANDOVER_VARIABLE):
        positions = {(int(p), int(o)) for p, o in (pair.split(":") for pair in lose.split(","))}
        lose_handovers(f"{spec.app_id}-{INTERNAL_TOPIC}", positions)
    run(retarget(revenue.PROCESSOR, spec), spec=spec)


if __name__ == "__main__":
    main()
