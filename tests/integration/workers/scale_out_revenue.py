"""A revenue worker on private 3-partition products, started (twice) by the scale-out test.

``python -m tests.integration.workers.scale_out_revenue worker -l info`` runs the revenue
processor's own code over the products of run ``MESH_SCALE_OUT_RUN_ID`` (domain
``scale<run id>``). Unlike the benchmark's copies, the input keeps its 3 partitions, so two
workers of the same app can each own part of the input, the internal topic and the tables.

With ``MESH_TEST_LOSE_HANDOVER`` (``partition:offset:times,...``) each of those internal
records is lost the first ``times`` times faust's consumer hands it to the aggregate's stream,
as faust loses one when it resumes its flow control after seeking (see
``faust_seams.ReadInOrder``), and every commit is checked not to pass a lost record before the
stream has it again (an error line starting ``TEST:`` if one does).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import faust
from faust.transport.conductor import Conductor
from faust.types import TP

from domains.analytics.processors import revenue
from mesh_stream.descriptor import DataProduct, load_descriptors
from mesh_stream.processing import engine
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
#: An internal partition every record of which the worker loses on its way to the stream.
STALL_PARTITION_VARIABLE = "MESH_TEST_STALL_PARTITION"
#: A partition of the tables' changelogs every record of which the worker loses on its way to
#: the state's recovery.
STALL_CHANGELOG_VARIABLE = "MESH_TEST_STALL_CHANGELOG"

log = logging.getLogger(__name__)


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


class CommitWatch(faust.Sensor):
    """Logs an error if faust commits an internal partition past a record it lost before
    the stream had that record again (offsets committed ahead of delivery)."""

    def __init__(self, internal_topic: str, positions: set[tuple[int, int]]) -> None:
        super().__init__()
        self.topic = internal_topic
        self.waiting = set(positions)

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        del stream, event
        if tp.topic == self.topic:
            self.waiting.discard((tp.partition, offset))

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        del state
        for partition, offset in sorted(self.waiting):
            committed = consumer._committed_offset.get(TP(self.topic, partition))
            if committed is not None and committed > offset:
                log.error(
                    "TEST: %s[%d] committed at %d, past lost offset %d not read again yet",
                    self.topic,
                    partition,
                    committed,
                    offset,
                )


def lose_handovers(
    internal_topic: str,
    losses: dict[tuple[int, int], int],
    stalled: int | None = None,
    stalled_changelog: int | None = None,
) -> None:
    """Make faust lose the records of ``internal_topic`` at each (partition, offset) of
    ``losses`` the given number of times, between its consumer and the stream, where its flow
    control drops them, every record of partition ``stalled``, and every record of the tables'
    changelogs' partition ``stalled_changelog``; a :class:`CommitWatch` checks the commits
    meanwhile."""
    build = Conductor._build_handler
    left = dict(losses)

    def losing_build(self: Conductor, tp: Any, channels: Any) -> Any:
        on_message = build(self, tp, channels)

        async def losing_on_message(message: Any) -> None:
            where = (message.partition, message.offset)
            if message.topic == internal_topic and message.partition == stalled:
                return
            if message.topic.endswith("-changelog") and message.partition == stalled_changelog:
                return
            if message.topic == internal_topic and left.get(where, 0) > 0:
                left[where] -= 1
                return
            await on_message(message)

        return losing_on_message

    Conductor._build_handler = losing_build  # type: ignore[method-assign]
    namespace = vars(engine)  # build() looks processor_app up there
    make_app = namespace["processor_app"]

    def watched_app(spec: ProcessorSpec) -> faust.App:
        app: faust.App = make_app(spec)
        app.sensors.add(CommitWatch(internal_topic, set(losses)))
        # before faust sets up logging: straight to the worker's log file
        print(f"TEST: losing {losses} of {internal_topic}, watching its commits", file=sys.stderr)
        return app

    namespace["processor_app"] = watched_app


def main() -> None:
    spec = scale_out_spec(MeshSettings(), os.environ[RUN_ID_VARIABLE])
    lose, stall = os.environ.get(LOSE_HANDOVER_VARIABLE), os.environ.get(STALL_PARTITION_VARIABLE)
    stall_changelog = os.environ.get(STALL_CHANGELOG_VARIABLE)
    if lose or stall or stall_changelog:
        losses = {}
        for each in lose.split(",") if lose else ():
            partition, offset, times = (int(part) for part in each.split(":"))
            losses[partition, offset] = times
        stalled = int(stall) if stall else None
        stalled_changelog = int(stall_changelog) if stall_changelog else None
        lose_handovers(f"{spec.app_id}-{INTERNAL_TOPIC}", losses, stalled, stalled_changelog)
    run(retarget(revenue.PROCESSOR, spec), spec=spec)


if __name__ == "__main__":
    main()
