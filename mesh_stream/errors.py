"""The one exception tree of mesh-stream.

Every error the platform raises on purpose derives from :class:`MeshError`, so a caller
can catch the whole family in one place. Lower-layer errors (confluent-kafka, httpx,
subprocess) are translated into these at the boundary where they occur, with the
original kept as ``__cause__``::

    MeshError
    ├── ConfigurationError          a setting or a file is wrong; the message names it
    │   ├── SettingsError           bad MESH_* settings, alone or together (CLI exit 2)
    │   ├── TopicMismatchError      an existing topic differs from its spec (strict mode)
    │   └── ProjectNotFoundError    no mesh.yaml where the project was looked for
    ├── BrokerError                 the local Kafka launcher
    │   ├── ToolMissingError        java or mvn not on PATH
    │   ├── KafkaFetchError         Maven could not fetch Kafka's jars
    │   ├── BrokerAlreadyRunningError
    │   ├── PortInUseError
    │   ├── BrokerStartTimeoutError the broker did not answer in time (log tail attached)
    │   └── BrokerUnreachableError  nothing answers at the configured bootstrap servers
    ├── RegistryError               carries HTTP status and Confluent ``error_code``
    │   ├── RegistryUnavailableError
    │   ├── SubjectNotFoundError     40401
    │   ├── VersionNotFoundError     40402
    │   ├── SchemaNotFoundError      40403
    │   ├── IncompatibleSchemaError  409
    │   ├── InvalidSchemaError       42201
    │   │   └── SchemaRejectedError  42218 (governance refused a schema version)
    │   ├── ProductNotFoundError     40404 (mesh extension)
    │   ├── AuthError                401 / 403
    │   │   ├── AuthenticationError  401 (no or unknown credential)
    │   │   └── PermissionDeniedError 403 (not the owner)
    │   ├── InvalidVersionError 42202, InvalidCompatibilityLevelError 42203
    │   ├── SubjectSoftDeletedError 40404, SubjectNotSoftDeletedError 40405,
    │   │   VersionSoftDeletedError 40406, VersionNotSoftDeletedError 40407,
    │   │   SubjectConfigNotFoundError 40408, SubjectModeNotFoundError 40409
    │   ├── InvalidModeError 42204, OperationNotPermittedError 42205 (read-only mode,
    │   │   an import that would overwrite an id or version), ReferenceExistsError 42206
    │   ├── InvalidRequestError      400 / 422 (InvalidSubjectNameError, RequestTooLargeError,
    │   │                            UnencodableInputError 42216, InvalidPrincipalError 42217,
    │   │                            InvalidConsumerError 42219)
    │   ├── TooManyRequestsError     429 42902 (TooManyAuthFailuresError 42901), retry_after
    │   ├── InvalidProductError      422 4221x (ProductSubjectMissingError,
    │   │                            UnknownInputProductError, ProductRejectedError)
    │   ├── ProductInUseError        409 40910
    │   ├── ConsumerNotFoundError    404 40410 (no such registered consumer group)
    │   ├── CredentialNotFoundError  404 40409, CredentialExistsError 409 40911,
    │   │                            CredentialsDisabledError 409 40912 (issued tokens)
    │   └── RegistryFencedError      503 (a newer instance owns the writer role)
    │       └── RegistryWriterConflictError 503 50303 (another writer id on the topic)
    ├── SchemaError                 an Avro contract cannot be parsed or used
    ├── DescriptorError             a product descriptor file is invalid (file and field named)
    ├── PlanRefusedError            `mesh products apply` refused its plan; nothing was written
    ├── SerializationError          a record does not fit its schema (field path named)
    │   ├── DeserializationError    bytes on the wire cannot be decoded
    │   └── RuleViolationError      a record fails a data-quality rule (CEL) of its product
    ├── ProcessorError              a processor's key, apply or emit broke its contract
    ├── DeliveryError               Kafka did not acknowledge records (they are named)
    ├── ConsumerError               a fatal Kafka consumer error
    └── KafkaSecurityError          the cluster refused this connection's credentials
        ├── KafkaAuthenticationError  wrong or missing SASL credentials, untrusted TLS
        └── KafkaAuthorizationError   authenticated, but an ACL is missing

A few errors live beside the one module that raises them, in this tree all the same:
``StateTooLargeError``, ``OutputRefusedError`` and ``SendRefusedError`` (processors, under
``ProcessorError``), ``DeferredWritesFailedError`` (a processor's state writes) and
``WorkerFailedError`` (`mesh verify`'s workers) under ``MeshError``,
``SchemaNotRegisteredError`` (the registry's sample reader, under ``SchemaNotFoundError``),
``SignInRequiredError`` (the portal, under ``AuthenticationError``) and ``NotPublishedError``
(the product monitor's round Kafka did not take, the round on it, under ``DeliveryError``).

Governance refusals by the registry are ``ProductRejectedError`` for a descriptor (422,
``error_code`` 42211) and ``SchemaRejectedError`` for a schema version (422, 42218), the
violations on ``.violations``; ``mesh lint`` reports violations rather than raising.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka.serialization import SerializationError as _KafkaSerializationError


class MeshError(Exception):
    """Root of every error mesh-stream raises on purpose."""


class ConfigurationError(MeshError):
    """A setting, flag or file is wrong; the message names which and how to fix it."""


class SettingsError(ConfigurationError):
    """Settings that cannot work, alone or together: ``MeshSettings`` did not validate (one
    line per bad ``MESH_*`` value, a secret's hidden; pydantic's ``ValidationError`` is the
    ``__cause__``), or the Kafka ones do not fit one another (a password without a
    username, a CA file that is no PEM file). The CLI exits 2 for it, as for a usage error."""


class TopicMismatchError(ConfigurationError):
    """An existing topic's partitions, replication factor or configs differ from its spec."""


