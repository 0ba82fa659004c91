"""Evolution that protects consumers: what a new schema version of a product may change
once other products, or registered consumer groups, read it.

Two rules, one verdict (:func:`judge_evolution`), used by the registry's schema gate (409 on
every register path), by `mesh lint --against-registry` and by `mesh products plan`:

1. **Level.** A product with consumers evolves under FULL_TRANSITIVE: every registered
   version reads new records and the new schema reads every old record, so neither a
   lagging consumer nor a replay breaks. The domain may declare a weaker ``compatibility``
   only with a ``compatibility_reason`` (the policy ``compatibility-with-consumers`` says so
   in `mesh lint` and on ``PUT /products``); without one, FULL_TRANSITIVE holds anyway.
2. **Fields read.** A field a consumer reads is never removed or retyped, whatever level
   was declared: that is what crash-loops a processor (``KeyError``) even when the declared
   level allows it.

Consumers are of two kinds. Downstream *products* (their ``inputs`` name this product;
the fields they read are their ``field_lineage`` sources ``<product>:<field>``), and
*registered consumers* (:class:`RegisteredConsumer`): consumer groups of applications that
are not products, registered on the product with the top-level fields they ``reads``
(``PUT /products/{name}/consumers/{group}``, or ``ProductConsumer(..., reads=...)``).
Readers the registry does not know of are protected only through the level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import avro.schema

from mesh_stream.descriptor import Compatibility, DataProduct
from mesh_stream.schema.avro import (
    AvroSchema,
    Incompatibility,
    incompatibilities,
    next_major_hint,
    type_name,
)

PROTECTED_LEVEL = Compatibility.FULL_TRANSITIVE
"""The least a product others read evolves under, unless its domain gives a reason."""


def consumer_level(product: DataProduct) -> Compatibility:
    """The level a new version of ``product`` must meet while other products read it: the
    declared level when it is FULL_TRANSITIVE or comes with ``compatibility_reason``, else
    FULL_TRANSITIVE."""
    declared = product.required_compatibility(has_consumers=True)
    if declared is PROTECTED_LEVEL or product.compatibility_reason:
        return declared
    return PROTECTED_LEVEL


#: How a downstream product declares the fields it reads.
VIA_LINEAGE = "field_lineage"
#: How a registered consumer group declares the fields it reads.
VIA_REGISTRATION = "registered reads"


@dataclass(frozen=True)
class RegisteredConsumer:
    """A consumer group registered on a product (an application, not a product), owned by
    the domain that registered it, with the top-level fields it reads."""

    group: str
    owner: str
    reads: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """How refusals name it: the group and who to talk to."""
        return f"consumer group '{self.group}' (owner {self.owner})"


@dataclass(frozen=True)
class LineageBreak:
    """A field a consumer reads that a new version removes or retypes: a downstream
    product's ``field_lineage`` or a registered consumer group's ``reads``."""

    consumer: str
    field: str
    change: str
    via: str = VIA_LINEAGE
    """``field_lineage`` (a downstream product) or ``registered reads`` (a consumer group)."""

    def __str__(self) -> str:
        return f"{self.consumer} reads field {self.field} ({self.via}), which {self.change}"

    def fix(self, subject: str) -> str:
        """What lets the change through: keep the field, or move the consumer first."""
        keep = "keep the field and its type (deprecate it in its doc)"
        major = next_major_hint(subject)
        if self.via == VIA_REGISTRATION:
            return (
                f"{keep}; or, once that group no longer reads it, its owner registers it "
                f"again without {self.field} in reads (`mesh products consumers PRODUCT "
                f"--register GROUP --reads ...`) or unregisters it; or {major}"
            )
        return f"{keep}, or {major} and move {self.consumer} to it"


@dataclass(frozen=True)
class EvolutionVerdict:
    """What a new version of ``product`` would break for the products and registered consumer
    groups that read it (``consumers`` names both: product names, group labels)."""

    product: str
    subject: str
    level: Compatibility
    consumers: tuple[str, ...]
    problems: tuple[Incompatibility, ...]
    lineage: tuple[LineageBreak, ...]
    reason: str | None = None
    """The domain's ``compatibility_reason`` when a weaker declared level is honoured."""

    @property
    def refused(self) -> bool:
        return bool(self.problems or self.lineage)

    @property
    def broken_consumers(self) -> tuple[str, ...]:
        """The consumers that would break: every one on a level problem (they all read the
        topic), else those that read a changed field."""
        if self.problems:
            return self.consumers
        return tuple(dict.fromkeys(b.consumer for b in self.lineage))  # products, then groups

    def lines(self) -> list[str]:
        """One line per problem: the field, what changed, why, and the fix."""
        lines = [f"{b}; fix: {b.fix(self.subject)}" for b in self.lineage]
        return lines + [str(p) for p in self.problems]

    def message(self) -> str:
        """The one-paragraph refusal: who would break, under which level and why."""
        why = (
            f"declared {self.level.value}: {self.reason}" if self.reason else "consumer protection"
        )
        return (
            f"schema for subject '{self.subject}' would break {', '.join(self.broken_consumers)}"
            f" (downstream of '{self.product}', checked at {self.level.value}, {why}): "
            + " | ".join(self.lines())
        )


