"""Products as OpenLineage datasets, processors as OpenLineage jobs.

Built with the ``openlineage-python`` client's own classes (the ``lineage`` extra), whose
validators check what the spec requires (event time, run id, schema URLs), then rendered as
the plain JSON documents the spec defines (:func:`to_document`).

- a product is a dataset: namespace ``kafka://<first bootstrap host:port>`` and name = its
  topic, as OpenLineage names Kafka topics, with the ``schema`` (nested fields, Avro types,
  docs), ``documentation``, ``ownership``, ``dataSource`` and, for a product whose
  descriptor declares ``field_lineage``, ``columnLineage`` facets;
- a processor is a job in namespace ``mesh-stream`` named after its output product; its
  worker's life is a run (:func:`run_event`: START, RUNNING, COMPLETE, FAIL);
- the registry's lineage graph is OpenLineage *static lineage* (:func:`static_lineage`): one
  ``JobEvent`` (no ``eventType``, no run) per derived product, its inputs and its output.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mesh_stream.descriptor import DataProduct, topic_for
from mesh_stream.errors import ConfigurationError
from mesh_stream.exports.source import ExportedProduct, KafkaServer
from mesh_stream.schema.names import Scope

try:
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        JobEvent,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        column_lineage_dataset,
        datasource_dataset,
        documentation_dataset,
        error_message_run,
        job_type_job,
        ownership_dataset,
        schema_dataset,
    )
    from openlineage.client.serde import Serde
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError(
        "OpenLineage export needs the openlineage-python client: pip install 'mesh-stream[lineage]'"
    ) from exc

#: The job namespace of every processor (OpenLineage: where jobs of one scheduler live).
JOB_NAMESPACE = "mesh-stream"


def _producer() -> str:
    try:
        release = version("mesh-stream")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        release = "0"
    return f"https://pypi.org/project/mesh-stream/{release}/"


#: Who wrote an event or a facet (the spec asks for a URI).
PRODUCER = _producer()

__all__ = [
    "JOB_NAMESPACE",
    "PRODUCER",
    "RunState",
    "dataset_namespace",
    "input_dataset",
    "output_dataset",
    "run_event",
    "static_lineage",
    "to_document",
]


def dataset_namespace(server: KafkaServer) -> str:
    """``kafka://host:port`` of the first bootstrap server (OpenLineage's Kafka naming)."""
    if not server.hosts:
        raise ConfigurationError("no bootstrap server to name the datasets' namespace with")
    return f"kafka://{server.hosts[0]}"


# -- schema -------------------------------------------------------------------------------


