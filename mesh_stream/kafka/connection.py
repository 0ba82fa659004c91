"""One typed Kafka connection that renders the config of every client the mesh builds.

A :class:`KafkaConnection` holds where the cluster is and how to authenticate to it
(``security.protocol``, SASL mechanism and credentials, TLS files, client id). It is
validated when built — a wrong mechanism name, a missing CA file or a password without a
username is a one-line :class:`~mesh_stream.errors.ConfigurationError` naming the
``MESH_KAFKA_*`` setting, before any connection is tried — and it renders:

- :meth:`KafkaConnection.librdkafka_config` for confluent-kafka producers, consumers and
  admin clients (build those with :mod:`mesh_stream.kafka.clients`, the one place that does);
- :meth:`KafkaConnection.faust_broker_url` and :meth:`KafkaConnection.faust_broker_credentials`
  for faust/aiokafka (faust is imported only when that method is called, so the SDK can
  import this module without pulling in faust).

The password is a :class:`~pydantic.SecretStr`: ``repr``/``str`` of the connection, of the
rendered config and of every error show ``**********``; only the mapping handed to
librdkafka (and faust's credentials object) carries the real value. Use
:meth:`KafkaConnection.redacted` to log a config.

:func:`explain_kafka_error` turns librdkafka's authentication, TLS and authorization
failures into :class:`~mesh_stream.errors.KafkaSecurityError` subclasses that say which
setting to check or which ACL is missing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from mesh_stream.errors import (
    BrokerUnreachableError,
    ConfigurationError,
    KafkaAuthenticationError,
    KafkaAuthorizationError,
    MeshError,
    SettingsError,
)
from mesh_stream.settings import (
    SaslMechanism,
    SecurityProtocol,
    bootstrap_addresses,
    bootstrap_servers_problem,
    choices,
    sasl_mechanism,
    security_protocol,
    shown_url,
)

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, KafkaException
    from faust.types.auth import CredentialsT

    from mesh_stream.settings import MeshSettings

MASK = "**********"

# The setting (environment variable) behind each field, for error messages.
SETTING = {
    "bootstrap_servers": "MESH_BOOTSTRAP_SERVERS",
    "security_protocol": "MESH_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "MESH_KAFKA_SASL_MECHANISM",
    "sasl_username": "MESH_KAFKA_SASL_USERNAME",
    "sasl_password": "MESH_KAFKA_SASL_PASSWORD",
    "ssl_ca_location": "MESH_KAFKA_SSL_CA_LOCATION",
    "ssl_certificate_location": "MESH_KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl_key_location": "MESH_KAFKA_SSL_KEY_LOCATION",
    "client_id": "MESH_KAFKA_CLIENT_ID",
}

# librdkafka keys whose values are secrets: masked in every repr of a rendered config.
SECRET_KEYS = frozenset(
    {
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "sasl.oauthbearer.client.secret",
    }
)


class KafkaConfig(dict[str, Any]):
    """A librdkafka config mapping whose ``repr``/``str`` mask secret values.

    confluent-kafka reads the real values (it iterates the mapping); a log line or a
    traceback that prints the mapping shows ``**********`` instead.
    """

    def redacted(self) -> dict[str, Any]:
        return {key: MASK if key in SECRET_KEYS else value for key, value in self.items()}

    def __repr__(self) -> str:
        return repr(self.redacted())

    __str__ = __repr__


#: A :attr:`KafkaConnection.client_log_level` that keeps only librdkafka's critical lines.
QUIET_LOG_LEVEL = 2


@dataclass(frozen=True)
class KafkaConnection:
    """Where a Kafka cluster is and how to authenticate to it; validated when built.

    Build it with :meth:`from_settings` (``MESH_BOOTSTRAP_SERVERS`` and ``MESH_KAFKA_*``) or
    :meth:`create` (plain strings, e.g. from flags). Immutable: derive variants with
    :meth:`replace`, which validates again.
    """

    bootstrap_servers: str
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    client_id: str | None = None
    #: librdkafka's own ``log_level`` for every client made on this connection (syslog
    #: levels: 2 keeps only critical lines); None leaves librdkafka's default (6). A server
    #: that says in its own words when Kafka is away sets it: librdkafka wrote a line per
    #: failed reconnect of each client to stderr, 45 a second from the registry.
    client_log_level: int | None = None

    def __post_init__(self) -> None:
        _validate(self)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        bootstrap_servers: str,
        *,
        security_protocol: str | SecurityProtocol | None = None,
        sasl_mechanism: str | SaslMechanism | None = None,
        sasl_username: str | None = None,
        sasl_password: str | SecretStr | None = None,
        ssl_ca_location: str | Path | None = None,
        ssl_certificate_location: str | Path | None = None,
        ssl_key_location: str | Path | None = None,
        client_id: str | None = None,
    ) -> KafkaConnection:
        """Build from loose values (strings, case-insensitive names); empty means unset."""
        password = sasl_password
        if isinstance(password, SecretStr):
            password = password.get_secret_value()
        return cls(
            bootstrap_servers=(bootstrap_servers or "").strip(),
            security_protocol=_parse_protocol(security_protocol),
            sasl_mechanism=_parse_mechanism(sasl_mechanism),
            sasl_username=sasl_username or None,
            sasl_password=SecretStr(password) if password else None,
            ssl_ca_location=_path(ssl_ca_location),
            ssl_certificate_location=_path(ssl_certificate_location),
            ssl_key_location=_path(ssl_key_location),
            client_id=client_id or None,
        )

    @classmethod
    def from_settings(
        cls, settings: MeshSettings, *, default_client_id: str | None = None
    ) -> KafkaConnection:
        """The connection ``settings`` describe; ``default_client_id`` applies when
        ``MESH_KAFKA_CLIENT_ID`` is unset (e.g. ``mesh-registry``)."""
        return cls.create(
            settings.resolved_bootstrap_servers(),
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            ssl_ca_location=settings.kafka_ssl_ca_location,
            ssl_certificate_location=settings.kafka_ssl_certificate_location,
            ssl_key_location=settings.kafka_ssl_key_location,
            client_id=settings.kafka_client_id or default_client_id,
        )

    def replace(self, **changes: Any) -> KafkaConnection:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- descriptions ------------------------------------------------------------------
    @property
    def principal(self) -> str:
        """The Kafka principal the broker will see, as ACLs name it."""
        if self.security_protocol.uses_sasl:
            return f"User:{self.sasl_username}"
        if self.ssl_certificate_location is not None:
            return f"the principal of the certificate {self.ssl_certificate_location}"
        return "User:ANONYMOUS"

    def describe(self) -> str:
        """One line for messages: protocol, servers and identity, never the password."""
        text = f"{self.security_protocol.value} to {self.bootstrap_servers}"
        if self.security_protocol.uses_sasl:
            text += f" as {self.sasl_username} ({self.sasl_mechanism})"
        return text

    # -- librdkafka --------------------------------------------------------------------
    def librdkafka_config(self, extra: Mapping[str, Any] | None = None) -> KafkaConfig:
        """The confluent-kafka/librdkafka config: connection keys, then ``extra`` on top."""
        config = KafkaConfig({"bootstrap.servers": self.bootstrap_servers})
        config["security.protocol"] = self.security_protocol.value.lower()
        if self.sasl_mechanism is not None:
            config["sasl.mechanism"] = self.sasl_mechanism.value
        if self.sasl_username is not None:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location is not None:
            config["ssl.ca.location"] = str(self.ssl_ca_location)
        if self.ssl_certificate_location is not None:
            config["ssl.certificate.location"] = str(self.ssl_certificate_location)
        if self.ssl_key_location is not None:
            config["ssl.key.location"] = str(self.ssl_key_location)
        if self.client_id is not None:
            config["client.id"] = self.client_id
        if self.client_log_level is not None:
            config["log_level"] = self.client_log_level
        config.update(extra or {})
        return config

    def redacted(self) -> dict[str, Any]:
        """The librdkafka config with secrets masked: safe to log or print."""
        return self.librdkafka_config().redacted()

    # -- faust / aiokafka ----------------------------------------------------------------
    def faust_broker_url(self) -> str:
        """faust's ``broker`` setting: ``kafka://host:port;kafka://host:port``."""
        return ";".join(f"kafka://{host}:{port}" for host, port in self.addresses)

    @property
    def addresses(self) -> list[tuple[str, str]]:
        """``(host, port)`` of each bootstrap server, without a listener protocol prefix."""
        return bootstrap_addresses(self.bootstrap_servers)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context (CA, client certificate) for aiokafka; None without TLS."""
        if not self.security_protocol.uses_tls:
            return None
        try:
            cafile = str(self.ssl_ca_location) if self.ssl_ca_location else None
            context = ssl.create_default_context(cafile=cafile)
        except ssl.SSLError as exc:
            raise SettingsError(
                f"{SETTING['ssl_ca_location']}: {self.ssl_ca_location} is not a usable PEM CA "
                f"certificate ({exc.reason or exc})"
            ) from exc
        if self.ssl_certificate_location is not None and self.ssl_key_location is not None:
            try:
                context.load_cert_chain(self.ssl_certificate_location, self.ssl_key_location)
            except ssl.SSLError as exc:
                raise SettingsError(
                    f"{SETTING['ssl_certificate_location']} / {SETTING['ssl_key_location']}: "
                    f"{self.ssl_certificate_location} and {self.ssl_key_location} are not a "
                    f"matching PEM certificate and unencrypted key ({exc.reason or exc})"
                ) from exc
        return context

    def faust_broker_credentials(self) -> CredentialsT | None:
        """faust's ``broker_credentials``: SASL or SSL credentials, None for PLAINTEXT.

        Imports faust here (and only when there are credentials), not at module import, so
        the SDK stays free of faust.
        """
        if self.security_protocol is SecurityProtocol.PLAINTEXT:
            return None
        from faust.auth import SASLCredentials, SSLCredentials

        context = self.ssl_context()
        if self.security_protocol.uses_sasl:
            assert self.sasl_mechanism is not None
            assert self.sasl_password is not None
            return SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password.get_secret_value(),
                mechanism=self.sasl_mechanism.value,
                ssl_context=context,
            )
        if context is not None:
            return SSLCredentials(context)
        return None


# -- validation -------------------------------------------------------------------------
def _path(value: str | Path | None) -> Path | None:
    if value is None or str(value) == "":
        return None
    return Path(value).expanduser()


def _parse_protocol(value: str | SecurityProtocol | None) -> SecurityProtocol:
    try:
        return security_protocol(value)
    except ValueError as exc:
        raise SettingsError(f"{SETTING['security_protocol']}={value!r} {exc}") from None


def _parse_mechanism(value: str | SaslMechanism | None) -> SaslMechanism | None:
    try:
        return sasl_mechanism(value)
    except ValueError as exc:
        raise SettingsError(f"{SETTING['sasl_mechanism']}={value!r} {exc}") from None


def resolve_connection(
    connection: KafkaConnection | None, bootstrap_servers: str | None
) -> KafkaConnection:
    """``connection``, or a PLAINTEXT connection to ``bootstrap_servers`` (the shorthand)."""
    if connection is not None:
        if bootstrap_servers is not None and bootstrap_servers != connection.bootstrap_servers:
            raise ConfigurationError(
                f"bootstrap_servers={bootstrap_servers!r} differs from the connection's "
                f"{connection.bootstrap_servers!r}; give only connection="
            )
        return connection
    if bootstrap_servers is None:
        raise ConfigurationError(
            "no Kafka to talk to: give connection=KafkaConnection.from_settings(settings) "
            "(or bootstrap_servers='host:port' for a PLAINTEXT cluster)"
        )
    return KafkaConnection.create(bootstrap_servers)


def _validate(conn: KafkaConnection) -> None:
    # Direct construction with plain strings is normalised like create() does.
    coerce = object.__setattr__
    if not isinstance(conn.security_protocol, SecurityProtocol):
        coerce(conn, "security_protocol", _parse_protocol(conn.security_protocol))
    if conn.sasl_mechanism is not None and not isinstance(conn.sasl_mechanism, SaslMechanism):
        coerce(conn, "sasl_mechanism", _parse_mechanism(conn.sasl_mechanism))
    if isinstance(conn.sasl_password, str):
        coerce(conn, "sasl_password", SecretStr(conn.sasl_password) if conn.sasl_password else None)
    for name in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location"):
        value = getattr(conn, name)
        if value is not None and not isinstance(value, Path):
            coerce(conn, name, _path(value))
    # librdkafka takes blanks around the commas (`a:9092, b:9092`), as code may write them
    problem = bootstrap_servers_problem(
        ",".join(entry.strip() for entry in conn.bootstrap_servers.split(","))
    )
    if problem is not None:
        raise SettingsError(
            f"{SETTING['bootstrap_servers']}={shown_url(conn.bootstrap_servers)!r} {problem}; "
            f"set it to your cluster's bootstrap servers, e.g. broker1:9092,broker2:9092"
        )
    protocol = conn.security_protocol
    _validate_sasl(conn, protocol)
    _validate_tls(conn, protocol)


def _validate_sasl(conn: KafkaConnection, protocol: SecurityProtocol) -> None:
    given = [
        SETTING[name]
        for name in ("sasl_mechanism", "sasl_username", "sasl_password")
        if getattr(conn, name) is not None
    ]
    if not protocol.uses_sasl:
        if given:
            raise SettingsError(
                f"{' and '.join(given)} set, but {SETTING['security_protocol']} is "
                f"{protocol.value}; set it to SASL_PLAINTEXT or SASL_SSL, or unset them"
            )
        return
    if conn.sasl_password is not None and conn.sasl_username is None:
        raise SettingsError(
            f"{SETTING['sasl_password']} is set without {SETTING['sasl_username']}; "
            f"set both or neither"
        )
    if conn.sasl_username is not None and conn.sasl_password is None:
        raise SettingsError(
            f"{SETTING['sasl_username']} is set without {SETTING['sasl_password']}; "
            f"set both or neither"
        )
    if conn.sasl_username is None:
        raise SettingsError(
            f"{SETTING['security_protocol']} is {protocol.value}, which needs "
            f"{SETTING['sasl_username']} and {SETTING['sasl_password']}; set them"
        )
    if conn.sasl_mechanism is None:
        raise SettingsError(
            f"{SETTING['security_protocol']} is {protocol.value}, which needs "
            f"{SETTING['sasl_mechanism']}; use one of {choices(SaslMechanism)}"
        )
    # A value read from a file with its newline, or pasted with a blank, is refused here,
    # naming the setting (never the value): the broker would only say the login failed (h42).
    username = conn.sasl_username
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in username):
        raise SettingsError(
            f"{SETTING['sasl_username']} holds blanks or control characters (e.g. a newline "
            f"read with it from a file); Kafka user names have neither"
        )
    password = conn.sasl_password.get_secret_value() if conn.sasl_password is not None else ""
    if any(unicodedata.category(c) == "Cc" for c in password):
        raise SettingsError(
            f"{SETTING['sasl_password']} holds control characters (e.g. a newline read with it "
            f"from a file; its value is not shown); strip them"
        )


def _validate_tls(conn: KafkaConnection, protocol: SecurityProtocol) -> None:
    files = {
        name: getattr(conn, name)
        for name in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")
        if getattr(conn, name) is not None
    }
    if files and not protocol.uses_tls:
        raise SettingsError(
            f"{' and '.join(SETTING[name] for name in files)} set, but "
            f"{SETTING['security_protocol']} is {protocol.value}; TLS files need SSL or "
            f"SASL_SSL"
        )
    cert, key = conn.ssl_certificate_location, conn.ssl_key_location
    if cert is not None and key is None:
        raise SettingsError(
            f"{SETTING['ssl_certificate_location']} is set without "
            f"{SETTING['ssl_key_location']}; a client certificate needs its private key"
        )
    if key is not None and cert is None:
        raise SettingsError(
            f"{SETTING['ssl_key_location']} is set without "
            f"{SETTING['ssl_certificate_location']}; a private key needs its certificate"
        )
    for name, path in files.items():
        _check_pem_file(SETTING[name], path)


def _check_pem_file(setting: str, path: Path) -> None:
    if not path.exists():
        raise SettingsError(f"{setting}: {path} does not exist; point it at a PEM file")
    if not path.is_file():
        raise SettingsError(f"{setting}: {path} is not a file; point it at a PEM file")
    if not os.access(path, os.R_OK):
        raise SettingsError(f"{setting}: {path} is not readable by this user")
    try:
        head = path.read_bytes()[:65536]
    except OSError as exc:
        raise SettingsError(f"{setting}: {path} cannot be read ({exc.strerror})") from exc
    if b"-----BEGIN " not in head:
        raise SettingsError(f"{setting}: {path} is not a PEM file (no -----BEGIN line)")


# -- errors from librdkafka ---------------------------------------------------------------
def unseen_hint(conn: KafkaConnection, owner: str) -> str:
    """For a topic of domain ``owner`` missing from the cluster's answer: when ``conn`` is
    another domain's user, it may be one Kafka hides from it (no DESCRIBE right, e.g. a pii
    product it is not a reader of), which "does not exist" must not hide (h42, h43)."""
    user = conn.sasl_username
    if user is None or user == owner:
        return ""
    return (
        f" (or {conn.principal} may not see it: Kafka leaves out of its answer a topic one may "
        f"not DESCRIBE; a pii product: ask {owner} to add {user} to its `readers`)"
    )


#: Names the platform's own clients use (`mesh tail`, `mesh products status --watch`, the
#: registry, the monitor): no domain's, whatever follows.
_PLATFORM_PREFIXES = ("_", "mesh-tail-", "mesh-products-status-", "mesh-registry", "mesh-monitor")
_DOMAIN_HEAD = re.compile(r"[a-z][a-z0-9-]*")


def owner_domain(name: str) -> str | None:
    """The domain a topic or group name says it belongs to: ``<domain>.…``, or a processor's
    ``mesh-<domain>.…`` (its app id); None for the platform's own names and for names whose
    head is no domain name."""
    if name.startswith(_PLATFORM_PREFIXES) or "." not in name:
        return None
    head = name.split(".", 1)[0].removeprefix("mesh-")
    return head if _DOMAIN_HEAD.fullmatch(head) else None


def _create_hint(name: str, owner: str | None, me: str | None) -> str | None:
    """What to do when a CREATE of a topic the caller may create by name is refused: the
    grant its ACL plan makes, never one to add by hand (h59: "grant ALLOW CREATE on topic
    _mesh_product_health to User:orders", a topic that existed, unseen by that principal)."""
    if owner is not None and owner == me:
        return (
            f"topics named `{me}.<name>` are domain {me}'s, and `mesh acl apply` grants its "
            f"user CREATE on them: the platform team applies the ACL plan (a domain retired "
            f"with --retire has none)"
        )
    if name.startswith("_"):
        return (
            f"topic {name} is the platform's: if it exists, this principal may not DESCRIBE "
            f"it; if not, the platform's principal for it creates it (`mesh acl apply` lets "
            f"the registry's create its log, the monitor's its health and alerts topics): run "
            f"with that principal"
        )
    return None


def _others_resource(
    kind: str, name: str | None, owner: str, op: str, me: str | None
) -> str | None:
    """What to do when a domain is refused ``op`` on domain ``owner``'s topic or group: the
    ownership rule, never an ACL to grant oneself (h42: the hints said to grant User:orders
    READ on payments' group, CREATE on analytics' processor topic)."""
    yours = me or "your domain"
    if kind == "group":
        if me is not None and name is not None and name.startswith((f"{me}.", f"{me}-")):
            return None  # named as the caller's own: a grant is missing
        return (
            f"group {name} is not named as {yours}'s: the ACL plan grants a domain the groups "
            f"named `{yours}.<name>` or `{yours}-<name>`; rename it so, or run with the "
            f"credentials of the domain it belongs to"
        )
    if name is not None and name.startswith("mesh-"):
        return (
            f"topic {name} belongs to a processor of domain {owner} (its name says so): run "
            f"that processor with {owner}'s credentials ({SETTING['sasl_username']})"
        )
    if name is not None and name.endswith(".dlq"):
        if op == "READ":
            return f"{name} is a dead-letter topic: only its owner, domain {owner}, reads it"
        if op == "CREATE":
            return (
                f"dead-letter topic {name} does not exist yet, and only its owner, domain "
                f"{owner}, creates it (its readers write there): ask {owner} to run `mesh "
                f"products apply`, which creates it"
            )
        return (
            f"the readers of domain {owner}'s product write its dead letters there once `mesh "
            f"acl apply` has granted them reading it (a pii product: only the domains in its "
            f"`readers`)"
        )
    if op == "WRITE":
        return (
            f"topic {name} belongs to domain {owner} (its name says so) and only that "
            f"domain's Kafka user writes it: publish with {owner}'s credentials "
            f"({SETTING['sasl_username']}), or ask {owner} to publish it"
        )
    if op == "CREATE":
        return (
            f"topic {name} belongs to domain {owner} (its name says so) and only that domain "
            f"creates it: ask {owner} to run `mesh products apply`"
        )
    if op in ("READ", "DESCRIBE"):
        return (
            f"the ACL plan (`mesh acl plan`) lets every domain read domain {owner}'s products "
            f"except one classified pii, which only the domains in its descriptor's `readers` "
            f"read: ask {owner} to add {yours} to `readers`, then `mesh acl apply`"
        )
    return None


def explain_kafka_error(
    error: KafkaError | KafkaException,
    conn: KafkaConnection,
    *,
    topic: str | None = None,
    group: str | None = None,
    transactional_id: str | None = None,
    operation: str | None = None,
) -> MeshError:
    """Our error for a librdkafka error: what failed, for whom, and what to check.

    Authentication and TLS failures name the ``MESH_KAFKA_*`` settings; authorization
    failures name the resource, the principal and the ACL operation (``operation``, e.g.
    ``WRITE`` for a producer, ``READ`` for a consumer). Other errors become a
    :class:`~mesh_stream.errors.MeshError` (or ``BrokerUnreachableError``) with the text.
    The caller raises the result ``from`` the original.
    """
    from confluent_kafka import KafkaError, KafkaException

    kafka_error = error
    if isinstance(error, KafkaException):
        first = error.args[0] if error.args else None
        kafka_error = (
            first if isinstance(first, KafkaError) else KafkaError(KafkaError._FAIL, str(error))
        )
    assert isinstance(kafka_error, KafkaError)
    code = kafka_error.code()
    text = kafka_error.str()
    lowered = text.lower()
    where = conn.bootstrap_servers
    op = (operation or "access").upper()

    if code == KafkaError._SSL or "ssl handshake" in lowered or "certificate verify" in lowered:
        return _tls_error(conn, text)
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        if conn.security_protocol.uses_sasl:
            return KafkaAuthenticationError(
                f"authentication to {where} failed as {conn.sasl_username} with "
                f"{conn.sasl_mechanism}: check {SETTING['sasl_username']} / "
                f"{SETTING['sasl_password']} (and {SETTING['sasl_mechanism']}); "
                f"the broker said: {text}"
            )
        return KafkaAuthenticationError(
            f"authentication to {where} failed over {conn.security_protocol.value}: check "
            f"{SETTING['security_protocol']} and the SASL/TLS settings; the broker said: {text}"
        )
    if code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN) and (
        "security.protocol" in lowered or "authentication" in lowered
    ):
        return KafkaAuthenticationError(
            f"{where} closed the connection during the handshake over "
            f"{conn.security_protocol.value}: the listener probably needs SASL credentials or "
            f"TLS; check {SETTING['security_protocol']}, {SETTING['sasl_mechanism']}, "
            f"{SETTING['sasl_username']} / {SETTING['sasl_password']} ({text})"
        )
    authorization = {
        KafkaError.TOPIC_AUTHORIZATION_FAILED: ("topic", topic),
        KafkaError.GROUP_AUTHORIZATION_FAILED: ("group", group),
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: ("transactional id", transactional_id),
        KafkaError.CLUSTER_AUTHORIZATION_FAILED: ("cluster", "kafka-cluster"),
    }
    if code in authorization:
        kind, name = authorization[code]
        resource = f"{kind} {name}" if name else f"the {kind}"
        said = (
            f"{conn.principal} may not {op} {resource} at {where}: no ACL allows it "
            f"({KafkaError(code).name()})"
        )
        me = conn.sasl_username
        owner = owner_domain(name) if kind in ("topic", "group") and name else None
        if kind == "group" and me is not None and name and not name.startswith(_PLATFORM_PREFIXES):
            owner = owner or "another"  # any group not named as the caller's own
        hint = None if owner is None or owner == me else _others_resource(kind, name, owner, op, me)
        if hint is None and kind == "topic" and name and op == "CREATE":
            hint = _create_hint(name, owner, me)
        if hint is not None:
            return KafkaAuthorizationError(f"{said}; {hint}")
        return KafkaAuthorizationError(
            f"{said}; grant ALLOW {op} on {resource} to {conn.principal}, or use the "
            f"credentials of the owning domain ({SETTING['sasl_username']})"
        )
    if code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE):
        return BrokerUnreachableError(
            f"no Kafka broker answers at {where} ({text}); check "
            f"{SETTING['bootstrap_servers']} (or --bootstrap-servers) and "
            f"{SETTING['security_protocol']}"
        )
    return MeshError(f"Kafka error at {where} ({conn.describe()}): {text}")


def _tls_error(conn: KafkaConnection, text: str) -> KafkaAuthenticationError:
    where = conn.bootstrap_servers
    lowered = text.lower()
    if not conn.security_protocol.uses_tls:
        return KafkaAuthenticationError(
            f"{where} speaks TLS but {SETTING['security_protocol']} is "
            f"{conn.security_protocol.value}; use SSL or SASL_SSL ({text})"
        )
    if "certificate verify failed" in lowered or "could not be verified" in lowered:
        ca = conn.ssl_ca_location or "unset, so the system's CAs are used"
        return KafkaAuthenticationError(
            f"the TLS certificate of {where} could not be verified: set "
            f"{SETTING['ssl_ca_location']} to the PEM file of the CA that signed it "
            f"(now {ca}); {text}"
        )
    return KafkaAuthenticationError(
        f"the TLS handshake with {where} failed: check {SETTING['ssl_ca_location']}, "
        f"{SETTING['ssl_certificate_location']} and {SETTING['ssl_key_location']} "
        f"({text})"
    )
