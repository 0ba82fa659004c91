"""Typed settings, read once at the edge (CLI, service start) and passed down as values.

Precedence: command-line flags, then ``MESH_*`` environment variables, then defaults that
work on a fresh machine (a local broker on 9092, a local registry on 8081). Library code
never reads the environment itself; it takes a :class:`MeshSettings` or plain values.
"""

from __future__ import annotations

import difflib
import enum
import logging
import os
import re
import shlex
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from mesh_stream.errors import ConfigurationError, SettingsError, validation_problem

log = logging.getLogger(__name__)

DEFAULT_KAFKA_VERSION = "4.1.1"
#: Compacted topic of the registry's state unless MESH_REGISTRY_TOPIC says otherwise.
_DEFAULT_REGISTRY_TOPIC = "_mesh_registry"


#: The fewest characters ``MESH_REGISTRY_SESSION_SECRET`` may have.
SESSION_SECRET_MIN = 16


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "mesh-stream"


def user_scratch_dir() -> Path:
    """The user's default cache folder (``~/.cache/mesh-stream``), the same for every process
    of the user whatever its settings (``MESH_CACHE_DIR`` and ``TMPDIR`` aside): for what
    processes must share without settings at hand, such as the ports they picked."""
    return _default_cache_dir()


def default_data_dir() -> Path:
    """Where the mesh keeps its state (the broker's data, logs) unless MESH_DATA_DIR says."""
    return Path.home() / ".local" / "share" / "mesh-stream"


def shown_url(url: str) -> str:
    """``url`` as a message may show it: a ``user:password@`` becomes ``<hidden>@`` and each
    query value ``<hidden>`` (a token is sometimes passed as ``?token=...``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:  # everything before the last @ (a password may hold '#', '/' or '?')
        rest = "<hidden>@" + rest.rpartition("@")[2]
    rest, _, _fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    slash = rest.find("/")
    netloc, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    shown = f"{scheme}{sep}{netloc}{path}"
    if question:
        hidden = (
            f"{part.partition('=')[0]}=<hidden>" if "=" in part else "<hidden>"
            for part in query.split("&")
            if part
        )
        shown += "?" + "&".join(hidden)
    return shown


def registry_url_problem(url: str) -> str | None:
    """What is wrong with a registry URL (None when it is usable): checked up front, so a bad
    port is named with its setting instead of failing deep inside the HTTP client."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced [ in the host
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if "@" in url and "@" not in parts.netloc:
        return (
            "has an '@' after its host part: a password holding '#', '/' or '?' must be "
            "percent-encoded (%23, %2F, %3F)"
        )
    if not parts.hostname:
        return "has no host name"
    try:
        port = parts.port
    except ValueError:
        given = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        return f"has port {given!r}, not a number from 1 to 65535"
    if port == 0:
        return "has port 0, not a number from 1 to 65535"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "contains blanks or control characters"
    if parts.query or parts.fragment:
        return (
            "has a query string or fragment, which the registry's API does not take (a token "
            "goes in MESH_REGISTRY_TOKEN or as http://principal:token@host)"
        )
    return None


def advertised_url_problem(url: str) -> str | None:
    """:func:`registry_url_problem`, and no ``user:token@``: the URL is logged and stored in
    the registry's log, and a forwarded write carries its caller's own credential."""
    return _without_credentials(url, "forwarded writes carry their caller's own")


def public_url_problem(url: str) -> str | None:
    """:func:`registry_url_problem`, and no ``user:token@``: the portal shows it to readers."""
    return _without_credentials(url, "which every reader of the portal would see")


def _without_credentials(url: str, why: str) -> str | None:
    """:func:`registry_url_problem`, and a refusal of ``user:token@`` saying ``why``."""
    problem = registry_url_problem(url)
    if problem is None and urlsplit(url).netloc.rpartition("@")[1]:
        return f"carries credentials (user:token@); {why}"
    return problem


#: The prefixes librdkafka takes before a bootstrap server's host (a listener's protocol).
KAFKA_LISTENER_PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")


