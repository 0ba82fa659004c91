"""`mesh tail PRODUCT`: print a product's records, decoded, as they arrive."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import click
from confluent_kafka import KafkaError

from mesh_stream.broker.reachability import existing_topics
from mesh_stream.cli.options import (
    FiniteFloatRange,
    ProjectChoice,
    WholeNumberRange,
    checked_bootstrap_servers,
    checked_kafka_id,
    checked_registry_url,
    project_option,
)
from mesh_stream.cli.publish import registry_for
from mesh_stream.cli.signals import terminate_as_interrupt
from mesh_stream.consumer import ConsumedRecord, ProductConsumer
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import (
    ConsumerError,
    DeserializationError,
    MeshError,
    ProductNotFoundError,
    RegistryUnavailableError,
)
from mesh_stream.governance.acl_plan import TAIL_GROUP_PREFIX
from mesh_stream.kafka.clients import make_consumer, unread_partitions
from mesh_stream.kafka.connection import KafkaConnection, explain_kafka_error, unseen_hint
from mesh_stream.kafka.dlq import dead_letter_view
from mesh_stream.project import resolve_product
from mesh_stream.schema.codec import json_default
from mesh_stream.settings import MeshSettings, shown_url
from mesh_stream.terminal import visible

#: Longest ``--timeout`` waits for the group to give tail its partitions before counting.
JOIN_WAIT_S = 10.0
#: Longest an ended ``--timeout`` goes on for records Kafka says tail has not read yet.
UNREAD_WAIT_S = 10.0
#: How often, at most, an ended ``--timeout`` asks Kafka what is left (one request a partition).
UNREAD_CHECK_S = 0.5


class _EndOfTimeout:
    """Whether an ended ``--timeout`` may stop tail: once no partition holds records tail
    has not shown (the first fetch after the join can take longer than a short timeout).
    Kafka is asked at most every ``UNREAD_CHECK_S``, each time within what is left of
    ``UNREAD_WAIT_S``; records still unread then end tail with an error naming them."""

    def __init__(self, unread: Callable[[float], list[str]], topic: str) -> None:
        self._unread = unread
        self._topic = topic
        self._next = 0.0

    def reached(self, over: float) -> bool:
        """``over``: seconds since the timeout ended."""
        now = time.monotonic()
        if over < UNREAD_WAIT_S and now < self._next:
            return False
        self._next = now + UNREAD_CHECK_S
        left = self._unread(max(0.5, min(5.0, UNREAD_WAIT_S - over)))
        if not left:
            return True
        if over < UNREAD_WAIT_S:
            return False
        raise ConsumerError(
            f"{self._topic}: stopped {UNREAD_WAIT_S:g} s after --timeout ended with records "
            f"not read from {', '.join(left)} (held back by an open transaction, not fetched "
            f"in time, or Kafka could not say); run tail again with a longer --timeout"
        )


def _registered_major(name: str, registry: Any) -> tuple[int, str]:
    """The major version the registry has of ``name`` (0 when it has none), so a project
    checkout behind the registry does not bound ``--major``; and, when the registry could
    not be asked, a note saying so for the refusal (the local major may be behind)."""
    try:
        return resolve_product(name, project=None, registry=registry).version, ""
    except ProductNotFoundError:
        return 0, ""
    except MeshError as exc:
        return 0, f"; the registry could not say whether it has a later one: {exc}"


def _as_json(record: ConsumedRecord) -> str:
    value = record.value.model_dump() if hasattr(record.value, "model_dump") else record.value
    return json.dumps(value, default=json_default, ensure_ascii=False, sort_keys=False)


def _ambiguous(key: str) -> bool:
    """Whether ``key`` shown bare could be read as something else: a control character
    (a newline starts a forged line), a blank (`k schema=9 ...` reads as more fields), a
    leading quote (a quoted key is how such keys are shown), a leading ``b'`` or ``b"``
    (how a key that is no UTF-8 text is shown), ``None`` (how no key is shown), or nothing
    at all."""
    return (
        not key
        or not key.isprintable()
        or " " in key
        or key.startswith(('"', "b'", 'b"'))
        or key == "None"  # how a record without a key is shown
    )


def render(record: ConsumedRecord, as_json: bool) -> str:
    """One output line: the value as JSON, or with its coordinates for humans."""
    if as_json:
        return _as_json(record)
    key = record.key
    if isinstance(key, bytes):  # no UTF-8 text: its bytes, escaped (b'\xff\xfe')
        key = repr(key)
    elif isinstance(key, str) and _ambiguous(key):  # a newline would forge a record line
        key = json.dumps(key)  # escaped and quoted, as the value is
    place = f"{record.topic}[{record.partition}]@{record.offset} key={key}"
    if record.value is None:  # a tombstone: the key's record deleted (a merged session, say)
        return f"{place} deleted (a tombstone: a key with no value)"
    return f"{place} schema={record.schema_id} {_as_json(record)}"


@click.command("tail", short_help="Print a product's records, decoded, as they arrive.")
@click.argument("product")
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the oldest record (default: only new ones). With --group, a partition "
    "the group has committed offsets on starts there instead, with or without this flag.",
)
@click.option("--max", "max_records", type=WholeNumberRange(min=1), help="Stop after N records.")
@click.option(
    "--timeout",
    type=FiniteFloatRange(min=0, min_open=True),
    help=(
        "Stop after S seconds without a new record, counted once the group has given tail its "
        "partitions, and once it has read what they held (up to 10 s more, then an error). "
        "[default: wait until Ctrl-C]"
    ),
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per line (the value only)."
)
@click.option(
    "--dead-letters",
    is_flag=True,
    help="Print the product's dead-letter topic instead (<topic>.dlq): each record's place, "
    "key, mesh.dlq.* / __rule.* headers (why, and where it came from) and value (text, "
    "else base64), one line each or one JSON object with --json.",
)
@click.option(
    "--major",
    type=WholeNumberRange(min=1),
    help="Read an earlier major version's topic (<product>.v<N>), which keeps its records "
    "and readers after the product moved on. [default: the product's current version]",
)
@click.option(
    "--group",
    callback=checked_kafka_id,
    help="Consumer group id: tail reads from the group's committed offsets (and never "
    "commits). Joining a group an application uses takes partitions away from it while tail "
    "runs. [default: a new throw-away group]",
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
    dead_letters: bool,
    major: int | None,
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
    current = descriptor.version
    unasked = ""
    if major is not None and major > current:
        registered, unasked = _registered_major(descriptor.name, registry)
        current = max(current, registered)
    if major is not None and major != descriptor.version:
        if major > current:
            registry.close()
            raise click.BadParameter(
                f"{descriptor.name} is at major version {current}; --major names "
                f"it or an earlier one (1 to {current}){unasked}",
                param_hint="'--major'",
            )
        descriptor = descriptor.model_copy(update={"version": major})
    connection = KafkaConnection.from_settings(settings, default_client_id="mesh-tail")
    bootstrap = connection.bootstrap_servers
    topics = existing_topics(connection)  # a clear error when no broker answers or refuses us
    if major is not None and descriptor.topic not in topics and major != current:
        registry.close()
        raise ConsumerError(
            f"topic {descriptor.topic} does not exist at {bootstrap}: major version {major} "
            f"of {descriptor.name} has no topic there (its current major is {current}); "
            f"nothing is published to an earlier major's topic, so tail would wait for ever"
        )
    if dead_letters:
        registry.close()
        if descriptor.dlq_topic not in topics:
            click.echo(
                f"topic {descriptor.dlq_topic} does not exist yet at {bootstrap}"
                f"{unseen_hint(connection, descriptor.domain)}: nothing was dead-lettered; "
                f"waiting for the first dead letter",
                err=True,
            )
        with terminate_as_interrupt():
            _print_dead_letters(
                connection,
                descriptor.dlq_topic,
                group=group,
                from_beginning=from_beginning,
                max_records=max_records,
                timeout=timeout,
                as_json=as_json,
            )
        return
    consumer = ProductConsumer(
        [descriptor],
        group_id=group or f"{TAIL_GROUP_PREFIX}{uuid.uuid4().hex[:12]}",
        connection=connection,
        registry=registry,
        from_beginning=from_beginning,
        dead_letters=False,
        registry_wait_seconds=settings.consumer_registry_wait_seconds,
        root=None,  # the descriptor is resolved above
        deletions=True,  # shown as deletions (they were passed over without a word, h50)
    )
    if descriptor.topic in consumer.new_topics:  # said once the consumer has subscribed
        click.echo(
            f"topic {descriptor.topic} does not exist yet at {bootstrap}"
            f"{unseen_hint(connection, descriptor.domain)}; waiting for its first record "
            f"(publish with `mesh publish {descriptor.name} --file FILE`)",
            err=True,
        )
    try:
        with terminate_as_interrupt():  # SIGTERM ends it as Ctrl-C does: exit 130, closed
            _print_records(
                consumer,
                descriptor,
                settings,
                max_records=max_records,
                timeout=timeout,
                as_json=as_json,
                topic_exists=descriptor.topic in topics,
            )
    finally:
        consumer.close()
        registry.close()


def _print_records(
    consumer: ProductConsumer,
    descriptor: DataProduct,
    settings: MeshSettings,
    *,
    max_records: int | None,
    timeout: float | None,
    as_json: bool,
    topic_exists: bool,
) -> None:
    """Print records until ``max_records`` are shown or ``timeout`` seconds pass without one.

    The timeout counts from when a record could first come: once the group has given tail
    its partitions (at once for a topic not made yet, which has none to give; after
    ``JOIN_WAIT_S`` at the latest), so a short one does not end tail while it joins; and
    it ends only once tail has shown what those partitions held (see :class:`_EndOfTimeout`).
    """
    registry_url = shown_url(settings.registry_url)
    wait_setting = settings.consumer_registry_wait_seconds
    shown = 0
    started = time.monotonic()
    last_seen: float | None = None if topic_exists else started
    said_waiting = False
    end_check = _EndOfTimeout(consumer.unread, descriptor.topic)
    while max_records is None or shown < max_records:
        if last_seen is None and (consumer.joined or time.monotonic() - started >= JOIN_WAIT_S):
            last_seen = time.monotonic()
        waiting = consumer.registry_outage_seconds
        if waiting is not None and not said_waiting:
            said_waiting = True
            click.echo(
                f"the registry at {registry_url} does not answer: records whose writer schema "
                f"is not cached wait, with the later records of their partitions, up to "
                f"{wait_setting:g} s (MESH_CONSUMER_REGISTRY_WAIT_SECONDS)",
                err=True,
            )
        quiet = 0.0 if last_seen is None else time.monotonic() - last_seen
        if timeout is not None and last_seen is not None and quiet >= timeout:
            if waiting is not None:
                raise ConsumerError(
                    f"{descriptor.topic}: stopped after --timeout {timeout:g} s with records "
                    f"still waiting for a writer schema from the registry at {registry_url} "
                    f"(failing for {waiting:.1f} s{_at(consumer, shown)}); start the registry or "
                    f"check MESH_REGISTRY_URL"
                )
            if end_check.reached(quiet - timeout):
                return
        wait = 0.5 if timeout is None else max(0.05, min(0.5, timeout))
        want = 500 if max_records is None else min(500, max_records - shown)
        try:
            records = consumer.consume(want, wait)
        except DeserializationError as exc:
            bootstrap = consumer.connection.bootstrap_servers
            click.echo(f"skipped: {_undecodable(exc, descriptor.dlq_topic, bootstrap)}", err=True)
            last_seen = time.monotonic()
            continue
        except RegistryUnavailableError as exc:
            which = f"writer schema id {exc.schema_id}" if exc.schema_id else "a writer schema"
            raise ConsumerError(
                f"{exc.record or descriptor.topic}: stopped: it waited {wait_setting:g} s "
                f"(MESH_CONSUMER_REGISTRY_WAIT_SECONDS) for {which} from the registry at "
                f"{registry_url}, which does not answer; start the registry or check "
                f"MESH_REGISTRY_URL, then run tail again (it commits nothing, so nothing is "
                f"skipped)"
            ) from exc
        except MeshError:
            raise  # its message names the record (topic[partition]@offset)
        except Exception as exc:
            raise ConsumerError(
                f"{descriptor.topic}: reading after {shown} record(s) failed"
                f"{_at(consumer, shown)}: {type(exc).__name__}: {exc}"
            ) from exc
        if records:
            last_seen = time.monotonic()
        for record in records:
            click.echo(render(record, as_json))
        shown += len(records)


#: Characters of a dead letter's value a line shows (--json shows it whole).
SHOWN_VALUE_CHARS = 300


def _print_dead_letters(
    connection: KafkaConnection,
    topic: str,
    *,
    group: str | None,
    from_beginning: bool,
    max_records: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Print ``topic``'s dead letters as they are (never decoded: a poison pill is not
    Avro); the timeout counts as for records, from the join."""
    joined: list[bool] = []
    consumer = make_consumer(
        connection,
        {
            "group.id": group or f"{TAIL_GROUP_PREFIX}{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "log_level": 0,
        },
    )
    try:
        from_start = {topic} if from_beginning else set()
        end_check = _EndOfTimeout(
            lambda budget: unread_partitions(consumer, from_start=from_start, timeout=budget),
            topic,
        )
        consumer.subscribe([topic], on_assign=lambda _consumer, _parts: joined.append(True))
        shown, started = 0, time.monotonic()
        last_seen: float | None = None
        while max_records is None or shown < max_records:
            if last_seen is None and (joined or time.monotonic() - started >= JOIN_WAIT_S):
                last_seen = time.monotonic()
            quiet = 0.0 if last_seen is None else time.monotonic() - last_seen
            if (
                timeout is not None
                and last_seen is not None
                and quiet >= timeout
                and end_check.reached(quiet - timeout)
            ):
                return
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._PARTITION_EOF):
                    continue  # not made yet: it appears with the first dead letter
                raise explain_kafka_error(error, connection, topic=topic, operation="READ")
            last_seen = time.monotonic()
            shown += 1
            view = dead_letter_view(message)
            click.echo(json.dumps(view) if as_json else _dead_letter_line(view))
    finally:
        consumer.close()


