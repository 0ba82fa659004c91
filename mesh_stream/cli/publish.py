"""`mesh publish PRODUCT --file records.jsonl`: publish JSON Lines records through the SDK."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

from mesh_stream import registration
from mesh_stream.cli.options import (
    ProjectChoice,
    WholeNumberRange,
    checked_bootstrap_servers,
    checked_registry_url,
    project_option,
)
from mesh_stream.errors import (
    ConfigurationError,
    DeliveryError,
    IncompatibleSchemaError,
    MeshError,
    RegistryError,
    SchemaError,
    SchemaRejectedError,
    SerializationError,
)
from mesh_stream.files import UTF8_BOM, read_regular_text
from mesh_stream.governance.registered import field_line
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.producer import (
    ProductPublisher,
    UndeliveredRecord,
    catalog_local_descriptor,
    earlier_major,
    local_product,
    warn_if_schema_missing,
)
from mesh_stream.project import resolve_product
from mesh_stream.schema import strict_json
from mesh_stream.schema.avro import parse_schema
from mesh_stream.schema.codec import coerce_json
from mesh_stream.settings import MeshSettings

SHOWN_ERRORS = 50
#: With records from a pipe, how many lines (or bytes of them) are read between waits for
#: Kafka's acknowledgement of every record sent (the lines kept for the failure path's
#: report): a bound on the memory they take, whatever the lines' size.
SETTLE_EVERY = 10_000
SETTLE_BYTES = 64 * 1024 * 1024
#: The longest line read as a record: JSON several times a record's largest Avro encoding.
MAX_LINE_BYTES = 16 * 1024 * 1024
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "true or false", type(None): "null"}  # fmt: skip


def _override(settings: MeshSettings, **values: Any) -> MeshSettings:
    given = {key: value for key, value in values.items() if value is not None}
    return settings.model_copy(update=given)


def registry_for(settings: MeshSettings) -> Any:
    """The registry client the CLI commands use (URL and credentials from settings)."""
    from mesh_stream.registry.client import RegistryClient

    return RegistryClient.from_settings(settings)


def _json_kind(document: Any) -> str:
    """What a parsed JSON value is, in JSON's words (``null``, an array, ...)."""
    if isinstance(document, bool):
        return str(document).lower()
    return _JSON_KINDS.get(type(document), type(document).__name__)


def _line_ranges(numbers: list[int]) -> str:
    """``1-3, 7`` for [1, 2, 3, 7] (sorted line numbers)."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _checked(
    lines: Iterable[tuple[int, bytes | None]],
    name: str,
    publisher: ProductPublisher,
    *,
    prepare: bool = True,
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record) for each good line, (line number, error text) for each bad one.

    With ``prepare`` each good record is fully prepared (schema, ERROR quality rules,
    encoded size against the producer's ``message.max.bytes``), so whatever can be checked
    before sending is; without, only its JSON is read and fitted to the schema's types, and
    publishing it checks the rest (once, not twice per line).

    Lines are decoded one by one, so a line that is not UTF-8 is reported like any other
    bad line instead of ending the whole run.
    """
    parsed = publisher.encoder.parsed
    for number, raw in lines:
        if raw is None:
            yield (
                number,
                f"{name}:{number}: a line of more than {MAX_LINE_BYTES:,} bytes, more than any "
                f"record's JSON (a record is at most the producer's message.max.bytes); is "
                f"{name} a JSON Lines file?",
            )
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                number,
                f"{name}:{number}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                f"{exc.start + 1}); JSON Lines files must be UTF-8",
            )
            continue
        if not line.strip():
            continue
        try:
            document = json.loads(line.rstrip("\r\n"), object_pairs_hook=_once_each)
        except _RepeatedKeyError:  # rare: read again to say which key, and where
            said = f"{name}:{number}: not valid JSON: an object gives a key twice"
            try:
                strict_json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                message = exc.msg.replace(" (first on line 1)", "")
                said = f"{name}:{number}: not valid JSON (column {exc.colno}): {message}"
            except (ValueError, RecursionError):  # refused for another reason first
                pass
            yield number, said
            continue
        except json.JSONDecodeError as exc:
            yield number, f"{name}:{number}: not valid JSON (column {exc.colno}): {exc.msg}"
            continue
        except RecursionError:
            yield number, f"{name}:{number}: JSON nested too deeply to read"
            continue
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            yield number, f"{name}:{number}: not valid JSON: {str(exc).split(';')[0]}"
            continue
        if not isinstance(document, dict):
            yield (
                number,
                f"{name}:{number}: a record must be a JSON object, got {_json_kind(document)}",
            )
            continue
        try:
            record = coerce_json(parsed, document)
            if prepare:
                publisher.prepare(record)
        except SerializationError as exc:
            yield number, f"{name}:{number}: {exc}"
            continue
        except RecursionError:
            yield number, _too_deep(name, number)
            continue
        yield number, record