def bootstrap_addresses(servers: str) -> list[tuple[str, str]]:
    """``(host, port)`` of each entry of a bootstrap servers list, without the listener
    protocol librdkafka accepts before it (``SASL_SSL://broker1:9093``): the one parse every
    client other than librdkafka (faust's URL, socket probes) builds its addresses from. An
    entry without ``:port`` has port ``""``."""
    addresses = []
    for entry in (part.strip() for part in servers.split(",")):
        if not entry:
            continue
        scheme, separator, rest = entry.partition("://")
        address = rest if separator and scheme.lower() in KAFKA_LISTENER_PROTOCOLS else entry
        host, colon, port = address.rpartition(":")
        addresses.append((host, port) if colon else (address, ""))
    return addresses


def bootstrap_servers_problem(servers: str) -> str | None:
    """What is wrong with a bootstrap servers list (None when librdkafka can take it)."""
    if not servers.strip():
        return "is empty"
    try:
        servers.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in servers):
        return "contains blanks or control characters"
    for server in servers.split(","):
        if not server:
            return "has an empty entry (`host:port,host:port`)"
        shown = repr(shown_url(server))
        if "@" in server:
            return (
                f"has credentials (user@) in {shown}: Kafka credentials go in "
                f"MESH_KAFKA_SASL_USERNAME and MESH_KAFKA_SASL_PASSWORD"
            )
        scheme, separator, _rest = server.partition("://")
        if separator and scheme.lower() not in KAFKA_LISTENER_PROTOCOLS:
            return (
                f"has {scheme + separator!r} in {shown}: bootstrap servers are Kafka "
                f"listeners (host:port), not URLs"
            )
        host, colon, port = server.partition("://")[2 if "://" in server else 0].rpartition(":")
        number = port.isascii() and port.isdigit()
        if not colon:
            return f"has no port in {shown} (host:port)"
        if not host:
            return f"has no host name in {shown} (host:port)"
        if ":" in host and not (host.startswith("[") and host.endswith("]")):
            return (
                f"has host {host!r} in {shown}: a host name has no ':' (an IPv6 address goes "
                f"in brackets, [::1]:9092)"
            )
        if not number or int(port) > 65535:
            return f"has port {port!r} in {shown}, not a port number (0-65535)"
    return None


#: Longest topic name Kafka accepts (its ``Topic.MAX_NAME_LENGTH``).
KAFKA_MAX_NAME_LENGTH = 249
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+")


def quoted_name(value: str) -> str:
    """``repr`` of a name, cut to 60 characters: a 100k-character name is not echoed whole."""
    return repr(value) if len(value) <= 60 else f"{value[:60]!r}... ({len(value)} characters)"


def kafka_topic_problem(name: str) -> str | None:
    """What Kafka would refuse in a topic name (None when it is legal): checked up front, so
    the setting is named instead of failing inside librdkafka or the broker."""
    if not name:
        return "is empty"
    if len(name) > KAFKA_MAX_NAME_LENGTH:
        return f"has {len(name)} characters; Kafka allows at most {KAFKA_MAX_NAME_LENGTH}"
    if name in (".", ".."):
        return "is '.' or '..', which Kafka refuses"
    if not _TOPIC_NAME.fullmatch(name):
        bad = next(c for c in name if not _TOPIC_NAME.fullmatch(c))
        return f"contains {bad!r}; Kafka allows only letters a-z A-Z, digits, '.', '_' and '-'"
    return None


def client_name_problem(name: str) -> str | None:
    """What is wrong with a consumer group id or transactional id (None when usable).

    Non-empty, printable UTF-8 text (no NUL or other control characters: librdkafka takes
    C strings, and a NUL in a group id aborts the process), at most 249 characters. Kafka
    itself has no documented limit for these ids, but the broker keeps them as keys of its
    internal topics and a 100k-character group id never joins (the consumer just sees no
    records), so they are bounded like topic names.
    """
    if not name:
        return "is empty"
    if len(name) > KAFKA_MAX_NAME_LENGTH:
        return f"has {len(name)} characters; at most {KAFKA_MAX_NAME_LENGTH} are allowed"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text"
    bad = next((c for c in name if not c.isprintable()), None)
    if bad is not None:
        return f"contains the unprintable character {bad!r}; use printable characters only"
    if name != name.strip():
        return "is blank or has blanks around it"
    return None


#: A JVM heap size as -Xmx takes it: bytes, or a number of k, m or g.
HEAP_SIZE = re.compile(r"([1-9][0-9]*)([kKmMgG]?)\Z")