def _type_of(avro: Any, scope: Scope) -> tuple[str, list[Any], Scope]:
    """(type name, nested record fields, the scope they are read in) of an Avro type; a
    union with null is its other branch (the field is nullable), a logical type is named by
    it, a named type is its definition wherever it is used."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) == 1:
            return _type_of(branches[0], scope)
        return "union", [], scope
    if isinstance(avro, str):
        found = scope.resolve(avro)
        return _type_of(*found) if found is not None else (avro, [], scope)
    if isinstance(avro, Mapping):
        if "logicalType" in avro:
            return str(avro["logicalType"]), [], scope
        kind = str(avro.get("type"))
        if kind in ("record", "error"):
            inner = scope.enter(avro)
            if inner is None:
                return "record", [], scope
            return "record", list(avro.get("fields", ())), inner
        if kind == "array":
            _, nested, inner = _type_of(avro.get("items"), scope)
            return "array", nested, inner
        if kind == "map":
            _, nested, inner = _type_of(avro.get("values"), scope)
            return "map", nested, inner
        if kind in ("enum", "fixed"):
            return kind, [], scope
        return _type_of(avro.get("type"), scope)
    return "unknown", [], scope


def _schema_fields(fields: Sequence[Mapping[str, Any]], scope: Scope) -> list[Any]:
    out = []
    for position, item in enumerate(fields, start=1):
        kind, nested, inner = _type_of(item.get("type"), scope)
        out.append(
            schema_dataset.SchemaDatasetFacetFields(
                name=str(item["name"]),
                type=kind,
                description=item.get("doc"),
                ordinal_position=position,
                fields=_schema_fields(nested, inner),
            )
        )
    return out


def _facets(item: ExportedProduct, server: KafkaServer) -> dict[str, Any]:
    product = item.product
    return {
        "schema": schema_dataset.SchemaDatasetFacet(
            fields=_schema_fields(item.schema.get("fields", ()), Scope.of(item.schema)),
            producer=PRODUCER,
        ),
        "documentation": documentation_dataset.DocumentationDatasetFacet(
            description=product.description, contentType="text/plain", producer=PRODUCER
        ),
        "ownership": ownership_dataset.OwnershipDatasetFacet(
            owners=[ownership_dataset.Owner(name=f"team:{product.owner.team}", type="OWNER")],
            producer=PRODUCER,
        ),
        "dataSource": datasource_dataset.DatasourceDatasetFacet(
            name=dataset_namespace(server), uri=dataset_namespace(server), producer=PRODUCER
        ),
    }


def _column_lineage(product: DataProduct, namespace: str, topics: Mapping[str, str]) -> Any | None:
    """The ``columnLineage`` facet of ``product``'s ``field_lineage`` (None without one).

    An input not among the known products is named by its v1 topic.
    """
    if not product.field_lineage:
        return None
    fields = {}
    for output, sources in product.field_lineage.items():
        inputs = []
        for source in sources:
            name, _, field = source.partition(":")
            inputs.append(
                column_lineage_dataset.InputField(
                    namespace=namespace,
                    name=topics.get(name, topic_for(name)),
                    field=field,
                )
            )
        fields[output] = column_lineage_dataset.Fields(inputFields=inputs)
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields, producer=PRODUCER)


def input_dataset(item: ExportedProduct, server: KafkaServer) -> Any:
    """``item`` read by a job."""
    return InputDataset(
        namespace=dataset_namespace(server), name=item.product.topic, facets=_facets(item, server)
    )


def output_dataset(
    item: ExportedProduct, server: KafkaServer, topics: Mapping[str, str] | None = None
) -> Any:
    """``item`` written by its processor; ``topics`` (product name -> topic) names the inputs
    of its column lineage."""
    facets = _facets(item, server)
    lineage = _column_lineage(item.product, dataset_namespace(server), topics or {})
    if lineage is not None:
        facets["columnLineage"] = lineage
    return OutputDataset(
        namespace=dataset_namespace(server), name=item.product.topic, facets=facets
    )


def _job(output: DataProduct) -> Any:
    return Job(
        namespace=JOB_NAMESPACE,
        name=output.name,
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="STREAMING",
                integration="MESH_STREAM",
                jobType="PROCESSOR",
                producer=PRODUCER,
            )
        },
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


def run_event(
    state: RunState,
    run_id: str,
    output: ExportedProduct,
    inputs: Sequence[ExportedProduct],
    server: KafkaServer,
    *,
    error: str | None = None,
    event_time: str | None = None,
) -> Any:
    """One event of a processor worker's run (``run_id``: a UUID, the same for the run's
    life); ``error`` is the FAIL event's message."""
    topics = {item.product.name: item.product.topic for item in (*inputs, output)}
    run_facets: dict[str, Any] = {}
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python", producer=PRODUCER
        )
    return RunEvent(
        eventType=state,
        eventTime=event_time or _now(),
        run=Run(runId=run_id, facets=run_facets),
        job=_job(output.product),
        inputs=[input_dataset(item, server) for item in inputs],
        outputs=[output_dataset(output, server, topics)],
        producer=PRODUCER,
    )


def new_run_id() -> str:
    """A fresh run id (UUID v4, as the spec asks)."""
    return str(uuid.uuid4())


def static_lineage(
    products: Iterable[ExportedProduct],
    server: KafkaServer,
    *,
    known: Iterable[ExportedProduct] = (),
    event_time: str | None = None,
) -> list[Any]:
    """One ``JobEvent`` per derived product of ``products`` (those with inputs): the job that
    builds it, its input datasets and its output dataset, column lineage included.

    ``known`` are further products (e.g. the inputs of a selection) whose schemas describe
    input datasets; an input known nowhere is named by its v1 topic, without facets.
    """
    chosen = list(products)
    by_name = {item.product.name: item for item in (*known, *chosen)}
    topics = {name: item.product.topic for name, item in by_name.items()}
    when = event_time or _now()
    namespace = dataset_namespace(server)
    events = []
    for item in chosen:
        if not item.product.inputs:
            continue
        inputs = [
            input_dataset(by_name[name], server)
            if name in by_name
            else InputDataset(namespace=namespace, name=topic_for(name))
            for name in item.product.inputs
        ]
        events.append(
            JobEvent(
                eventTime=when,
                job=_job(item.product),
                inputs=inputs,
                outputs=[output_dataset(item, server, topics)],
                producer=PRODUCER,
            )
        )
    return events


def to_document(event: Any) -> dict[str, Any]:
    """The event as the spec's JSON (nulls and empty facets left out)."""
    return Serde.to_dict(event)