def _dead_letter_line(view: dict[str, Any]) -> str:
    place = f"{view['topic']}[{view['partition']}]@{view['offset']}"
    if "key_base64" in view:  # no UTF-8 text: its bytes, as a record line shows them
        key = repr(base64.b64decode(view["key_base64"]))
    else:
        key = json.dumps(view["key"]) if view["key"] is not None else "null"
    headers = " ".join(
        [f"{name}={json.dumps(value)}" for name, value in view["headers"].items()]
        + [  # no UTF-8 text: its bytes, as a key's
            f"{name}={base64.b64decode(raw)!r}"
            for name, raw in view.get("headers_base64", {}).items()
        ]
    )
    if "value" in view and view["value"] is None:  # a tombstone, not an empty value
        body = "value=null"
    elif "value" in view:
        value = view["value"]
        shown = json.dumps(value[:SHOWN_VALUE_CHARS])
        cut = f" ({len(value)} chars; --json shows all)" if len(value) > SHOWN_VALUE_CHARS else ""
        body = f"value={shown}{cut}"
    else:
        encoded = view["value_base64"]
        cut = " (cut; --json shows all)" if len(encoded) > SHOWN_VALUE_CHARS else ""
        body = f"value_base64={encoded[:SHOWN_VALUE_CHARS]}{cut}"
    return visible(f"{place} key={key} {headers} {body}")


def _at(consumer: ProductConsumer, shown: int) -> str:
    """Where reading stands once records were shown (tail commits nothing: the consumer's
    own "since the last commit" would mislead)."""
    return f"; read up to {consumer.position_text()}" if shown else ""


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