#: Field -> (the rule that names what is wrong with a value, an example of a good one).
_NAME_RULES: dict[str, tuple[Callable[[str], str | None], str]] = {
    "registry_url": (registry_url_problem, "http://127.0.0.1:8081"),
    "registry_advertised_url": (advertised_url_problem, "http://registry-1.internal:8081"),
    "registry_public_url": (public_url_problem, "https://registry.example.com"),
    "bootstrap_servers": (bootstrap_servers_problem, "127.0.0.1:9092,kafka-2:9092"),
    "registry_topic": (kafka_topic_problem, _DEFAULT_REGISTRY_TOPIC),
    "health_topic": (kafka_topic_problem, "_mesh_product_health"),
    "alerts_topic": (kafka_topic_problem, "_mesh_product_alerts"),
    "openlineage_topic": (kafka_topic_problem, "_mesh_lineage"),
    "registry_writer_id": (client_name_problem, "mesh-registry-writer"),
}


def jvm_options(text: str) -> tuple[str, ...]:
    """``MESH_BROKER_JVM_OPTIONS`` as arguments; a ValueError names a word that is no option."""
    try:
        words = tuple(shlex.split(text))
    except ValueError as exc:
        raise ValueError(f"cannot be split as a shell would: {exc}") from None
    for word in words:
        if not word.startswith("-") or word in ("-cp", "-classpath", "-jar"):
            raise ValueError(
                f"{word!r} is not a JVM option this setting takes (each word starts with "
                f"'-', e.g. -XX:TieredStopAtLevel=1; no -cp or -jar)"
            )
    return words


#: Settings holding a URL that may carry ``principal:token@`` (shown by :func:`shown_url`).
_URL_SETTINGS = frozenset({"registry_url"})


#: librdkafka's partitioners that keep a key in one partition (``random`` does not).
KeyPartitioner = Literal[
    "murmur2_random", "murmur2", "consistent_random", "consistent", "fnv1a_random", "fnv1a"
]


class SecurityProtocol(enum.StrEnum):
    """``security.protocol`` of every Kafka client (MESH_KAFKA_SECURITY_PROTOCOL)."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)

    @property
    def uses_tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)


class SaslMechanism(enum.StrEnum):
    """``sasl.mechanism`` of every Kafka client (MESH_KAFKA_SASL_MECHANISM)."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


def choices(kind: type[enum.StrEnum]) -> str:
    """An enum's values as an error message lists them."""
    return ", ".join(member.value for member in kind)


_Member = TypeVar("_Member", bound=enum.StrEnum)


def _member(kind: type[_Member], value: str, joiner: str, what: str) -> _Member:
    """``value`` as a member of ``kind`` whatever its case and ``-``/``_`` (``joiner`` is
    the one the values use); a ValueError names the choices."""
    other = "_" if joiner == "-" else "-"
    try:
        return kind(value.strip().upper().replace(other, joiner))
    except ValueError:
        raise ValueError(f"is not {what}; use one of {choices(kind)}") from None


def security_protocol(value: str | None) -> SecurityProtocol:
    """``value`` as a security protocol (case, blanks and ``-``/``_`` aside; unset is
    PLAINTEXT); a ValueError names the choices."""
    if value is None or not str(value).strip():
        return SecurityProtocol.PLAINTEXT
    return _member(SecurityProtocol, str(value), "_", "a security protocol")


def sasl_mechanism(value: str | None) -> SaslMechanism | None:
    """``value`` as a SASL mechanism (as :func:`security_protocol`; unset is None)."""
    if value is None or not str(value).strip():
        return None
    return _member(SaslMechanism, str(value), "-", "a supported SASL mechanism")


