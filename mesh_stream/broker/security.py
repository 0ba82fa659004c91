"""Security for the local cluster: SCRAM users, their passwords, and a throw-away CA.

``mesh broker start --security sasl`` gives each node a SASL_PLAINTEXT client listener
(SCRAM-SHA-512) and ``--security sasl_ssl`` a SASL_SSL one. Passwords are generated once
into ``<broker data>/credentials.json`` (mode 0600) and never printed; a client reads its
password from there. For ``sasl_ssl`` the launcher makes a CA and one broker certificate
(for 127.0.0.1 and localhost, shared by the nodes, which all listen on loopback) under
``<broker data>/tls``; clients trust ``tls/ca.pem``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from mesh_stream.errors import ConfigurationError
from mesh_stream.files import damage_said
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.project import load_project, nearest_project_root
from mesh_stream.settings import SaslMechanism, SecurityProtocol

PLAINTEXT = "plaintext"
SASL = "sasl"
SASL_SSL = "sasl_ssl"
SECURITY_MODES = (PLAINTEXT, SASL, SASL_SSL)
CREDENTIALS_FILE = "credentials.json"
TLS_DIR = "tls"
ADMIN = "admin"
MECHANISM = SaslMechanism.SCRAM_SHA_512
_USER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}\Z")


def protocol_of(security: str) -> SecurityProtocol:
    """The client listener's ``security.protocol`` for a launcher security mode."""
    return {
        PLAINTEXT: SecurityProtocol.PLAINTEXT,
        SASL: SecurityProtocol.SASL_PLAINTEXT,
        SASL_SSL: SecurityProtocol.SASL_SSL,
    }[security]


def check_mode(security: str) -> str:
    if security not in SECURITY_MODES:
        raise ConfigurationError(
            f"--security {security!r} is not a security mode; use one of "
            f"{', '.join(SECURITY_MODES)}"
        )
    return security


def find_domains(start: Path, *, project_root: Path | None = None) -> list[str]:
    """The domains of the project (``mesh.yaml``'s ``domains``, or the folders under its
    ``products`` folder when it lists none): the project at ``project_root``
    (``MESH_PROJECT_ROOT``), else the nearest folder from ``start`` upwards holding
    ``mesh.yaml``; outside any project, none."""
    if project_root is not None:
        project = load_project(project_root)
    else:
        root = nearest_project_root(start)
        if root is None:
            return []
        project = load_project(root)
    return [domain for domain in project.domains if domain != ADMIN]


def check_user_names(names: Iterable[str]) -> list[str]:
    """Validated, de-duplicated SCRAM user names, ``admin`` first."""
    result = [ADMIN]
    for raw in names:
        name = raw.strip()
        if not name or name in result:
            continue
        if not _USER_NAME.match(name):
            raise ConfigurationError(
                f"--domains: {name!r} is not a domain name (lowercase letters, digits, '-' "
                f"or '_', starting with a letter)"
            )
        result.append(name)
    return result


@dataclass(frozen=True)
class BrokerCredentials:
    """The local cluster's security mode, its SCRAM users and the CA clients trust."""

    security: str
    path: Path
    users: Mapping[str, SecretStr]
    ca_file: Path | None = None

    def password(self, user: str) -> SecretStr:
        try:
            return self.users[user]
        except KeyError:
            raise ConfigurationError(
                f"{self.path} has no user {user!r} (users: {', '.join(self.users)}); "
                f"start the broker with --domains {user} to add it"
            ) from None

    def connection(
        self, bootstrap_servers: str, user: str = ADMIN, *, client_id: str | None = None
    ) -> KafkaConnection:
        """A client connection to the local cluster as ``user``."""
        protocol = protocol_of(self.security)
        if protocol is SecurityProtocol.PLAINTEXT:
            return KafkaConnection.create(bootstrap_servers, client_id=client_id)
        return KafkaConnection.create(
            bootstrap_servers,
            security_protocol=protocol,
            sasl_mechanism=MECHANISM,
            sasl_username=user,
            sasl_password=self.password(user),
            ssl_ca_location=self.ca_file,
            client_id=client_id,
        )


def load_credentials(data_dir: Path) -> BrokerCredentials | None:
    """The credentials file of the cluster in ``data_dir``, if it has one."""
    path = data_dir / CREDENTIALS_FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        users = {str(name): SecretStr(str(value)) for name, value in raw["users"].items()}
        ca = raw.get("ca_file")
        return BrokerCredentials(
            security=check_mode(str(raw["security"])),
            path=path,
            users=users,
            ca_file=Path(ca) if ca else None,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(
            f"{path} is damaged ({damage_said(exc)}); start with --fresh to make new "
            f"credentials (this erases the cluster's data)"
        ) from None


def ensure_credentials(
    data_dir: Path, security: str, users: Iterable[str]
) -> tuple[BrokerCredentials, list[str]]:
    """The credentials file for ``users``: existing passwords kept, missing users added
    with new random ones. Returns the credentials and the names that were added."""
    existing = load_credentials(data_dir)
    known: dict[str, SecretStr] = dict(existing.users) if existing else {}
    added = [name for name in check_user_names(users) if name not in known]
    for name in added:
        known[name] = SecretStr(secrets.token_urlsafe(24))
    ca_file = data_dir / TLS_DIR / "ca.pem" if security == SASL_SSL else None
    credentials = BrokerCredentials(security, data_dir / CREDENTIALS_FILE, known, ca_file)
    if added or existing is None or existing.security != security:
        write_private(
            credentials.path,
            json.dumps(
                {
                    "security": security,
                    "mechanism": MECHANISM.value,
                    "ca_file": str(ca_file) if ca_file else None,
                    "users": {name: value.get_secret_value() for name, value in known.items()},
                },
                indent=2,
            ),
        )
    return credentials, added


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


# -- TLS ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the local cluster's CA and broker certificate."""

    ca_file: Path
    keystore_file: Path  # broker private key + certificate chain, as Kafka's PEM keystore


def ensure_tls(directory: Path, hosts: Iterable[str] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """A CA and a broker certificate for ``hosts`` under ``directory``, made once."""
    files = TlsFiles(directory / "ca.pem", directory / "broker.pem")
    if files.ca_file.is_file() and files.keystore_file.is_file():
        return files
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mesh-stream local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mesh-stream broker")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_key_pem = ca_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    directory.mkdir(parents=True, exist_ok=True)
    write_private(directory / "ca.key", ca_key_pem.decode())
    write_private(
        files.keystore_file,
        (key_pem + cert.public_bytes(pem) + ca_cert.public_bytes(pem)).decode(),
    )
    files.ca_file.write_bytes(ca_cert.public_bytes(pem))
    return files
