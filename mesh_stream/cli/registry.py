"""`mesh registry serve`: the schema registry + product catalog over HTTP, state in Kafka."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from mesh_stream.cli.options import checked_kafka_id, checked_topic
from mesh_stream.errors import ConfigurationError, MeshError
from mesh_stream.settings import MeshSettings


@click.group()
def registry() -> None:
    """The registry: Confluent-compatible schemas and the data product catalog."""


@registry.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8081,
    show_default=True,
    help="HTTP port; 0 picks a free one (the URL is printed).",
)
@click.option(
    "--bootstrap-servers",
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
    type=click.IntRange(1024),
    help="Largest request body; larger ones answer 413. [env: MESH_REGISTRY_MAX_BODY_BYTES; "
    "default 1048576]",
)
@click.option(
    "--max-schema-bytes",
    type=click.IntRange(64),
    help="Largest schema text; larger ones answer 422. [env: MESH_REGISTRY_MAX_SCHEMA_BYTES; "
    "default 524288]",
)
@click.option(
    "--max-schema-fields",
    type=click.IntRange(1),
    help="Most record fields in a schema (nested ones too). "
    "[env: MESH_REGISTRY_MAX_SCHEMA_FIELDS; default 5000]",
)
@click.option(
    "--max-schema-depth",
    type=click.IntRange(2),
    help="Deepest JSON nesting of a schema. [env: MESH_REGISTRY_MAX_SCHEMA_DEPTH; default 128]",
)
@click.option(
    "--heavy-workers",
    type=click.IntRange(1),
    help="Threads for schema parsing and compatibility checks. "
    "[env: MESH_REGISTRY_HEAVY_WORKERS; default 2]",
)
@click.option(
    "--heavy-per-client",
    type=click.IntRange(1),
    help="Schema requests one principal (or client address) may have in flight; more answer "
    "429. [env: MESH_REGISTRY_HEAVY_PER_CLIENT; default 2]",
)
@click.option(
    "--auth-failures-per-minute",
    type=click.IntRange(1),
    help="Failed authentications per client address and minute; more answer 429. "
    "[env: MESH_REGISTRY_AUTH_FAILURES_PER_MINUTE; default 20]",
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
    _check_credentials(settings)
    # The port first: it is in the URL this instance advertises, and taking the writer role
    # fences the writer of a registry that may run.
    listener = bind_listener(host, port)
    try:
        app, store = build_registry(
            settings,
            wait_for_replay=False,  # /health answers during replay; other routes 503
            progress=lambda line: click.echo(line, err=True),
            advertised_url=settings.registry_advertised_url
            or default_advertised_url(host, listener.getsockname()[1]),
        )
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
        click.echo(
            f"registry listening on {url} (topic {settings.registry_topic}; {role})", err=True
        )
        if url != settings.registry_url.rstrip("/"):
            click.echo(f"export MESH_REGISTRY_URL={url}", err=True)
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        store.close()
        click.echo("registry stopped", err=True)


def _check_credentials(settings: MeshSettings) -> None:
    """Load the credentials once up front, so any problem with them is one line naming the
    file or setting, before the port is taken or Kafka is asked."""
    from mesh_stream.registry.service.server import credentials_from_settings

    path = settings.registry_credentials_file
    if path is not None:
        _check_credentials_text(path)
    try:
        credentials_from_settings(settings)
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


def _check_credentials_text(path: Path) -> None:
    """Refuse a credentials file that is not UTF-8 text, naming it and the flag (the YAML
    parser would otherwise fail on it without saying which file or setting)."""
    where = f"{path} (--credentials / MESH_REGISTRY_CREDENTIALS_FILE)"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{where}: cannot read registry credentials ({exc.strerror})"
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{where}: registry credentials are not UTF-8 text (byte {exc.start}); the file "
            f"maps each principal to its token in YAML or JSON, e.g. `admin: s3cret`"
        ) from exc
    if "\x00" in text:
        raise ConfigurationError(
            f"{where}: registry credentials contain a NUL byte (offset {text.index(chr(0))}), "
            f"so this is a binary file; the file maps each principal to its token in YAML or "
            f"JSON, e.g. `admin: s3cret`"
        )