class MeshSettings(BaseSettings):
    """Every knob of the platform, each settable as ``MESH_<NAME>``."""

    # nan or inf is no number of seconds, bytes or records: refused for every float setting
    # hide_input_in_errors: a ValidationError printed as it is (outside the CLI, e.g. by a
    # service building MeshSettings()) must not show a secret's value; environment_problems
    # names each bad value itself, masking the secrets.
    model_config = SettingsConfigDict(
        env_prefix="MESH_", extra="ignore", allow_inf_nan=False, hide_input_in_errors=True
    )

    def __init__(self, **values: Any) -> None:
        """Read the ``MESH_*`` variables (``values`` win); a bad one raises
        :class:`~mesh_stream.errors.SettingsError`, a ``MeshError`` like every other, and so
        does a keyword that is no setting (it was ignored: ``bootstrap_server=`` left the
        default in force, h53)."""
        unknown = sorted(  # pydantic-settings' own options start with "_" (_env_file)
            name for name in values if name not in type(self).model_fields and name[:1] != "_"
        )
        if unknown:
            raise SettingsError(unknown_arguments(unknown, list(type(self).model_fields)))
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(environment_problems(exc, given=set(values))) from exc
        for warning in unsaid_misspelled_settings():  # an SDK user's, the CLI said its own
            log.warning("%s", warning)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """What ``repr`` and ``str`` show: a ``principal:token@`` in the registry URL (the
        documented way to give a token) hidden, as every secret is."""
        for name, value in super().__repr_args__():
            shown = shown_url(value) if name in _URL_SETTINGS and isinstance(value, str) else value
            yield name, shown

    @field_serializer(*_URL_SETTINGS)
    def _dumped_url(self, value: str) -> str:
        """What ``model_dump`` gives for a URL setting: its ``principal:token@`` hidden too, as
        ``SecretStr`` fields dump as stars (h53: a dump of the settings showed the token)."""
        return shown_url(value)

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers; unset means the local broker (`mesh broker start`).",
    )
    kafka_security_protocol: str = Field(
        default="PLAINTEXT",
        description="security.protocol of every Kafka client: PLAINTEXT, SSL, SASL_PLAINTEXT "
        "or SASL_SSL.",
    )
    kafka_sasl_mechanism: str | None = Field(
        default=None, description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL username.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_ca_location: Path | None = Field(
        default=None, description="PEM file of the CA that signed the brokers' certificates."
    )
    kafka_ssl_certificate_location: Path | None = Field(
        default=None, description="PEM client certificate (mTLS); needs the key too."
    )
    kafka_ssl_key_location: Path | None = Field(
        default=None, description="PEM private key of the client certificate (mTLS)."
    )
    kafka_client_id: str | None = Field(
        default=None, description="client.id the Kafka clients announce (broker logs, quotas)."
    )
    registry_url: str = Field(
        default="http://127.0.0.1:8081", description="Base URL of the mesh registry."
    )
    registry_principal: str | None = Field(
        default=None, description="Principal (a domain name or `admin`) for registry writes."
    )
    registry_token: SecretStr | None = Field(
        default=None, description="Token of `registry_principal` for registry writes."
    )
    registry_credentials_file: Path | None = Field(
        default=None,
        description="YAML or JSON file mapping principal -> token, read by `mesh registry serve`.",
    )
    registry_credentials: SecretStr | None = Field(
        default=None,
        description="Registry credentials as `principal:token,...` (instead of the file).",
    )
    registry_topic: str = Field(
        default=_DEFAULT_REGISTRY_TOPIC,
        description="Compacted Kafka topic holding the registry state.",
    )
    registry_writer_id: str = Field(
        default="mesh-registry-writer",
        description="transactional.id every registry instance on the topic shares; the one "
        "taking the writer role fences the previous writer with it. Left unset, a registry "
        "on another topic than _mesh_registry uses `mesh-registry-writer-<topic>`, so "
        "registries on different topics never fence each other.",
    )
    registry_writer_lease_seconds: float = Field(
        default=10.0,
        ge=2.0,
        le=600.0,
        description="How long the writer's claim holds without renewal (renewed every third of "
        "it): when a writer dies, another instance takes over this long (plus a second or two) "
        "after its last renewal. Shorter fails over faster; longer rides out longer pauses "
        "(GC, a frozen VM, a slow broker) without a takeover. Each writer states its own in "
        "its claim.",
    )
    registry_advertised_url: str | None = Field(
        default=None,
        description="URL the other registry instances forward writes to while this one is the "
        "writer; unset: http://<host>:<port> it listens on.",
    )
    registry_public_url: str | None = Field(
        default=None,
        description="The registry's address the portal gives readers in its how-to-consume "
        "snippets (e.g. a load balancer's); unset: the address a page was asked at.",
    )
    registry_read_requires_auth: bool = Field(
        default=False, description="Require a credential for registry reads too."
    )
    registry_session_secret: SecretStr | None = Field(
        default=None,
        description="Key that seals the portal's sign-in cookie (at least 16 characters, "
        "random); registry instances behind one address need the same key. Unset: a random "
        "key per process (a restart signs everybody out).",
    )
    registry_open_writes: bool = Field(
        default=False,
        description="Serve the registry without credentials, everyone admin (local dev only).",
    )
    registry_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest registry request body (HTTP 413 above)."
    )
    registry_max_schema_bytes: int = Field(
        default=512 * 1024,
        ge=64,
        description="Largest schema text the registry parses (HTTP 422, 42201, above); the "
        "Avro parser's own bounds apply too.",
    )
    registry_max_schema_fields: int = Field(
        default=5000,
        ge=1,
        description="Most record fields (nested ones included) in one schema; parse and "
        "compatibility cost grows with it. The Avro parser's own bounds apply too.",
    )
    registry_max_schema_depth: int = Field(
        default=128, ge=2, description="Deepest JSON nesting of one schema document."
    )
    registry_heavy_workers: int = Field(
        default=2,
        ge=1,
        description="Threads that parse schemas and check compatibility, for all clients "
        "together; the event loop keeps serving reads meanwhile.",
    )
    registry_heavy_per_client: int = Field(
        default=2,
        ge=1,
        description="Schema-parsing requests one principal (or, unauthenticated, one client "
        "address) may have in flight; more answer 429 with Retry-After.",
    )
    registry_auth_failures_per_minute: int = Field(
        default=20,
        ge=1,
        description="Failed authentications one client address may make per minute; more "
        "answer 429 with Retry-After.",
    )
    registry_governance: bool = Field(
        default=True,
        description="Refuse (HTTP 422) product descriptors that break an error-level "
        "governance policy; turn off only in a sandbox.",
    )
    project_root: Path | None = Field(
        default=None,
        description="Folder holding the project's mesh.yaml (its domains, descriptors, schemas); "
        "unset means the nearest mesh.yaml upwards from the working directory.",
    )
    governance_root: Path | None = Field(
        default=None,
        description="Project root whose policies the registry enforces (the policy file its "
        "mesh.yaml names and the <domain>/policies.yaml overrides in its products folder); "
        "unset means MESH_PROJECT_ROOT (`mesh up` sets both to its project), else the built-in "
        "policy defaults.",
    )
    kafka_version: str = Field(
        default=DEFAULT_KAFKA_VERSION,
        description="Apache Kafka version the local launcher fetches from Maven Central.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where fetched Kafka jars are kept (one folder per version).",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the local broker, registry and processors keep their state.",
    )
    broker_port: int = Field(
        default=9092, ge=0, le=65535, description="First listener port of the local broker."
    )
    broker_heap: str = Field(
        default="512m",
        description="JVM -Xmx of each local broker node: a number of bytes, optionally with "
        "k, m or g (e.g. 512m, 2g).",
    )
    broker_jvm_options: str = Field(
        default="",
        description="More JVM options for each local broker node, split as a shell would "
        "(e.g. `-XX:TieredStopAtLevel=1`: about half the CPU of a start, for short-lived "
        "test clusters; long-running ones are faster without it).",
    )
    broker_start_timeout: float = Field(
        default=90.0, description="Seconds to wait for the local broker to answer (at least 1)."
    )
    consumer_registry_wait_seconds: float = Field(
        default=300.0,
        ge=0,
        le=604_800,
        description="How long a consumer, `mesh tail` and a processor's re-key stage wait "
        "for an unavailable registry when a record needs a schema they have not seen, before "
        "they fail (nothing is skipped).",
    )
    producer_partitioner: KeyPartitioner = Field(
        default="murmur2_random",
        description="The partition a publisher built from settings (`open_publisher`, `mesh "
        "publish`, `mesh up`'s simulators) gives a keyed record, as librdkafka names it: "
        "Java's murmur2 by default, where Java clients and the processors put a key. "
        "`consistent_random` (librdkafka's CRC-32 default, which mesh-stream used before) "
        "keeps a topic already written that way in place: a key must not change partitions "
        "during a topic's life.",
    )
    producer_auto_register: bool = Field(
        default=True,
        description="Whether a publisher built from settings (`open_publisher`, `mesh "
        "publish`, `mesh up`'s simulators) registers its value schema and data contract, and "
        "a descriptor the catalog lacks, itself (as Confluent's `auto.register.schemas`). "
        "`false` for production publishers: they only use the version `mesh products apply` "
        "registered and refuse to start without it, so a working copy cannot change a "
        "contract. (`mesh up` itself still registers its project when it starts, as `mesh "
        "products apply` would.)",
    )

    monitor_interval_seconds: float = Field(
        default=60.0,
        ge=1,
        le=604_800,
        description="How often `mesh monitor` measures every product (seconds, at most a week).",
    )
    health_topic: str = Field(
        default="_mesh_product_health",
        description="Compacted topic of the product monitor's measurements (one record per "
        "product and minute).",
    )
    alerts_topic: str = Field(
        default="_mesh_product_alerts",
        description="Topic of SLO breaches and recoveries the product monitor publishes.",
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description="URL the product monitor POSTs each alert to as JSON (secret: it may "
        "carry a token).",
    )
    processor_instance_id: str | None = Field(
        default=None,
        description="Static consumer-group membership of a processor worker: a worker that "
        "restarts with the same id takes its partitions back at once, instead of after the "
        "10 s in which Kafka notices that the last one died. Unique among the running "
        "workers of one processor (e.g. a StatefulSet pod's name); `mesh up` and "
        "`mesh verify` set one per worker. Unset: dynamic membership.",
    )
    processor_state_flush_at: int = Field(
        default=200,
        ge=1,
        description="A processor worker writes its state to RocksDB and the changelog when "
        "faust commits (about once a second), or as soon as this many keys' writes are waiting: "
        "a backlog touches many keys a second, and one commit sending all of them at once "
        "holds up the outputs behind it. 1 writes every update at once (`mesh verify` uses "
        "that, so its kills find state ahead of the committed offsets as often as possible).",
    )
    processor_batch_wait_ms: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="While its input is busy, a processor worker gathers what arrives for up "
        "to this long into one batch (a batch after an idle spell never waits). Each batch "
        "costs a state write, a changelog record and an output per key it touches, so a "
        "shorter wait trades CPU for latency: at a steady 1,000 events/s, 10 ms gave a p50 "
        "of 9 ms instead of 16 ms (p99 20 instead of 39 ms) for about two fifths more "
        "worker CPU per event (docs/benchmarks.md).",
    )
    processor_stall_seconds: float = Field(
        default=120.0,
        ge=5.0,
        le=86_400.0,
        description="A processor worker stops (and is restarted, reading them again) when "
        "records of an internal partition it owns wait in Kafka and none has reached its "
        "aggregate for this long, outside rebalances and state recovery, or when a recovery of "
        "its state has changelog records left and reads none for this long: a takeover under "
        "load left faust recovering two partitions' state for minutes, reading nothing.",
    )
    processor_event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description="Event loop of a processor worker. auto: uvloop when installed (it comes "
        "with the `processing` extra, except on Windows), else asyncio's own; uvloop: refuse "
        "to start without it. At 1,000 events/s uvloop took about a tenth off the worker's "
        "CPU per event and its latency (docs/design/processing.md).",
    )
    processor_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port on which a processor worker serves /metrics, /health/live and "
        "/health/ready (all interfaces); 0 picks a free one (printed at start); unset: none.",
    )
    openlineage_url: SecretStr | None = Field(
        default=None,
        description="HTTP endpoint (e.g. Marquez `http://host:5000`) processors send their "
        "OpenLineage run events to (START, RUNNING, COMPLETE, FAIL): a URL whose path's last "
        "segment is `lineage` is posted to as it is (query kept), any other gets "
        "`api/v1/lineage` appended; secret: it may carry a token. Unset (and no "
        "openlineage_topic): no events.",
    )
    openlineage_topic: str | None = Field(
        default=None,
        description="Kafka topic processors write their OpenLineage run events to (JSON, "
        "keyed by job name), instead of or besides openlineage_url.",
    )
    openlineage_running_minutes: float = Field(
        default=5.0,
        ge=0.01,
        le=10_080,
        description="Minutes between a processor's OpenLineage RUNNING events (0.01, i.e. "
        "0.6 s, to a week).",
    )
    datahub_token: SecretStr | None = Field(
        default=None,
        description="Token `mesh export datahub --gms-url` sends to DataHub's GMS (Bearer).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines of the registry, the monitor and processors: `text`, or `json` "
        "(one JSON object per line).",
    )

    @field_validator(
        "project_root",
        "governance_root",
        "kafka_ssl_ca_location",
        "kafka_ssl_certificate_location",
        "kafka_ssl_key_location",
        "registry_credentials_file",
        "processor_metrics_port",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``MESH_PROJECT_ROOT=`` means unset (the nearest mesh.yaml upwards), not Path("."):
        an empty optional path or port is the same as no setting, never the current folder."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "registry_url",
        "registry_advertised_url",
        "registry_public_url",
        "bootstrap_servers",
        "registry_topic",
        "registry_writer_id",
        "health_topic",
        "alerts_topic",
        "openlineage_topic",
    )
    @classmethod
    def _check_names(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Addresses and Kafka names, checked before anything connects (one rule each)."""
        if value is None:
            return value
        rule, example = _NAME_RULES[info.field_name or ""]
        problem = rule(value)
        if problem is not None:
            raise ValueError(f"{problem} (e.g. {example})")
        return value

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _check_security_protocol(cls, value: str | None) -> str:
        """Refused at start-up like every other bad MESH_* value, not at the first client."""
        return security_protocol(value).value

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _check_sasl_mechanism(cls, value: str | None) -> str | None:
        mechanism = sasl_mechanism(value)
        return None if mechanism is None else mechanism.value

    @field_validator("kafka_version")
    @classmethod
    def _check_kafka_version(cls, value: str) -> str:
        """A release number: it names a cache folder and a Maven coordinate, so `../x` or
        `4.1.1/..` must never reach either."""
        if not re.fullmatch(r"[0-9]+(\.[0-9]+){1,3}(-[A-Za-z0-9]+)?", value):
            raise ValueError("is not an Apache Kafka release number (e.g. 4.1.1)")
        return value

    @field_validator("registry_session_secret")
    @classmethod
    def _check_session_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """Whoever guesses the key can seal a sign-in cookie for any principal, admin too: a
        short one is refused (the message never repeats it)."""
        if value is not None and len(value.get_secret_value().strip()) < SESSION_SECRET_MIN:
            raise ValueError(
                f"is shorter than {SESSION_SECRET_MIN} characters: whoever guesses it can sign "
                f"in as anyone; use a random key, e.g. from `python -c 'import secrets; "
                f"print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("alert_webhook_url", "openlineage_url")
    @classmethod
    def _check_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        """An http(s) URL, checked up front: a bad one would only show when an alert is lost.
        The message never repeats the URL (its path often is the secret)."""
        if value is not None:
            try:
                parts = urlsplit(value.get_secret_value())
            except ValueError:
                parts = None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL with a host name")
        return value

    @field_validator("data_dir", "cache_dir", mode="before")
    @classmethod
    def _check_state_folder(cls, value: object) -> object:
        """``MESH_DATA_DIR=`` would be Path("."): the current folder, which ``--fresh`` erases
        parts of. An empty value is a mistake (a variable meant to be set), and so is a file."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty; unset it for the default folder, or name a folder")
        if isinstance(value, (str, Path)) and Path(value).expanduser().is_file():
            raise ValueError("is a file; name a folder (it is made if missing)")
        if isinstance(value, (str, Path)):
            path = Path(value).expanduser()
            if path.exists() and not path.is_dir():
                raise ValueError("is not a folder (a device or socket?); name a folder")
            if not path.exists() and any(p.exists() and not p.is_dir() for p in path.parents):
                raise ValueError("lies under something that is not a folder; name a folder")
        if isinstance(value, (str, Path)):  # `~/x` and `data` name the same folder everywhere
            return Path(value).expanduser().absolute()
        return value

    @field_validator("processor_instance_id")
    @classmethod
    def _check_instance_id(cls, value: str | None) -> str | None:
        """A Kafka group.instance.id: 1-200 of a-z A-Z 0-9 . _ - (empty means unset)."""
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", value):
            raise ValueError(
                "is not a Kafka group instance id: 1 to 200 of letters, digits, '.', '_' and "
                "'-' (e.g. revenue-worker-1)"
            )
        return value

    @field_validator("broker_start_timeout")
    @classmethod
    def _check_start_timeout(cls, value: float) -> float:
        """At least 1 s, as `mesh broker start --timeout` (a Kafka node never answers sooner;
        a smaller wait only fails every start)."""
        if value < 1:
            raise ValueError(
                "is less than 1 second, which no broker start fits in; give at least 1 (as "
                "`mesh broker start --timeout`), or unset it for the default 90"
            )
        return value

    @field_validator("broker_heap")
    @classmethod
    def _check_heap(cls, value: str) -> str:
        """What the JVM's -Xmx takes, checked before a broker start fails on it."""
        if not HEAP_SIZE.fullmatch(value):
            raise ValueError("is not a heap size: a number of bytes, optionally with k, m or g")
        return value

    @field_validator("broker_jvm_options")
    @classmethod
    def _check_jvm_options(cls, value: str) -> str:
        """Options only (each starts with ``-``), so nothing can replace the broker's class."""
        jvm_options(value)
        return value

    @property
    def resolved_registry_writer_id(self) -> str:
        """The registry's transactional.id: the setting when given, else one per registry
        topic (the default topic keeps the plain default), so a second registry on its own
        topic cannot fence the first."""
        if "registry_writer_id" in self.model_fields_set or self.registry_topic == (
            _DEFAULT_REGISTRY_TOPIC
        ):
            return self.registry_writer_id
        return f"{self.registry_writer_id}-{self.registry_topic}"

    def resolved_bootstrap_servers(self) -> str:
        """The bootstrap servers to use: the configured ones, else the local broker's port.

        Checked again here because a command's ``--bootstrap-servers`` flag replaces the
        setting without validation (``model_copy``).
        """
        servers = self.bootstrap_servers or f"127.0.0.1:{self.broker_port}"
        problem = bootstrap_servers_problem(servers)
        if problem is not None:
            raise ConfigurationError(
                f"bootstrap servers {shown_url(servers)!r} {problem} (e.g. 127.0.0.1:9092); fix "
                f"MESH_BOOTSTRAP_SERVERS or --bootstrap-servers"
            )
        return servers


