"""The one table between registry errors and HTTP: status and Confluent ``error_code``.

The service turns a raised error into ``{"error_code": ..., "message": ...}`` with
:func:`status_and_code`; the client turns such a body back into the matching class with
:func:`error_for`. Confluent's codes are kept where Confluent defines them; mesh-specific
ones live in 4221x (products; 42218 a schema version governance refused), 40910 (product
still in use), 40409, 40911, 40912 and 42217 (issued credentials, see
``/admin/credentials``), and 40410 and 42219 (registered consumers, see
``/products/{name}/consumers``).
"""

from __future__ import annotations

from mesh_stream.errors import (
    AuthenticationError,
    AuthError,
    ConsumerNotFoundError,
    CredentialExistsError,
    CredentialNotFoundError,
    CredentialsDisabledError,
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidConsumerError,
    InvalidModeError,
    InvalidPrincipalError,
    InvalidProductError,
    InvalidRequestError,
    InvalidSchemaError,
    InvalidSubjectNameError,
    InvalidVersionError,
    OperationNotPermittedError,
    PermissionDeniedError,
    ProductInUseError,
    ProductNotFoundError,
    ProductRejectedError,
    ProductSubjectMissingError,
    ReferenceExistsError,
    RegistryError,
    RegistryFencedError,
    RegistryUnavailableError,
    RegistryWriterConflictError,
    RequestTooLargeError,
    SchemaError,
    SchemaNotFoundError,
    SchemaRejectedError,
    SubjectConfigNotFoundError,
    SubjectModeNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    TooManyAuthFailuresError,
    TooManyRequestsError,
    UnencodableInputError,
    UnknownInputProductError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)

#: error class -> (HTTP status, error_code). Order matters only for :func:`error_for`, where
#: the first class listed for a code wins (40404 is a product on the client's routes, 40409
#: a credential: Confluent's subject-mode 40409 clashes with it, and the client has no
#: mode calls).
ERROR_TABLE: dict[type[Exception], tuple[int, int]] = {
    SubjectNotFoundError: (404, 40401),
    VersionNotFoundError: (404, 40402),
    SchemaNotFoundError: (404, 40403),
    ProductNotFoundError: (404, 40404),
    SubjectSoftDeletedError: (404, 40404),
    SubjectNotSoftDeletedError: (404, 40405),
    VersionSoftDeletedError: (404, 40406),
    VersionNotSoftDeletedError: (404, 40407),
    SubjectConfigNotFoundError: (404, 40408),
    IncompatibleSchemaError: (409, 409),
    ProductInUseError: (409, 40910),
    ConsumerNotFoundError: (404, 40410),
    CredentialNotFoundError: (404, 40409),
    SubjectModeNotFoundError: (404, 40409),
    CredentialExistsError: (409, 40911),
    CredentialsDisabledError: (409, 40912),
    SchemaRejectedError: (422, 42218),
    InvalidSchemaError: (422, 42201),
    SchemaError: (422, 42201),
    InvalidVersionError: (422, 42202),
    InvalidCompatibilityLevelError: (422, 42203),
    InvalidModeError: (422, 42204),
    OperationNotPermittedError: (422, 42205),
    ReferenceExistsError: (422, 42206),
    InvalidProductError: (422, 42210),
    ProductRejectedError: (422, 42211),
    ProductSubjectMissingError: (422, 42212),
    UnknownInputProductError: (422, 42213),
    InvalidSubjectNameError: (422, 42215),
    RequestTooLargeError: (413, 41301),
    UnencodableInputError: (422, 42216),
    InvalidPrincipalError: (422, 42217),
    InvalidConsumerError: (422, 42219),
    TooManyAuthFailuresError: (429, 42901),
    TooManyRequestsError: (429, 42902),
    InvalidRequestError: (400, 40001),
    AuthenticationError: (401, 40101),
    PermissionDeniedError: (403, 40301),
    AuthError: (401, 40101),
    RegistryWriterConflictError: (503, 50303),
    RegistryFencedError: (503, 50301),
    RegistryUnavailableError: (503, 50302),
}

_BY_CODE: dict[int, type[Exception]] = {}
for _cls, (_status, _code) in ERROR_TABLE.items():
    _BY_CODE.setdefault(_code, _cls)


def status_and_code(exc: Exception) -> tuple[int, int]:
    """HTTP status and error_code for ``exc`` (most specific class in the table wins).

    A :class:`RegistryError` raised with an explicit status keeps its own status and code
    (used for the rarer codes of a class, e.g. 42214 or a 422 body-shape error).
    """
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            status, code = ERROR_TABLE[cls]
            if isinstance(exc, RegistryError) and exc.status != 500:
                return exc.status, exc.error_code
            return status, code
    return 500, 50001


def error_for(status: int, error_code: int | None, message: str) -> RegistryError:
    """Rebuild the error the service raised from an HTTP error response."""
    cls = _BY_CODE.get(error_code) if error_code is not None else None
    if cls is None or not issubclass(cls, RegistryError):
        if status == 401:
            cls = AuthenticationError
        elif status == 403:
            cls = PermissionDeniedError
        elif status == 409:
            cls = IncompatibleSchemaError
        else:
            cls = RegistryError
    return cls(message, status=status, error_code=error_code if error_code is not None else status)
