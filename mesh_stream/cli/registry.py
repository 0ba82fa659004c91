"""`mesh registry serve` (the schema registry + product catalog over HTTP, state in Kafka) and
`mesh registry credentials` (its tokens, managed while it runs)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from mesh_stream.broker.reachability import existing_topics
from mesh_stream.cli.options import (
    WholeNumberRange,
    checked_bootstrap_servers,
    checked_host,
    checked_kafka_id,
    checked_registry_url,
    checked_topic,
)
from mesh_stream.descriptor import TOPIC_NAME
from mesh_stream.errors import (
    ConfigurationError,
    KafkaAuthorizationError,
    MeshError,
    PermissionDeniedError,
)
from mesh_stream.files import not_utf8, read_regular_bytes
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.logformat import configure_logging
from mesh_stream.project import REGISTRY_USER
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings, advertised_url_problem, shown_url

_T = TypeVar("_T")


@click.group()
def registry() -> None:
    """The registry: Confluent-compatible schemas and the data product catalog."""


@registry.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=checked_host,
    help="Interface to listen on.",
)
@click.option(
    "--port",
    type=WholeNumberRange(0, 65535),
    default=8081,
    show_default=True,
    help="HTTP port; 0 picks a free one (the URL is printed).",
)
@click.option(
    "--bootstrap-servers",
    callback=checked_bootstrap_servers,
    help="Kafka holding the registry topic. [env: MESH_BOOTSTRAP_SERVERS; default local broker]",
)
@click.option(
    "--credentials",
    "credentials_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML/JSON file mapping principal -> token. [env: MESH_REGISTRY_CREDENTIALS_FILE, "
    "or MESH_REGISTRY_CREDENTIALS='admin:tok,orders:tok']",
)
@click.option(
    "--topic",
    callback=checked_topic,
    help="Compacted topic with the registry state. [env: MESH_REGISTRY_TOPIC; "
    "default _mesh_registry]",
)
@click.option(
    "--writer-id",
    callback=checked_kafka_id,
    help="transactional.id shared by every instance on the topic; the one taking the writer "
    "role fences the previous writer. [env: MESH_REGISTRY_WRITER_ID; default "
    "mesh-registry-writer]",
)
@click.option(
    "--advertised-url",
    help="URL the other instances forward writes to while this one is the writer. "
    "[env: MESH_REGISTRY_ADVERTISED_URL; default http://<host>:<port> it listens on]",
)
@click.option(
    "--read-requires-auth",
    is_flag=True,
    default=None,
    help="Require a credential for reads too. [env: MESH_REGISTRY_READ_REQUIRES_AUTH]",
)
@click.option(
    "--open-writes",
    is_flag=True,
    default=None,
    help="No credentials at all: everyone is admin. Local sandboxes only. "
    "[env: MESH_REGISTRY_OPEN_WRITES]",
)
@click.option(
    "--max-body-bytes",
    type=WholeNumberRange(1024),
    help="Largest request body; larger ones answer 413. [env: MESH_REGISTRY_MAX_BODY_BYTES; "
    "default 1048576]",
)
@click.option(
    "--max-schema-bytes",
    type=WholeNumberRange(64),
    help="Largest schema text; larger ones answer 422. [env: MESH_REGISTRY_MAX_SCHEMA_BYTES; "
    "default 524288]",
)
@click.option(
    "--max-schema-fields",
    type=WholeNumberRange(1),
    help="Most record fields in a schema (nested ones too). "
    "[env: MESH_REGISTRY_MAX_SCHEMA_FIELDS; default 5000]",
)
@click.option(
    "--max-schema-depth",
    type=WholeNumberRange(2),
    help="Deepest JSON nesting of a schema. [env: MESH_REGISTRY_MAX_SCHEMA_DEPTH; default 128]",
)
@click.option(
    "--heavy-workers",
    type=WholeNumberRange(1),
    help="Threads for schema parsing and compatibility checks. "
    "[env: MESH_REGISTRY_HEAVY_WORKERS; default 2]",
)
@click.option(
    "--heavy-per-client",
    type=WholeNumberRange(1),
    help="Schema requests one principal (or client address) may have in flight; more answer "
    "429. [env: MESH_REGISTRY_HEAVY_PER_CLIENT; default 2]",
)
@click.option(
    "--auth-failures-per-minute",
    type=WholeNumberRange(1),
    help="Failed authentications per client address and minute; more answer 429. "
    "[env: MESH_REGISTRY_AUTH_FAILURES_PER_MINUTE; default 20]",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="Lowest level of log line printed; `info` includes the access log (one line per "
    "request). The lines are JSON objects with MESH_LOG_FORMAT=json.",
)
@click.pass_obj
def serve(
    settings: MeshSettings,
    host: str,
    port: int,
    bootstrap_servers: str | None,
    credentials_file: Path | None,
    topic: str | None,
    writer_id: str | None,
    advertised_url: str | None,
    read_requires_auth: bool | None,
    open_writes: bool | None,
    max_body_bytes: int | None,
    max_schema_bytes: int | None,
    max_schema_fields: int | None,
    max_schema_depth: int | None,
    heavy_workers: int | None,
    heavy_per_client: int | None,
    auth_failures_per_minute: int | None,
    log_level: str,
) -> None:
    """Serve the registry until Ctrl-C (or SIGTERM).

    On start it creates the compacted topic if missing and replays it. Several instances
    may share one topic: all serve reads, one is the writer and the others forward writes
    to it; when the writer dies another takes over within seconds. OpenAPI is at
    /openapi.json.
    """
    # The server (FastAPI, uvicorn) is the registry extra: imported here, not with the CLI.
    from mesh_stream.registry.service.server import (
        RegistryServer,
        bind_listener,
        build_registry,
        default_advertised_url,
    )

    overrides = {
        "bootstrap_servers": bootstrap_servers,
        "registry_credentials_file": credentials_file,
        "registry_topic": topic,
        "registry_writer_id": writer_id,
        "registry_advertised_url": advertised_url,
        "registry_read_requires_auth": read_requires_auth,
        "registry_open_writes": open_writes,
        "registry_max_body_bytes": max_body_bytes,
        "registry_max_schema_bytes": max_schema_bytes,
        "registry_max_schema_fields": max_schema_fields,
        "registry_max_schema_depth": max_schema_depth,
        "registry_heavy_workers": heavy_workers,
        "registry_heavy_per_client": heavy_per_client,
        "registry_auth_failures_per_minute": auth_failures_per_minute,
    }
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    # Every setting problem before the port is taken or Kafka is asked (the credentials are
    # read again by build_registry: a small file).
    if advertised_url is not None and (problem := advertised_url_problem(advertised_url)):
        raise click.BadParameter(
            f"{shown_url(advertised_url)!r} {problem}", param_hint="--advertised-url"
        )
    _check_topic(settings)
    short_tokens = _check_credentials(settings)
    # Kafka answers, or one line says so: the registry's clients would retry for ever,
    # printing librdkafka's connection errors, before its own start-up timeout.
    connection = KafkaConnection.from_settings(settings)
    existing_topics(connection)
    # Put back when the command ends: it may run inside another process (a test's).
    click.get_current_context().call_on_close(configure_logging(log_level, settings.log_format))
    say = _status_printer(settings.log_format)
    if short_tokens:  # a log line (JSON with MESH_LOG_FORMAT=json), once logging is set up
        logging.getLogger("mesh_stream.registry.serve").warning(
            "%s", short_tokens_warning(short_tokens)
        )
    # The port first: it is in the URL this instance advertises, and taking the writer role
    # fences the writer of a registry that may run.
    listener = bind_listener(host, port)
    try:
        app, store = build_registry(
            settings,
            wait_for_replay=False,  # /health answers during replay; other routes 503
            progress=say,
            advertised_url=settings.registry_advertised_url
            or default_advertised_url(host, listener.getsockname()[1]),
        )
    except KafkaAuthorizationError as exc:
        listener.close()
        raise _not_the_registrys_user(exc, connection, settings.registry_topic) from exc
    except BaseException:
        listener.close()
        raise
    server = RegistryServer(app, host=host, listener=listener)
    stopped = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    try:
        url = server.start()
        store.wait_started(stopped)  # raises what stopped the start-up (e.g. a writer conflict)
        role = "the writer" if store.is_writer() else "a follower, forwarding writes"
        say(f"registry listening on {url} (topic {settings.registry_topic}; {role})")
        if url != settings.registry_url.rstrip("/"):
            say(f"export MESH_REGISTRY_URL={url}")
        say(f"portal: {url}/ui (API docs: {url}/docs)")
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        store.close()
        say("registry stopped")


def _status_printer(log_format: str) -> Callable[[str], None]:
    """How `serve` says what it does: plain lines on stderr, or log records when the log
    lines are JSON (so every line a collector reads is one JSON object)."""
    if log_format == "json":
        return logging.getLogger("mesh_stream.registry.serve").info
    return lambda line: click.echo(line, err=True)


def _check_topic(settings: MeshSettings) -> None:
    """Refuse a registry topic that holds something else: the registry would log every
    record there as skipped, then write its own records into it (another tool's data)."""
    topic = settings.registry_topic
    owners = {
        settings.health_topic: "the product monitor's health topic (MESH_HEALTH_TOPIC)",
        settings.alerts_topic: "the product monitor's alerts topic (MESH_ALERTS_TOPIC)",
    }
    if topic.startswith("__"):
        what = "one of Kafka's own topics (names starting with `__`)"
    elif topic in owners:
        what = owners[topic]
    elif TOPIC_NAME.match(topic.removesuffix(".dlq")):
        what = "named like a data product's topic (`<domain>.<product>.v<N>`)"
    else:
        return
    raise ConfigurationError(
        f"registry topic {topic!r} (--topic, MESH_REGISTRY_TOPIC) is {what}; the registry "
        f"keeps its state in a compacted topic of its own (default _mesh_registry)"
    )


def _not_the_registrys_user(
    refused: KafkaAuthorizationError, connection: KafkaConnection, topic: str
) -> KafkaAuthorizationError:
    """The broker's refusal, with the registry's own Kafka user as the way out when another
    user ran it: the error's own advice (grant that user the topic) would let a domain
    rewrite every domain's schemas."""
    own = f"User:{REGISTRY_USER}"
    if connection.principal == own or not connection.security_protocol.uses_sasl:
        return refused
    return KafkaAuthorizationError(
        f"the registry runs as {connection.principal}, which the broker does not let use the "
        f"registry's topic {topic}; run it as the registry's own Kafka user, the one `mesh acl "
        f"apply` grants that topic ({own} unless it was given --registry-principal; "
        f"MESH_KAFKA_SASL_USERNAME={REGISTRY_USER} with its password): a domain's user "
        f"granted it could rewrite every domain's schemas"
    )


def _check_credentials(settings: MeshSettings) -> list[str]:
    """Load the credentials once up front, so any problem with them is one line naming the
    file or setting, before the port is taken or Kafka is asked; the principals whose token
    is too short to be safe."""
    from mesh_stream.registry.service.server import credentials_from_settings

    path = settings.registry_credentials_file
    if path is not None:
        _check_credentials_text(path)
    try:
        credentials = credentials_from_settings(settings)
    except MeshError:
        raise
    except (ValueError, RecursionError) as exc:  # e.g. a 5000-digit YAML integer
        where = (
            f"{path} (--credentials / MESH_REGISTRY_CREDENTIALS_FILE)"
            if path is not None
            else "MESH_REGISTRY_CREDENTIALS"
        )
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ConfigurationError(
            f"{where}: registry credentials cannot be read ({type(exc).__name__}: {reason}); "
            f"they map each principal to its token, e.g. `admin: s3cret`"
        ) from exc
    return credentials.short() if credentials is not None else []


def short_tokens_warning(principals: Sequence[str]) -> str:
    """What `serve` says of credentials-file tokens too short to be safe (never the tokens)."""
    from mesh_stream.registry.service.auth import TOKEN_MIN

    return (
        f"registry credentials: the token of {', '.join(principals)} has fewer than "
        f"{TOKEN_MIN} characters and may be guessed; put long random tokens in the credentials "
        f"(file or MESH_REGISTRY_CREDENTIALS; `python3 -c 'import secrets; "
        f"print(secrets.token_urlsafe(24))'` makes one) and restart: these principals' tokens "
        f"live only there"
    )


def _check_credentials_text(path: Path) -> None:
    """Refuse a credentials file that is not UTF-8 text, naming it and the flag (the YAML
    parser would otherwise fail on it without saying which file or setting)."""
    where = f"{path} (--credentials / MESH_REGISTRY_CREDENTIALS_FILE)"
    try:
        data = read_regular_bytes(path)
    except OSError as exc:
        raise ConfigurationError(
            f"{where}: cannot read registry credentials ({exc.strerror})"
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{where}: registry credentials are {not_utf8(exc)}; the file maps each principal "
            f"to its token in YAML or JSON, e.g. `admin: s3cret`"
        ) from exc
    if "\x00" in text:
        raise ConfigurationError(
            f"{where}: registry credentials contain a NUL byte (offset {text.index(chr(0))}), "
            f"so this is a binary file; the file maps each principal to its token in YAML or "
            f"JSON, e.g. `admin: s3cret`"
        )


# -- mesh registry credentials ---------------------------------------------------------------


def _principal_argument(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Refuse a name the registry would refuse, before asking it (same rule, same words)."""
    # Imported here: mesh_stream.registry.service needs the registry extra (FastAPI), and the
    # CLI must start without it.
    from mesh_stream.registry.service.credentials import principal_problem

    problem = principal_problem(value)
    if problem is not None:
        raise click.BadParameter(problem)
    return value


principal_argument = click.argument("principal", callback=_principal_argument)
registry_url_option = click.option(
    "--registry-url",
    callback=checked_registry_url,
    help="Registry base URL. [env: MESH_REGISTRY_URL; default http://127.0.0.1:8081]",
)
token_option = click.option(
    "--token",
    "admin_token",
    help="The admin token (from the registry's credentials file). Prefer the environment: a "
    "flag shows in the process list. [env: MESH_REGISTRY_TOKEN with MESH_REGISTRY_PRINCIPAL="
    "admin or unset]",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def _admin_client(
    settings: MeshSettings, registry_url: str | None, admin_token: str | None
) -> RegistryClient:
    """A client sending the admin credential: ``--token`` (as admin), else the environment's."""
    from mesh_stream.registry.service.auth import ADMIN  # the registry extra: see above

    url = registry_url or settings.registry_url
    if admin_token is not None:
        return RegistryClient(url, principal=ADMIN, token=admin_token, credential_from="--token")
    if settings.registry_token is None:
        raise click.UsageError(
            "managing credentials needs the admin token: set MESH_REGISTRY_TOKEN (with "
            "MESH_REGISTRY_PRINCIPAL=admin, or unset) or pass --token"
        )
    return RegistryClient(
        url,
        principal=settings.registry_principal,
        token=settings.registry_token.get_secret_value(),
    )


def _as_admin(client: RegistryClient, call: Callable[[], _T]) -> _T:
    """``call()``; a 403 says plainly that only admin manages credentials."""
    try:
        return call()
    except PermissionDeniedError as exc:
        raise PermissionDeniedError(
            f"principal '{client.principal or 'of this token'}' is not admin: only admin manages "
            f"registry credentials; use the admin token of the registry's credentials file "
            f"(MESH_REGISTRY_PRINCIPAL=admin MESH_REGISTRY_TOKEN=..., or --token)",
            status=exc.status,
            error_code=exc.error_code,
        ) from exc


@registry.group()
def credentials() -> None:
    """Registry tokens of domains: add, rotate, revoke, list (admin only, no restart).

    Tokens are kept hashed in the registry's Kafka topic, so every instance knows them at
    once and after restarts; a new token is shown only once. The credentials file stays
    the bootstrap for admin. See the "Registry credentials" how-to of the mesh-stream docs.
    """


def _print_issued(issued: dict[str, Any], *, as_json: bool, quiet: bool, verb: str) -> None:
    principal, token = issued["principal"], issued["token"]
    if as_json:
        click.echo(json.dumps(issued, indent=2, sort_keys=True))
    elif quiet:
        click.echo(token)
    else:
        click.echo(f"principal  {principal}")
        click.echo(f"token id   {issued['token_id']}")
        click.echo(f"created    {issued['created_at']} by {issued['created_by']}")
        click.echo(f"token      {token}")
    click.echo(
        f"{verb} a token for '{principal}' (id {issued['token_id']}); it is shown only this "
        f"once: hand it over as MESH_REGISTRY_PRINCIPAL={principal} MESH_REGISTRY_TOKEN=<token>",
        err=True,
    )


quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="Print only the token on stdout (for scripts)."
)


@credentials.command("add")
@principal_argument
@quiet_option
@json_option
@registry_url_option
@token_option
@click.pass_obj
def add_credential(
    settings: MeshSettings,
    principal: str,
    quiet: bool,
    as_json: bool,
    registry_url: str | None,
    admin_token: str | None,
) -> None:
    """Issue a first token to PRINCIPAL (a domain); refused if it has one (use rotate)."""
    with _admin_client(settings, registry_url, admin_token) as client:
        issued = _as_admin(client, lambda: client.add_credential(principal))
    _print_issued(issued, as_json=as_json, quiet=quiet, verb="issued")


@credentials.command("rotate")
@principal_argument
@quiet_option
@json_option
@registry_url_option
@token_option
@click.pass_obj
def rotate_credential(
    settings: MeshSettings,
    principal: str,
    quiet: bool,
    as_json: bool,
    registry_url: str | None,
    admin_token: str | None,
) -> None:
    """Replace PRINCIPAL's token (issued or from the file); the old one stops at once."""
    with _admin_client(settings, registry_url, admin_token) as client:
        issued = _as_admin(client, lambda: client.rotate_credential(principal))
    _print_issued(issued, as_json=as_json, quiet=quiet, verb="rotated: issued")


@credentials.command("revoke")
@principal_argument
@json_option
@registry_url_option
@token_option
@click.pass_obj
def revoke_credential(
    settings: MeshSettings,
    principal: str,
    as_json: bool,
    registry_url: str | None,
    admin_token: str | None,
) -> None:
    """Revoke PRINCIPAL's token on every instance at once, a file token too, until added again."""
    with _admin_client(settings, registry_url, admin_token) as client:
        revoked = _as_admin(client, lambda: client.revoke_credential(principal))
    if as_json:
        click.echo(json.dumps(revoked, indent=2, sort_keys=True))
        return
    which = (
        f"issued token {revoked['token_id']}"
        if revoked.get("token_id")
        else "its credentials-file token"
    )
    click.echo(f"revoked '{principal}' ({which}) at {revoked['revoked_at']}")


LIST_HEADERS = ("principal", "source", "since", "by", "token id")


@credentials.command("list")
@json_option
@registry_url_option
@token_option
@click.pass_obj
def list_credentials(
    settings: MeshSettings, as_json: bool, registry_url: str | None, admin_token: str | None
) -> None:
    """Every principal: source (file, issued, revoked), since when, by whom, token id.

    Never a secret: a token id names a token without revealing it.
    """
    with _admin_client(settings, registry_url, admin_token) as client:
        rows = _as_admin(client, client.list_credentials)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    table = [LIST_HEADERS] + [
        (
            row["principal"],
            row["source"]
            + (" (file token ignored)" if row["source"] != "file" and row.get("in_file") else ""),
            str(row.get("created_at") or row.get("revoked_at") or "-"),
            str(row.get("created_by") or row.get("revoked_by") or "-"),
            str(row.get("token_id") or "-"),
        )
        for row in rows
    ]
    if sys.stdout.isatty():
        widths = [max(len(line[i]) for line in table) for i in range(len(LIST_HEADERS))]
        for line in table:
            click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    else:
        for line in table[1:]:
            click.echo("\t".join(line))
    click.echo(f"{len(rows)} principal(s)", err=True)