#: Settings whose values an error never repeats.
_SECRET_WORDS = (
    "token",
    "credentials",
    "password",
    "secret",
    "webhook",
    "openlineage_url",
    "jvm_options",
)


def _shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def unknown_arguments(unknown: list[str], known: list[str]) -> str:
    """Keywords given to a settings class that are none of its settings, with the nearest."""
    said = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        said.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"not a mesh-stream setting: {', '.join(said)}"


def environment_problems(exc: ValidationError, given: Collection[str] = ()) -> str:
    """One line per bad setting: its name, the value given and what is expected. A setting
    in ``given`` (keyword arguments) is named as the argument, the others as the
    ``MESH_*`` variable they were read from."""
    named = {str(problem["loc"][0]) for problem in exc.errors() if problem["loc"]}
    from_env = not named <= set(given)
    lines = ["invalid MESH_* environment setting:" if from_env else "invalid setting:"]
    for problem in exc.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"])
        secret = any(word in field for word in _SECRET_WORDS)
        shown = problem.get("input")
        if isinstance(shown, str) and ("://" in shown or "@" in shown):  # user:token@, ?token=
            shown = shown_url(shown)
        value = "<hidden>" if secret else _shortened(repr(shown))
        argument = bool(problem["loc"]) and str(problem["loc"][0]) in given
        name = field if argument else f"MESH_{field.upper()}"
        lines.append(f"  {name}={value}: {validation_problem(problem)}")
    return "\n".join(lines)