#: ``<.avsc path>: ...field <path>...`` in a registry refusal of a project's schema.
_REFUSED_AT = re.compile(r"^(?P<file>[^\n]+?\.avsc): .*?\bfield (?P<field>[A-Za-z_][\w.]*)")


def _at_field_line(exc: RegistryError) -> RegistryError:
    """``exc`` naming the line of the first field it names in the ``.avsc`` it names, as
    lint and plan do (h44: publish named the file only); as it is when there is no such
    field (a removed one) or file."""
    found = _REFUSED_AT.match(exc.message)
    if found is None:
        return exc
    try:
        text = read_regular_text(Path(found["file"]))
    except (OSError, UnicodeDecodeError, ValueError):
        return exc
    line = field_line(text, found["field"])
    if line is None:
        return exc
    located = copy.copy(exc)
    located.message = f"{found['file']}:{line}{exc.message[len(found['file']) :]}"
    located.args = (located.message,)
    return located


def _too_deep(name: str, number: int) -> str:
    return f"{name}:{number}: the record is nested too deeply to check"


class _RepeatedKeyError(ValueError):
    """A JSON object of a line gives a key twice (json.loads would keep the last)."""


def _once_each(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's pairs as a dict, refusing a key given twice: which value was meant
    cannot be told (a campaign: the last one was published without a word)."""
    document = dict(items)
    if len(document) != len(items):
        raise _RepeatedKeyError
    return document


def _read_lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) of each line of ``handle`` from where it is, without a leading
    BOM; None for a line longer than MAX_LINE_BYTES, whose rest is then read past in
    constant memory (a file with no newline, /dev/zero, grew the process without bound,
    h50)."""
    number = 0
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            yield number, None  # said before its rest is read past (which may not end)
            while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            continue
        yield number, raw[len(UTF8_BOM) :] if number == 1 and raw.startswith(UTF8_BOM) else raw


class _RecordsFile:
    """The records file, read line by line as often as the command needs (checking first
    with --all-or-nothing, finding undelivered lines), never whole into memory: a file of
    millions of lines publishes in constant memory. Standard input or a pipe with
    --all-or-nothing, which must be read twice, is first copied to a temporary file."""

    def __init__(self, given: IO[bytes], stack: ExitStack) -> None:
        self.name = str(getattr(given, "name", "<stdin>"))
        if _read_once(given):
            # closed by the stack, when the command ends
            spool = stack.enter_context(tempfile.TemporaryFile(prefix="mesh-publish-"))  # noqa: SIM115
            shutil.copyfileobj(given, spool, 1 << 20)
            given = spool
        self._handle = given

    def lines(self) -> Iterator[tuple[int, bytes | None]]:
        """Every line, from the first (see :func:`_read_lines`)."""
        self._handle.seek(0)
        yield from _read_lines(self._handle)

    def has_records(self) -> bool:
        """Whether any line is not blank (read up to the first such line only)."""
        return any(raw is None or raw.strip() for _number, raw in self.lines())

    def needs_settling(self) -> bool:
        """Never: a file can be read again, so no line need be kept until Kafka has it."""
        return False

    def settled(self) -> None:
        """Kafka acknowledged every line read so far (nothing to forget: the file stays)."""


class _PipedRecords:
    """Standard input or a pipe, published as its lines come: an endless pipe publishes for
    as long as it runs (copied whole to a temporary file first, it published nothing and
    filled the disk, h50). Only the lines sent since Kafka last acknowledged everything are
    kept, for the failure path to name the lines Kafka did not take; the command waits for
    that acknowledgement every :data:`SETTLE_EVERY` lines or :data:`SETTLE_BYTES`."""

    def __init__(self, given: IO[bytes]) -> None:
        self.name = str(getattr(given, "name", "<stdin>"))
        self._lines = _read_lines(given)
        self._peeked: list[tuple[int, bytes | None]] = []
        self._read_once = False
        self._unsettled: list[tuple[int, bytes | None]] = []
        self._unsettled_bytes = 0

    def has_records(self) -> bool:
        """Whether any line is not blank, reading up to the first such line (kept)."""
        for number, raw in self._lines:
            self._peeked.append((number, raw))
            if raw is None or raw.strip():
                return True
        return False

    def lines(self) -> Iterator[tuple[int, bytes | None]]:
        """The first time, every line as it comes; after that, the unsettled lines."""
        if self._read_once:
            yield from list(self._unsettled)
            return
        self._read_once = True
        for line in itertools.chain(self._peeked, self._lines):
            self._unsettled.append(line)
            self._unsettled_bytes += len(line[1] or b"")
            yield line

    def needs_settling(self) -> bool:
        """Whether the lines kept until Kafka acknowledges them reached their bound."""
        return len(self._unsettled) >= SETTLE_EVERY or self._unsettled_bytes >= SETTLE_BYTES

    def settled(self) -> None:
        """Kafka acknowledged every line read so far: they need not be kept."""
        self._unsettled.clear()
        self._unsettled_bytes = 0


def _read_once(handle: IO[bytes]) -> bool:
    """Whether ``handle`` is standard input or a pipe: lines read from it are gone."""
    if str(getattr(handle, "name", "<stdin>")) == "<stdin>":
        return True
    try:
        return not handle.seekable()
    except (OSError, ValueError):
        return True


@dataclass
class _Tally:
    """What a run did with the lines, kept as counts and line numbers, not as records."""

    rejected: list[int] = field(default_factory=list)  # bad lines
    unsent: list[int] = field(default_factory=list)  # refused by Kafka at once
    sent: int = 0
    dead: list[int] = field(default_factory=list)  # sent to the dead-letter topic
    _said_all: bool = False

    def reject(self, number: int, text: str) -> None:
        self.rejected.append(number)
        if len(self.rejected) <= SHOWN_ERRORS:
            click.echo(text, err=True)

    def said_all(self) -> None:
        """The count of bad lines not shown, once."""
        if len(self.rejected) > SHOWN_ERRORS and not self._said_all:
            self._said_all = True
            click.echo(f"... and {len(self.rejected) - SHOWN_ERRORS} more bad line(s)", err=True)


def _read_schema(path: Path) -> Any:
    """The ``--schema`` file as JSON, or an error naming the file, line and column, or the
    file and what makes it no Avro schema."""
    document = _read_json(path)
    try:
        parse_schema(document)
    except SchemaError as exc:
        where = "" if not exc.loc else f" at {'.'.join(str(part) for part in exc.loc)}"
        raise ConfigurationError(f"{path}: --schema{where}: {exc}") from exc
    return document


def _read_json(path: Path) -> Any:
    try:
        return strict_json.loads(read_regular_text(path))
    except OSError as exc:  # e.g. a FIFO, refused rather than waited on for ever
        raise ConfigurationError(f"{path}: --schema cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{path}: --schema is {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{path}:{exc.lineno}: --schema is not valid JSON (column {exc.colno}): {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise ConfigurationError(f"{path}: --schema is nested too deeply to read") from exc
    except strict_json.NonFiniteNumberError as exc:
        raise ConfigurationError(f"{path}: --schema at {exc.located}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigurationError(
            f"{path}: --schema is not valid JSON: {str(exc).split(';')[0]}"
        ) from exc


class _RecordsFileType(click.File):
    """``click.File`` that says it waits when the file is a FIFO no one writes to yet
    (opening one blocks until a writer comes: the command hung without a word, h50)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (str, Path)) and str(value) != "-":
            with contextlib.suppress(OSError):
                if stat.S_ISFIFO(os.stat(value).st_mode):
                    click.echo(f"{value} is a FIFO: waiting for a writer to open it", err=True)
        return super().convert(value, param, ctx)


@click.command("publish", short_help="Publish a JSON Lines file of records to a product.")
@click.argument("product")
@click.option(
    "--file",
    "-f",
    "records_file",
    type=_RecordsFileType("rb"),
    help="JSON Lines file, one record (a JSON object) per line; `-` reads standard input, "
    "published as its lines come. Timestamps may be ISO-8601 strings, decimals strings or "
    "numbers.",
)
@click.option(
    "--register-only",
    is_flag=True,
    help="Register the product's schema (subject <topic>-value), create its topic and, for a "
    "product of the local project the catalog lacks, register its descriptor; then stop "
    "without publishing (refused with --file).",
)
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Avro schema to publish with. [default: the descriptor's `schema` file in the project, "
    "else the latest registered]",
)
@click.option(
    "--major",
    type=WholeNumberRange(min=1),
    help="Publish to an earlier major version's topic (<product>.v<N>) with the latest schema "
    "registered for it, registering nothing: keep the old topic going while its consumers "
    "move to the new major. [default: the descriptor's version]",
)
@click.option(
    "--all-or-nothing",
    is_flag=True,
    help="Publish nothing when any line is bad (by default the good lines are published).",
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
    help="Registry URL. [env: MESH_REGISTRY_URL; default http://127.0.0.1:8081]; writes use "
    "MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN (the owning domain's credential).",
)
@click.pass_context
def publish(
    ctx: click.Context,
    product: str,
    records_file: IO[bytes] | None,
    register_only: bool,
    schema_file: Path | None,
    major: int | None,
    all_or_nothing: bool,
    project: ProjectChoice,
    bootstrap_servers: str | None,
    registry_url: str | None,
) -> None:
    """Publish the records of a JSON Lines file to PRODUCT (e.g. orders.order-placed).

    Every line is checked against the product's Avro schema first. Bad lines are reported
    as FILE:LINE: field path, expected type and value (a record over the producer's
    message.max.bytes: its size); the good lines are published and confirmed by Kafka
    (acks=all), and the summary lists the lines that were not. The exit status is 1 when
    any line was not published.
    The product is found in the project (its mesh.yaml's products folder) or else in the
    registry.
    """
    settings: MeshSettings = ctx.obj
    settings = _override(settings, bootstrap_servers=bootstrap_servers, registry_url=registry_url)
    if records_file is not None and register_only:
        raise click.UsageError(
            "--register-only publishes no records: drop --file/-f, or drop --register-only to "
            "register and publish in one run"
        )
    if records_file is None and not register_only:
        raise click.UsageError("give the records with --file FILE (or `-` for stdin)")
    if major is not None and (register_only or schema_file is not None):
        raise click.UsageError(
            "--major publishes with the schema already registered for that major version: "
            "drop --register-only and --schema"
        )
    with ExitStack() as stack:
        source: _RecordsFile | _PipedRecords | None = None
        if records_file is not None:
            # Read first: an empty file is refused before the schema is registered or the
            # topic made.
            piped = _read_once(records_file) and not all_or_nothing
            source = _PipedRecords(records_file) if piped else _RecordsFile(records_file, stack)
            if not source.has_records():
                raise ConfigurationError(
                    f"{source.name}: no records in the file (JSON Lines: one JSON object per line)"
                )
        registry = registry_for(settings)
        found = project.locate(settings)
        descriptor = resolve_product(product, project=found, registry=registry)
        schema = _read_schema(schema_file) if schema_file else None
        schema_source = f"--schema {schema_file}" if schema_file else None
        local = local_product(product, found)
        if schema is None and major is None:
            warn_if_schema_missing(local, found)
        earlier = False
        registered = None
        if major is not None and major != descriptor.version:
            earlier = True
            if major > descriptor.version:
                raise click.BadParameter(
                    f"{descriptor.name} is at major version {descriptor.version}; --major "
                    f"names it or an earlier one (1 to {descriptor.version})",
                    param_hint="'--major'",
                )
            descriptor, registered = earlier_major(descriptor, major, registry)
            schema = None
            schema_source = f"the latest version of subject {descriptor.value_subject}"
            local = None  # the project's descriptor and .avsc are the current major's
        # as open_publisher does: the registry judges a descriptor of the project it lacks
        # before anything is written, and the catalog gets it once its schema is registered,
        # so that other domains find the product
        missing = (
            local is not None
            and found is not None
            and registration.check_missing_descriptor(
                registry, local, found, None if schema is None else json.dumps(schema)
            )
        )
        # --register-only asks for registration; publishing honours the setting; an earlier
        # major registers nothing
        auto_register = (settings.producer_auto_register or register_only) and not earlier
        try:
            publisher = ProductPublisher(
                descriptor,
                connection=KafkaConnection.from_settings(
                    settings, default_client_id="mesh-publish"
                ),
                registry=registry,
                config={"partitioner": settings.producer_partitioner},
                schema=schema,
                schema_source=schema_source,
                root=found.root if found is not None else None,
                auto_register=auto_register,
                registered=registered,
            )
        except (IncompatibleSchemaError, SchemaRejectedError) as exc:
            raise _at_field_line(exc) from exc
        with publisher:
            if missing and local is not None and not auto_register:
                click.echo(
                    f"warning: the catalog has no descriptor of {local.name}; consumers cannot "
                    f"discover it until `mesh products apply` registers it "
                    f"(MESH_PRODUCER_AUTO_REGISTER=false)",
                    err=True,
                )
            elif (
                missing
                and local is not None
                and found is not None
                and catalog_local_descriptor(publisher, local, found)
            ):
                click.echo(f"registered the descriptor of {local.name} in the catalog", err=True)
            if source is None:
                click.echo(
                    f"registered schema id {publisher.schema_id} under "
                    f"{descriptor.value_subject}; topic {descriptor.topic} is ready"
                )
                return
            tally = _Tally()
            if all_or_nothing:  # a first pass checks every line; nothing is sent
                for number, checked in _checked(source.lines(), source.name, publisher):
                    if isinstance(checked, str):
                        tally.reject(number, checked)
                tally.said_all()
                if tally.rejected:
                    click.echo(
                        f"published nothing: {len(tally.rejected)} bad line(s) and "
                        f"--all-or-nothing",
                        err=True,
                    )
                    ctx.exit(1)
            for number, checked in _checked(source.lines(), source.name, publisher, prepare=False):
                if isinstance(checked, str):
                    tally.reject(number, checked)
                else:
                    _send(publisher, tally, number, checked, source.name)
                if source.needs_settling():
                    _settle(ctx, publisher, source, tally, descriptor)
            tally.said_all()
            _settle(ctx, publisher, source, tally, descriptor)
        _summary(descriptor, tally, 0)
        if tally.rejected or tally.unsent:
            ctx.exit(1)


def _send(
    publisher: ProductPublisher, tally: _Tally, number: int, record: dict[str, Any], name: str
) -> None:
    """Hand one record to Kafka. One that does not fit the schema, fails an ERROR quality
    rule or is too large is a bad line (FILE:LINE: why); one Kafka refuses at once is
    reported as not published; the next lines still go either way."""
    try:
        dead = publisher.publish(record)
    except SerializationError as exc:
        tally.reject(number, f"{name}:{number}: {exc}")
        return
    except RecursionError:
        tally.reject(number, _too_deep(name, number))
        return
    except MeshError as exc:
        tally.unsent.append(number)
        if len(tally.unsent) <= SHOWN_ERRORS:
            click.echo(f"{name}:{number}: not published: {exc}", err=True)
        return
    if dead is not None:
        tally.dead.append(number)
        if len(tally.dead) <= SHOWN_ERRORS:
            click.echo(
                f"{name}:{number}: dead-lettered to {dead.topic}: fails quality rule "
                f"{dead.rule!r} ({dead.expr}): {dead.reason}",
                err=True,
            )
    tally.sent += 1


def _settle(
    ctx: click.Context,
    publisher: ProductPublisher,
    source: _RecordsFile | _PipedRecords,
    tally: _Tally,
    descriptor: Any,
) -> None:
    """Wait until Kafka acknowledged every record sent; if it refused any, name their
    lines, sum up and end the command with status 1."""
    try:
        publisher.flush()
    except DeliveryError as exc:
        click.echo(f"error: {exc}", err=True)
        undelivered = list(getattr(exc, "failed", None) or [])
        lost = _undelivered_lines(publisher, source, tally, undelivered)
        for number, reason in lost[:SHOWN_ERRORS]:
            click.echo(f"{source.name}:{number}: not delivered: {reason}", err=True)
        failed = len(undelivered) or publisher.in_flight
        tally.said_all()
        _summary(descriptor, tally, failed, [n for n, _ in lost])
        ctx.exit(1)
    source.settled()


def _undelivered_lines(
    publisher: ProductPublisher,
    source: _RecordsFile | _PipedRecords,
    tally: _Tally,
    undelivered: list[UndeliveredRecord],
) -> list[tuple[int, str]]:
    """(line, reason) of each record Kafka did not acknowledge, found by the bytes it sent:
    only the failure path reads the file and encodes its lines again."""
    reasons = {item.value: item.reason for item in undelivered if item.value is not None}
    if not reasons:
        return []
    skipped = set(tally.unsent)
    found: list[tuple[int, str]] = []
    for number, checked in _checked(source.lines(), source.name, publisher, prepare=False):
        if isinstance(checked, str) or number in skipped:
            continue
        try:
            value, _key = publisher.prepare(checked)
        except MeshError:
            continue
        reason = reasons.get(value)
        if reason is not None:
            found.append((number, reason))
    return found


def _summary(
    descriptor: Any, tally: _Tally, unacknowledged: int, undelivered: Sequence[int] = ()
) -> None:
    """One line: what was published, and which lines were not."""
    published = tally.sent - len(tally.dead) - unacknowledged
    missed = sorted(set(tally.rejected) | set(tally.unsent) | set(undelivered))
    click.echo(
        f"published {published} record(s) to {descriptor.topic}"
        + (
            f"; dead-lettered {len(tally.dead)} to {descriptor.dlq_topic} (quality rules): "
            f"line(s) {_line_ranges(tally.dead)}"
            if tally.dead
            else ""
        )
        + (f"; rejected {len(tally.rejected)} line(s)" if tally.rejected else "")
        + (f"; {len(tally.unsent)} line(s) refused by Kafka" if tally.unsent else "")
        + (f"; {unacknowledged} record(s) not acknowledged by Kafka" if unacknowledged else "")
        + (f"; not published: line(s) {_line_ranges(missed)}" if missed else ""),
        err=True,
    )