class ProjectNotFoundError(ConfigurationError):
    """No ``mesh.yaml`` at the project root given, nor in any folder above the working one."""


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


class BrokerUnreachableError(BrokerError):
    """No Kafka broker answers at the bootstrap servers a command was given."""


#: The ``error_code`` the registry client gives an answer it cannot use (the wrong shape, an
#: unknown level): made by the client (its ``status`` 502), never sent by a registry.
UNUSABLE_ANSWER = 50201


class RegistryError(MeshError):
    """An error from the registry, with the HTTP status and Confluent ``error_code``."""

    #: Set by the registry client when what answered at the registry URL is not a registry
    #: (a web page or another body that is not JSON, or 404 on a route every mesh registry
    #: has): the HTTP status and content type it answered with. None otherwise.
    answered_status: int | None = None
    answered_type: str | None = None

    def __init__(self, message: str, *, status: int = 500, error_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code if error_code is not None else status

    def __str__(self) -> str:
        if self.answered_status is not None or self.error_code == UNUSABLE_ANSWER:
            # the message names the status that answered, or the answer the client could not
            # use; a second, synthetic one (502) beside it only confused (campaigns, h49)
            return self.message
        return f"{self.message} (HTTP {self.status}, error_code {self.error_code})"

    @property
    def retryable(self) -> bool:
        """Whether asking again later may succeed: unreachable, overloaded or failing (5xx,
        429), as opposed to an answer that will not change (e.g. no such schema)."""
        unreachable = isinstance(self, RegistryUnavailableError)
        return unreachable or self.status >= 500 or self.status == 429


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached and nothing usable was cached."""

    #: Why, as the registry client saw it: ``unreachable`` (no connection), ``unanswered``
    #: (a connection, no answer in time) or ``refused`` (an answer that it cannot serve now).
    why: str = "refused"
    #: Set by the registry client: the call that got no answer (``GET /products/...``) and,
    #: when ``unanswered``, how many seconds each attempt waited and how many were made.
    request: str | None = None
    waited: float | None = None
    attempts: int = 1
    #: Set by the consumer: the record that waited for its writer schema
    #: (``topic[partition]@offset``) and that schema's id.
    record: str | None = None
    schema_id: int | None = None

    def __str__(self) -> str:
        if self.why != "refused":  # no HTTP answer came: no status to show
            return self.message
        return super().__str__()


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


class AuthenticationError(AuthError):
    """No credential, or an unknown one, on a request that needs one (HTTP 401)."""


class PermissionDeniedError(AuthError):
    """The credential is valid but does not own the subject or product (HTTP 403)."""


class InvalidVersionError(RegistryError):
    """A version is not a positive integer, ``latest`` or -1 (Confluent 42202)."""


class InvalidCompatibilityLevelError(RegistryError):
    """Not one of the seven compatibility levels (Confluent 42203)."""


class SubjectSoftDeletedError(RegistryError):
    """The subject is already soft-deleted (Confluent 40404 on subject routes)."""


class SubjectNotSoftDeletedError(RegistryError):
    """A permanent delete needs a soft delete first (Confluent 40405)."""


class VersionSoftDeletedError(RegistryError):
    """The version is already soft-deleted (Confluent 40406)."""


class VersionNotSoftDeletedError(RegistryError):
    """A permanent version delete needs a soft delete first (Confluent 40407)."""


class SubjectConfigNotFoundError(RegistryError):
    """The subject has no compatibility level of its own (Confluent 40408)."""


class SubjectModeNotFoundError(RegistryError):
    """The subject has no mode of its own (Confluent 40409 on ``/mode`` routes)."""


class InvalidModeError(RegistryError):
    """Not one of READWRITE, READONLY, READONLY_OVERRIDE, IMPORT (Confluent 42204)."""


class OperationNotPermittedError(RegistryError):
    """The mode forbids the write, or an import would overwrite an id (Confluent 42205)."""


class ReferenceExistsError(RegistryError):
    """A version other schemas reference cannot be permanently deleted (Confluent 42206)."""


class InvalidRequestError(RegistryError):
    """The request body or a name in the path is malformed (HTTP 400 / 422)."""


class InvalidSubjectNameError(InvalidRequestError):
    """A subject name is empty, too long, has control characters or path separators."""


class RequestTooLargeError(InvalidRequestError):
    """The request body is larger than the registry accepts (HTTP 413)."""


class UnencodableInputError(InvalidRequestError):
    """A body string the registry cannot store as UTF-8, e.g. a lone surrogate (422, 42216)."""


class InvalidPrincipalError(InvalidRequestError):
    """A principal name that cannot be given a token: not a domain name, or ``admin`` (42217)."""


class InvalidConsumerError(InvalidRequestError):
    """A consumer registration the registry cannot take: a bad group name, or ``reads``
    naming a field the product's latest schema does not have (422, 42219)."""


class CredentialNotFoundError(RegistryError):
    """The principal has no active credential to rotate or revoke (404, 40409)."""


class CredentialExistsError(RegistryError):
    """The principal already has a credential; rotate it instead of adding (409, 40911)."""


class CredentialsDisabledError(RegistryError):
    """The registry runs without authentication, so it issues no tokens (409, 40912)."""


class TooManyRequestsError(RegistryError):
    """One client has too many CPU-heavy requests in flight (429, 42902; see ``retry_after``)."""

    default_code = 42902

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = 1,
        status: int = 429,
        error_code: int | None = None,
    ):
        super().__init__(
            message, status=status, error_code=error_code if error_code else self.default_code
        )
        self.retry_after = retry_after