def judge_evolution(
    product: DataProduct,
    consumers: Sequence[DataProduct],
    candidate: AvroSchema,
    registered: Sequence[tuple[int, AvroSchema]],
    groups: Sequence[RegisteredConsumer] = (),
) -> EvolutionVerdict | None:
    """The verdict on ``candidate`` as the next version of ``product``'s value subject, with
    ``registered`` its live versions (oldest first), for the downstream products
    ``consumers`` and the registered consumer ``groups``; None when nobody reads it."""
    if not consumers and not groups:
        return None
    level = consumer_level(product)
    problems = incompatibilities(candidate, registered, level, subject=product.value_subject)
    if problems and len(registered) > 1:
        # A break the latest version already has against earlier ones (readers of version 1
        # cannot read version 5's records) is history, not this change: blaming it on every
        # new version froze a product whose history was only BACKWARD as soon as a group
        # registered, a doc change included (h44).
        had = incompatibilities(registered[-1][1], registered[:-1], level)
        inherited = {(problem.field, problem.change) for problem in had}
        problems = [p for p in problems if (p.field, p.change) not in inherited]
    latest = registered[-1][1] if registered else None
    breaks: list[LineageBreak] = []
    for consumer in sorted(consumers, key=lambda c: c.name):
        for field in sorted(read_fields(consumer, product.name)):
            change = _field_change(latest, candidate, field) if latest is not None else None
            if change is not None:
                breaks.append(LineageBreak(consumer.name, field, change))
    for group in sorted(groups, key=lambda g: g.group):
        for field in sorted(set(group.reads)):
            change = _field_change(latest, candidate, field) if latest is not None else None
            if change is not None:
                breaks.append(LineageBreak(group.label, field, change, VIA_REGISTRATION))
    reason = product.compatibility_reason if level is not PROTECTED_LEVEL else None
    return EvolutionVerdict(
        product=product.name,
        subject=product.value_subject,
        level=level,
        consumers=(
            *sorted(c.name for c in consumers),
            *(g.label for g in sorted(groups, key=lambda g: g.group)),
        ),
        problems=tuple(problems),
        lineage=tuple(breaks),
        reason=reason,
    )


def read_fields(consumer: DataProduct, upstream: str) -> set[str]:
    """The fields of ``upstream`` that ``consumer``'s field_lineage reads."""
    return {
        field
        for sources in consumer.field_lineage.values()
        for source in sources
        for name, _, field in [source.partition(":")]
        if name == upstream and field
    }


def _field_change(old: AvroSchema, new: AvroSchema, path: str) -> str | None:
    """How field ``path`` changed from ``old`` to ``new``: removed, retyped, or None."""
    before = field_type(old, path)
    if before is None:
        return None  # not a field of the registered version: field-lineage-resolves says so
    after = field_type(new, path)
    if after is None:
        return "the new version removes"
    if after.canonical_form != before.canonical_form:
        if type_name(before) == type_name(after):  # the same named type, changed inside
            return f"the new version changes {type_name(before)} (the same name)"
        return f"the new version retypes from {type_name(before)} to {type_name(after)}"
    return None


def field_type(schema: AvroSchema, path: str) -> AvroSchema | None:
    """The type of the field at dotted ``path`` (records inside unions, arrays and maps are
    looked into), or None when the schema has no such field."""
    current: AvroSchema | None = schema
    for part in path.split("."):
        if current is None:
            return None
        current = _field_of(current, part)
    return current


def _field_of(schema: AvroSchema, name: str) -> AvroSchema | None:
    if isinstance(schema, avro.schema.RecordSchema):
        found = schema.fields_dict.get(name)
        return None if found is None else found.type
    if isinstance(schema, avro.schema.UnionSchema):
        for branch in schema.schemas:
            inner = _field_of(branch, name)
            if inner is not None:
                return inner
        return None
    if isinstance(schema, avro.schema.ArraySchema):
        return _field_of(schema.items, name)
    if isinstance(schema, avro.schema.MapSchema):
        return _field_of(schema.values, name)
    return None
