"""The values a plan is made of: statuses, refusals, changes, product and project plans.

Plain data with ``to_dict`` for ``--json``; :mod:`.judge` fills the changes and refusals,
:mod:`.plan` gathers them, :mod:`.apply` carries a plan out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mesh_stream.kafka.acls import Acl


class Status(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    UNKNOWN = "unknown"  # could not be compared (e.g. the local schema does not parse)


class TopicStatus(StrEnum):
    MISSING = "missing"
    AS_SPECIFIED = "as specified"
    DRIFTED = "drifted"
    UNCHECKED = "unchecked"


class AclStatus(StrEnum):
    NO_AUTHORIZER = "no authorizer"
    IN_PLACE = "in place"
    MISSING = "missing"
    UNREADABLE = "unreadable"
    UNCHECKED = "unchecked"


# -- the values a plan is made of ---------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Something the registry, the cluster or governance would refuse: nothing is applied."""

    policy: str
    message: str
    fix: str
    file: str | None = None
    line: int | None = None
    product: str | None = None

    @property
    def location(self) -> str:
        if self.file is None:
            return self.product or "(project)"
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        return f"{self.location}: [{self.policy}] {self.message}; fix: {self.fix}"


@dataclass(frozen=True)
class FieldChange:
    """One descriptor field whose registered value differs from the local one."""

    field: str
    registered: Any
    local: Any

    def describe(self) -> str:
        return f"{self.field}: {_short(self.registered)} -> {_short(self.local)}"


@dataclass(frozen=True)
class SchemaField:
    """One field of an Avro schema, as `mesh products show` lists it."""

    name: str
    type: str
    doc: str | None
    pii: bool


@dataclass(frozen=True)
class SchemaChange:
    """A field added, removed or retyped between the registered schema and the local one."""

    field: str
    #: "added" | "removed" | "type changed" | "default changed" | "doc changed", and of the
    #: schema itself (field "(schema)"): "renamed" | "doc changed" | "fields reordered" |
    #: "changed elsewhere" (aliases, custom attributes)
    change: str
    before: str | None = None
    after: str | None = None

    def describe(self) -> str:
        if self.change == "added":
            return f"+ {self.field}: {self.after}"
        if self.change == "removed":
            return f"- {self.field}: {self.before}"
        if self.change == "changed elsewhere":
            return f"~ {self.field}: changed outside its fields' names, types, defaults and docs"
        if self.change in ("type changed", "default changed"):  # the values say which
            return f"~ {self.field}: {self.before} -> {self.after}"
        return f"~ {self.field}: {self.change}, {self.before} -> {self.after}"


@dataclass
class ProductPlan:
    """What applying one product would do."""

    name: str
    topic: str
    subject: str
    descriptor_file: str
    descriptor: Status = Status.UNKNOWN
    descriptor_changes: list[FieldChange] = field(default_factory=list)
    schema_file: str = ""
    schema: Status = Status.UNKNOWN
    schema_changes: list[SchemaChange] = field(default_factory=list)
    contract_changes: list[str] = field(default_factory=list)
    """Parts of the registered contract (``ruleSet``, ``metadata``) the descriptor changes
    while the schema text stays: apply registers a new version with the same schema."""
    registered_version: int | None = None
    local_version: int | None = None
    """The registered version the local schema is, when it is an older one than the latest
    (apply then leaves the subject as it is; publishers write with that version)."""
    compatibility_level: str | None = None
    level_change: tuple[str, str] | None = None  # (registered, descriptor)
    compatible: bool | None = None
    level_compatible: bool | None = None
    """Whether the subject's own level accepts the schema (``compatible`` adds the readers)."""
    compatibility_messages: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    """Registered products and consumer groups that read this one (consumer protection
    applies): product names, and group labels ``consumer group 'g' (owner d)``."""
    consumer_level: str | None = None
    """The level consumer protection checks the new schema at (with ``consumers``)."""
    protects_consumers: bool | None = None
    """Whether the changed schema keeps the products reading this one working."""
    topic_status: TopicStatus = TopicStatus.UNCHECKED
    topic_unseen_by: str | None = None
    """With a MISSING topic of another domain's product: the principal that did not see it in
    the cluster's listing, which leaves out the topics it may not DESCRIBE (h59: an existing
    topic was said to be missing)."""
    topic_spec: str | None = None
    topic_drift: list[str] = field(default_factory=list)
    dlq_topic_missing: str | None = None
    """The product's dead-letter topic, when it does not exist yet (its owner creates it)."""
    dlq_topic_drift: list[str] = field(default_factory=list)
    """How an existing dead-letter topic's configs differ from its spec (a reader may have
    created it before owners did): apply sets them."""
    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return (
            self.descriptor is Status.UNCHANGED
            and self.schema is Status.UNCHANGED
            and self.level_change is None
            and self.topic_status is not TopicStatus.MISSING
            and self.dlq_topic_missing is None
            and not self.dlq_topic_drift
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["refusals"] = [_refusal_dict(r) for r in self.refusals]
        data["unchanged"] = self.unchanged
        data["level_change"] = list(self.level_change) if self.level_change else None
        return data


@dataclass
class ProjectPlan:
    """The plan of a whole project: its products, the domain's ACLs, lint, refusals."""

    root: Path
    domains: tuple[str, ...]
    registry_url: str
    bootstrap_servers: str | None
    products: list[ProductPlan] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)  # not tied to one product
    warnings: list[str] = field(default_factory=list)
    lint_errors: int = 0
    lint_warnings: int = 0
    acl_status: AclStatus = AclStatus.UNCHECKED
    acls_missing: list[Acl] = field(default_factory=list)
    acl_note: str | None = None

    @property
    def all_refusals(self) -> list[Refusal]:
        return [*self.refusals, *(r for p in self.products for r in p.refusals)]

    @property
    def applicable(self) -> bool:
        return not self.all_refusals

    @property
    def unchanged(self) -> bool:
        return all(p.unchanged for p in self.products) and not self.acls_missing

    def counts(self) -> dict[str, int]:
        new = sum(p.descriptor is Status.NEW for p in self.products)
        unchanged = sum(p.unchanged for p in self.products)
        return {"new": new, "changed": len(self.products) - new - unchanged, "unchanged": unchanged}

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "domains": list(self.domains),
            "registry_url": self.registry_url,
            "bootstrap_servers": self.bootstrap_servers,
            "applicable": self.applicable,
            "unchanged": self.unchanged,
            "counts": self.counts(),
            "products": [p.to_dict() for p in self.products],
            "refusals": [_refusal_dict(r) for r in self.all_refusals],
            "warnings": [*self.warnings, *(w for p in self.products for w in p.warnings)],
            "lint": {"errors": self.lint_errors, "warnings": self.lint_warnings},
            "acls": {
                "status": self.acl_status.value,
                "missing": [a.to_dict() for a in self.acls_missing],
                "note": self.acl_note,
            },
        }


def _refusal_dict(refusal: Refusal) -> dict[str, Any]:
    return {**asdict(refusal), "location": refusal.location}


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class ApplyResult:
    """What an apply did, one line per change (empty: everything already matched)."""

    actions: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "actions": self.actions, "unchanged": self.unchanged}