class TooManyAuthFailuresError(TooManyRequestsError):
    """Too many failed authentications from one client address (429, 42901)."""

    default_code = 42901


class InvalidProductError(RegistryError):
    """A product descriptor sent to the registry is invalid or inconsistent (422, 4221x)."""


class ProductSubjectMissingError(InvalidProductError):
    """The product's value subject has no registered schema yet (42212)."""


class UnknownInputProductError(InvalidProductError):
    """One of the product's inputs is not a registered product (42213)."""


class ProductRejectedError(InvalidProductError):
    """Governance validators refused the descriptor (42211); details on ``violations``."""

    def __init__(
        self,
        message: str,
        *,
        violations: list[dict[str, object]] | None = None,
        status: int = 422,
        error_code: int | None = 42211,
    ):
        super().__init__(message, status=status, error_code=error_code)
        self.violations = violations or []


class SchemaRejectedError(InvalidSchemaError):
    """Governance refused a schema version before anything was stored (422, 42218); the
    findings are on ``violations``, as for a refused descriptor (42211)."""

    def __init__(
        self,
        message: str,
        *,
        violations: list[dict[str, object]] | None = None,
        status: int = 422,
        error_code: int | None = 42218,
    ):
        super().__init__(message, status=status, error_code=error_code)
        self.violations = violations or []


