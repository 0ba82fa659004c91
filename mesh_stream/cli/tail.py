"""`mesh tail PRODUCT`: print a product's records, decoded, as they arrive."""

from __future__ import annotations

import json
import time
import uuid

import click

from mesh_stream.broker.reachability import existing_topics
from mesh_stream.cli.options import (
    FiniteFloatRange,
    ProjectChoice,
    checked_bootstrap_servers,
    checked_kafka_id,
    checked_registry_url,
    project_option,
)
from mesh_stream.cli.publish import registry_for
from mesh_stream.consumer import ConsumedRecord, ProductConsumer
from mesh_stream.errors import ConsumerError, DeserializationError, MeshError
from mesh_stream.governance.acl_plan import TAIL_GROUP_PREFIX
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.project import resolve_product
from mesh_stream.schema.codec import json_default
from mesh_stream.settings import MeshSettings, shown_url


def _as_json(record: ConsumedRecord) -> str:
    value = record.value.model_dump() if hasattr(record.value, "model_dump") else record.value
    return json.dumps(value, default=json_default, ensure_ascii=False, sort_keys=False)


def _ambiguous(key: str) -> bool:
    """Whether ``key`` shown bare could be read as something else: a control character
    (a newline starts a forged line), a blank (`k schema=9 ...` reads as more fields), a
    leading quote (a quoted key is how such keys are shown), or nothing at all."""
    return not key or not key.isprintable() or " " in key or key.startswith('"')


def render(record: ConsumedRecord, as_json: bool) -> str:
    """One output line: the value as JSON, or with its coordinates for humans."""
    if as_json:
        return _as_json(record)
    key = record.key.decode("latin-1") if isinstance(record.key, bytes) else record.key
    if isinstance(key, str) and _ambiguous(key):  # a newline would forge a record line
        key = json.dumps(key)  # escaped and quoted, as the value is
    return (
        f"{record.topic}[{record.partition}]@{record.offset} key={key} "
        f"schema={record.schema_id} {_as_json(record)}"
    )


@click.command("tail", short_help="Print a product's records, decoded, as they arrive.")
@click.argument("product")
@click.option(
    "--from-beginning", is_flag=True, help="Start at the oldest record (default: only new ones)."
)
@click.option("--max", "max_records", type=click.IntRange(min=1), help="Stop after N records.")
@click.option(
    "--timeout",
    type=FiniteFloatRange(min=0, min_open=True),
    help="Stop after S seconds without a new record. [default: wait until Ctrl-C]",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per line (the value only)."
)
@click.option(
    "--group",
    callback=checked_kafka_id,
    help="Consumer group id. [default: a new throw-away group; tail never commits offsets]",
)
@project_option
@click.option(
    "--bootstrap-servers",
    callback=checked_bootstrap_servers,
    help="Kafka bootstrap servers. [env: MESH_BOOTSTRAP_SERVERS; default: the local broker]",
)
@click.option(
    "--registry-url",
    callback=checked_registry_url,
    help="Registry URL. [env: MESH_REGISTRY_URL; default http://127.0.0.1:8081]",
)
@click.pass_obj
def tail(
    settings: MeshSettings,
    product: str,
    from_beginning: bool,
    max_records: int | None,
    timeout: float | None,
    as_json: bool,
    group: str | None,
    project: ProjectChoice,
    bootstrap_servers: str | None,
    registry_url: str | None,
) -> None:
    """Print the records of PRODUCT (e.g. orders.order-placed), decoded from Avro.

    Each record is decoded with the schema it was written with. Records that cannot be
    decoded are reported on stderr with their topic[partition]@offset and skipped (tail
    never writes to dead-letter topics). A topic that does not exist yet is read from its
    first record once it appears. When the registry is unavailable and a record needs a
    schema not seen yet, tail waits up to MESH_CONSUMER_REGISTRY_WAIT_SECONDS, then stops
    with a one-line error naming the record; so does every other consumer error.
    """
    updates = {"bootstrap_servers": bootstrap_servers, "registry_url": registry_url}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    registry = registry_for(settings)
    descriptor = resolve_product(product, project=project.locate(settings), registry=registry)
    connection = KafkaConnection.from_settings(settings, default_client_id="mesh-tail")
    bootstrap = connection.bootstrap_servers
    existing_topics(connection)  # a clear error when no broker answers or it refuses us
    consumer = ProductConsumer(
        [descriptor],
        group_id=group or f"{TAIL_GROUP_PREFIX}{uuid.uuid4().hex[:12]}",
        connection=connection,
        registry=registry,
        from_beginning=from_beginning,
        dead_letters=False,
        registry_wait_seconds=settings.consumer_registry_wait_seconds,
        root=None,  # the descriptor is resolved above
    )
    if descriptor.topic in consumer.new_topics:  # said once the consumer has subscribed
        click.echo(
            f"topic {descriptor.topic} does not exist yet at {bootstrap}; waiting for its "
            f"first record (publish with `mesh publish {descriptor.name} --file FILE`)",
            err=True,
        )
    shown = 0
    last_seen = time.monotonic()
    said_waiting = False
    try:
        while max_records is None or shown < max_records:
            waiting = consumer.registry_outage_seconds
            if waiting is not None and not said_waiting:
                said_waiting = True
                click.echo(
                    f"the registry at {shown_url(settings.registry_url)} does not answer: "
                    f"records whose writer schema is not cached wait, with the later records "
                    f"of their partitions, up to {settings.consumer_registry_wait_seconds:g} s "
                    f"(MESH_CONSUMER_REGISTRY_WAIT_SECONDS)",
                    err=True,
                )
            if timeout is not None and time.monotonic() - last_seen >= timeout:
                if waiting is not None:
                    raise ConsumerError(
                        f"{descriptor.topic}: stopped after --timeout {timeout:g} s with "
                        f"records still waiting for a writer schema from the registry at "
                        f"{shown_url(settings.registry_url)} (failing for {waiting:.1f} s; "
                        f"{consumer.position_text()}); start the registry or check "
                        f"MESH_REGISTRY_URL"
                    )
                break
            wait = 0.5 if timeout is None else max(0.05, min(0.5, timeout))
            want = 500 if max_records is None else min(500, max_records - shown)
            try:
                records = consumer.consume(want, wait)
            except DeserializationError as exc:
                click.echo(
                    f"skipped: {_undecodable(exc, descriptor.dlq_topic, bootstrap)}", err=True
                )
                last_seen = time.monotonic()
                continue
            except MeshError:
                raise  # its message names the record (topic[partition]@offset)
            except Exception as exc:
                raise ConsumerError(
                    f"{descriptor.topic}: reading after {shown} record(s) failed "
                    f"({consumer.position_text()}): {type(exc).__name__}: {exc}"
                ) from exc
            if records:
                last_seen = time.monotonic()
            for record in records:
                click.echo(render(record, as_json))
            shown += len(records)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
        registry.close()


def _undecodable(error: DeserializationError, dlq_topic: str, bootstrap: str) -> str:
    """A record tail could not decode, with what a command-line user can do about it (the
    consumer's own message suggests an SDK argument)."""
    topic = getattr(error, "topic", None)
    partition, offset = getattr(error, "partition", None), getattr(error, "offset", None)
    if topic is None or partition is None or offset is None:
        return str(error)
    cause = error.__cause__ if error.__cause__ is not None else error
    return (
        f"{topic}[{partition}]@{offset}: {cause} (tail skips it; see its bytes with `kcat -C "
        f"-b {bootstrap} -t {topic} -p {partition} -o {offset} -c 1 | xxd`; the product's "
        f"dead-lettering consumers send such records to {dlq_topic})"
    )