#: The warnings of :func:`unsaid_misspelled_settings` given so far in this process.
_MISSPELLINGS_SAID: set[str] = set()


def unsaid_misspelled_settings(*, again: bool = False) -> list[str]:
    """:func:`misspelled_settings` of this process's environment not given yet (``again``:
    every one, for an entry point's start), each then counted as given: the CLI and a worker
    print them before they read their settings, :class:`MeshSettings` logs the others (an SDK
    user's), so none is said twice."""
    found = misspelled_settings()
    new = found if again else [warning for warning in found if warning not in _MISSPELLINGS_SAID]
    _MISSPELLINGS_SAID.update(new)
    return new


def misspelled_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``MESH_*`` variable that is no setting but close to an unset one
    (``MESH_BOOTSTRAP_SERVER`` for ``MESH_BOOTSTRAP_SERVERS``): settings ignore unknown
    variables, so a typo would otherwise silently leave the default in force. Names far
    from every setting (a team's own ``MESH_*`` variables) are not mentioned."""
    environ = os.environ if environ is None else environ
    known = ["MESH_" + name.upper() for name in MeshSettings.model_fields]
    given = {name.upper() for name in environ}  # settings read names in any case
    warnings = []
    for name in sorted(environ):
        if not name.upper().startswith("MESH_") or name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.85)
        if close and close[0] not in given:
            warnings.append(
                f"{name} is not a mesh-stream setting and is ignored; did you mean {close[0]}?"
            )
    return warnings
