"""The one exception tree of mesh-stream.

Every error the platform raises on purpose derives from :class:`MeshError`, so a caller
can catch the whole family in one place. Lower-layer errors (confluent-kafka, httpx,
subprocess) are translated into these at the boundary where they occur, with the
original kept as ``__cause__``::

    MeshError
    ├── ConfigurationError          a setting or a file is wrong; the message names it
    ├── BrokerError                 the local Kafka launcher
    │   ├── ToolMissingError        java or mvn not on PATH
    │   ├── KafkaFetchError         Maven could not fetch Kafka's jars
    │   ├── BrokerAlreadyRunningError
    │   ├── PortInUseError
    │   └── BrokerStartTimeoutError the broker did not answer in time (log tail attached)
    ├── RegistryError               carries HTTP status and Confluent ``error_code``
    │   ├── RegistryUnavailableError
    │   ├── SubjectNotFoundError     40401
    │   ├── VersionNotFoundError     40402
    │   ├── SchemaNotFoundError      40403
    │   ├── IncompatibleSchemaError  409
    │   ├── InvalidSchemaError       42201
    │   ├── ProductNotFoundError     40404 (mesh extension)
    │   └── AuthError                401 / 403
    ├── SchemaError                 an Avro contract cannot be parsed or used
    ├── DescriptorError             a product descriptor file is invalid (file and field named)
    ├── SerializationError          a record does not fit its schema (field path named)
    │   └── DeserializationError    bytes on the wire cannot be decoded
    ├── DeliveryError               Kafka did not acknowledge records (they are named)
    └── PolicyViolationError        governance policies refused a product
"""

from __future__ import annotations


class MeshError(Exception):
    """Root of every error mesh-stream raises on purpose."""


class ConfigurationError(MeshError):
    """A setting, flag or file is wrong; the message names which and how to fix it."""


class BrokerError(MeshError):
    """The local Kafka launcher could not do what was asked."""


class ToolMissingError(BrokerError):
    """A program the launcher needs (java, mvn) is not installed or not on PATH."""


class KafkaFetchError(BrokerError):
    """Maven could not fetch Apache Kafka's jars."""


class BrokerAlreadyRunningError(BrokerError):
    """A broker started by mesh-stream already runs from this data directory."""


class PortInUseError(BrokerError):
    """A port the broker should listen on is taken by another process."""


class BrokerStartTimeoutError(BrokerError):
    """The broker did not answer a metadata request in time."""


class RegistryError(MeshError):
    """An error from the registry, with the HTTP status and Confluent ``error_code``."""

    def __init__(self, message: str, *, status: int = 500, error_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code if error_code is not None else status

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status}, error_code {self.error_code})"


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached and nothing usable was cached."""


class SubjectNotFoundError(RegistryError):
    """No subject by that name (Confluent 40401)."""


class VersionNotFoundError(RegistryError):
    """The subject has no such version (Confluent 40402)."""


class SchemaNotFoundError(RegistryError):
    """No schema with that id or content (Confluent 40403)."""


class IncompatibleSchemaError(RegistryError):
    """The schema breaks the subject's compatibility level (HTTP 409)."""


class InvalidSchemaError(RegistryError):
    """The schema is not valid Avro (Confluent 42201)."""


class ProductNotFoundError(RegistryError):
    """No data product by that name."""


class AuthError(RegistryError):
    """The credential is missing or wrong (401) or does not own the resource (403)."""


class SchemaError(MeshError):
    """An Avro contract cannot be parsed or used."""


class DescriptorError(MeshError):
    """A data product descriptor is invalid; the message names the file and field."""


class SerializationError(MeshError):
    """A record does not fit its schema; the message names the field path."""


class DeserializationError(SerializationError):
    """Bytes read from Kafka cannot be decoded into a record."""


class DeliveryError(MeshError):
    """Kafka did not acknowledge some records; they are listed on ``failed``."""


class PolicyViolationError(MeshError):
    """Governance policies refused a product; the violations are on ``violations``."""
