"""The vocabulary of governance: severities, what a check finds, and the violations reported.

A check yields :class:`Finding` objects (a message and the spot it concerns); the engine
turns each into a :class:`Violation` by adding the policy's name, effective severity, its
*why* and *how to fix*, and — when the product came from files — the file and line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How much a violation matters: errors fail `mesh lint` and the registry, warnings do not.

    ``off`` exists so a domain can switch off an overridable policy for itself.
    """

    ERROR = "error"
    WARNING = "warning"
    OFF = "off"


Loc = tuple[str | int, ...]
"""A path into a YAML/JSON document (mapping keys and list indices), used to find a line."""


@dataclass(frozen=True)
class Finding:
    """One problem a check found in a product.

    ``field`` is the human-readable spot (a descriptor field path such as ``owner.contact``
    or a schema field path such as ``OrderPlaced.customer.email``); ``loc`` is the same spot
    as a document path, in the descriptor or, when ``in_schema``, in the Avro schema.
    """

    message: str
    field: str | None = None
    loc: Loc = ()
    in_schema: bool = False
    at_most: Severity | None = None
    """A cap on the rule's severity: a problem the check could not confirm (e.g. an input
    the unreachable registry could not be asked about) is a warning, never an error."""


@dataclass(frozen=True)
class Violation:
    """A policy broken by a product (or by a governance file), ready to show to a person."""

    policy: str
    severity: Severity
    message: str
    why: str
    fix: str
    product: str | None = None
    field: str | None = None
    file: str | None = None
    line: int | None = None

    @property
    def location(self) -> str:
        """``file:line`` (or just the file, or the product name when no file is known)."""
        if self.file is None:
            return self.product or "(registry)"
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form used by ``mesh lint --json``."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return data