class ProductInUseError(RegistryError):
    """A product, or a schema version its topic's records use, cannot be deleted while other
    products or registered consumer groups read it (409, 40910)."""


class ConsumerNotFoundError(RegistryError):
    """No consumer group of that name is registered on the product (404, 40410)."""


class RegistryFencedError(RegistryError):
    """A newer registry instance took over the writer role; this one only serves reads."""


class RegistryWriterConflictError(RegistryFencedError):
    """Another writer id writes the same registry topic; writes stop (503, 50303)."""


class SchemaError(MeshError):
    """An Avro contract cannot be parsed or used.

    ``loc`` is the JSON path of the problem in the schema document when known (e.g.
    ``("fields", 2, "default")``), so `mesh lint` can point at its line.
    """

    def __init__(self, message: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc


class DescriptorError(MeshError):
    """A data product descriptor is invalid; the message names the file and field."""


class PlanRefusedError(MeshError):
    """`mesh products apply` found refusals in its plan and wrote nothing; each refusal
    (policy, file:line, fix) is on ``refusals``."""

    def __init__(self, message: str, *, refusals: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.refusals = list(refusals)


class SerializationError(MeshError, _KafkaSerializationError):
    """A record does not fit its schema; the message names the field path.

    Also a ``confluent_kafka.serialization.SerializationError``, so code written for
    confluent-kafka's serializers catches ours too.
    """


class DeserializationError(SerializationError):
    """Bytes read from Kafka cannot be decoded into a record."""


class RuleViolationError(SerializationError):
    """A record fails one of its product's data-quality rules (CEL) and the rule says
    ``on_failure: ERROR``: it is refused before it reaches Kafka; ``rule`` and ``expr``
    name the rule, ``record_index`` its place in a batch (None for a single publish)."""

    def __init__(
        self, message: str, *, rule: str, expr: str, record_index: int | None = None
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.expr = expr
        self.record_index = record_index


class ProcessorError(MeshError):
    """A processor's own function failed or broke its contract on a record: ``key`` returned
    neither a str nor None, ``apply`` returned a value (it must change the state in place),
    ``emit`` returned a record that does not fit the output, or one of them raised (the
    original is ``__cause__``). The message names the function and the record."""


class DeliveryError(MeshError):
    """Kafka did not acknowledge some records; they are listed on ``failed``."""

    def __init__(self, message: str, *, failed: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.failed = list(failed)


class ConsumerError(MeshError):
    """The Kafka consumer hit a fatal error (the message names topic and partition)."""


class KafkaSecurityError(MeshError):
    """The Kafka cluster refused this connection; the message names the MESH_KAFKA_* setting."""


class KafkaAuthenticationError(KafkaSecurityError):
    """SASL authentication or the TLS handshake failed (wrong/missing credentials, unknown CA)."""


class KafkaAuthorizationError(KafkaSecurityError):
    """The principal authenticated but lacks an ACL (topic, group, transactional id, cluster)."""


def validation_problem(item: Mapping[str, Any]) -> str:
    """One problem of a pydantic ``ValidationError.errors()``, in the words of the validator
    that found it: our validators' messages without pydantic's ``Value error, `` (or
    ``Assertion failed, ``) prefix."""
    if item.get("type") in ("value_error", "assertion_error") and "error" in (
        item.get("ctx") or {}
    ):
        return str(item["ctx"]["error"])
    return str(item.get("msg", item))
