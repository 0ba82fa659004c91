"""The built-in policies: one small, documented check per rule of the mesh.

Each policy has a name (used in `mesh-policies.yaml`, in domain overrides and in every
violation), a built-in severity and overridability (the global config file may change
both), a *why* and a *how to fix* shown with each violation, an optional pydantic model of
its parameters, and a check that yields :class:`Finding` objects for one product.

More names are reserved for problems of the governance inputs themselves and cannot be
configured: ``descriptor-valid`` (a descriptor does not load), ``domain-in-project`` (a
descriptor of a domain the project does not own), ``schema-valid`` (its Avro schema is
missing or broken), ``logical-types`` (a ``logicalType`` Avro would ignore) and
``policy-override`` (a domain's `policies.yaml` is wrong or overrides a rule it may not).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mesh_stream.contracts.cel import field_paths_named
from mesh_stream.descriptor import Classification, CleanupPolicy, Compatibility, DataProduct
from mesh_stream.governance import avro_walk
from mesh_stream.governance.catalog import Catalog, unverified
from mesh_stream.governance.model import Finding, Severity
from mesh_stream.schema import keys
from mesh_stream.schema.spec import LOGICAL_TYPES

KAFKA_MAX_TOPIC_LENGTH = 249
"""Kafka refuses longer topic names; the dead-letter topic adds ``.dlq`` to the product's."""


@dataclass(frozen=True)
class Layout:
    """Where a project keeps its descriptors and schemas: the folders its ``mesh.yaml`` names
    (``products``, ``schemas``), relative to the project root."""

    products: PurePosixPath = field(default_factory=lambda: PurePosixPath("domains"))
    schemas: PurePosixPath = field(default_factory=lambda: PurePosixPath("schemas"))


@dataclass(frozen=True)
class Review:
    """Everything a check may look at for one product."""

    product: DataProduct
    schema: Mapping[str, Any] | None
    """The parsed Avro schema; None when it could not be read (``schema-valid`` says why)."""
    catalog: Catalog
    descriptor_file: PurePosixPath | None = None
    """Repository-relative path of the descriptor; None when it came through the registry."""
    layout: Layout | None = None
    """The project's folders; None when the product came through the registry, which holds
    products of many repositories, each laid out as its own ``mesh.yaml`` says."""


class NoParams(BaseModel):
    """Parameters of a policy that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Check = Callable[[Review, Any], Iterable[Finding]]


@dataclass(frozen=True)
class Policy:
    """A named rule of the mesh (see the module docstring)."""

    name: str
    why: str
    fix: str
    check: Check
    params: type[BaseModel] = NoParams
    severity: Severity = Severity.ERROR
    overridable: bool = False
    configurable: bool = True
    description: str | None = None
    """What the policy demands; default: the first paragraph of the check's docstring."""

    @property
    def summary(self) -> str:
        """One line saying what the policy demands (a paragraph's lines joined, never cut
        mid-sentence)."""
        if self.description:
            return self.description
        first = (self.check.__doc__ or self.name).strip().split("\n\n")[0]
        return " ".join(line.strip() for line in first.splitlines())


BUILTIN_POLICIES: dict[str, Policy] = {}


def _policy(
    name: str,
    *,
    why: str,
    fix: str,
    params: type[BaseModel] = NoParams,
    overridable: bool = False,
    severity: Severity = Severity.ERROR,
) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        BUILTIN_POLICIES[name] = Policy(
            name, why, fix, check, severity=severity, params=params, overridable=overridable
        )
        return check

    return register


def _no_findings(_review: Review, _params: NoParams) -> Iterator[Finding]:
    """Reported by the loaders, not by a check over a loaded product."""
    return iter(())


# -- reserved: problems of the inputs themselves ---------------------------------------------

BUILTIN_POLICIES["descriptor-valid"] = Policy(
    "descriptor-valid",
    description="Every descriptor file loads (valid YAML, every field valid).",
    why="A descriptor that does not load cannot be discovered, addressed or checked.",
    fix="Correct the YAML at the line shown; every field is described in the descriptor "
    "reference of the mesh-stream docs (reference/descriptor).",
    check=_no_findings,
    configurable=False,
)
BUILTIN_POLICIES["domain-in-project"] = Policy(
    "domain-in-project",
    description="Every descriptor's domain is one of the project's `domains` (mesh.yaml).",
    why="A project publishes only the domains it owns: `mesh products plan` and the SDK "
    "refuse a product of any other domain.",
    fix="Add the domain to `domains` in mesh.yaml, or move the descriptor to the repository of "
    "the domain that owns it.",
    check=_no_findings,
    configurable=False,
)
BUILTIN_POLICIES["schema-valid"] = Policy(
    "schema-valid",
    description="Every descriptor points at a readable, valid Avro record schema.",
    why="The Avro schema is the product's contract; without a readable one no record can be "
    "checked on write and no consumer can decode the topic.",
    fix="Point the descriptor's `schema` at an existing `.avsc` (repo-relative path) holding a "
    "valid Avro record schema.",
    check=_no_findings,
    configurable=False,
)
BUILTIN_POLICIES["logical-types"] = Policy(
    "logical-types",
    description="Every `logicalType` in a schema is one the mesh supports, on the type it needs.",
    why="Avro ignores a logical type it does not know or one on the wrong type, without an "
    "error: producers and consumers then see the bare underlying value (a long, not a "
    "timestamp), and the contract promises what the topic does not carry.",
    fix="Use a supported logical type on the type it needs (the message lists them), e.g. "
    '`{"type": "long", "logicalType": "timestamp-micros"}`, or drop `logicalType` and say in '
    "the field's doc what the value means.",
    check=_no_findings,
    configurable=False,
)
BUILTIN_POLICIES["policy-override"] = Policy(
    "policy-override",
    description="A domain overrides only overridable policies, with valid values and a reason.",
    why="Domains may only change what the global set (mesh-policies.yaml) marks as "
    "overridable; everything else holds for every domain alike.",
    fix="Remove the override from the domain's policies.yaml, or ask the governance group to "
    "mark the policy `overridable: true` in mesh-policies.yaml.",
    check=_no_findings,
    configurable=False,
)


def _shown(value: Any, *, quoted: bool = False) -> str:
    """A schema value for a message: a name as is (or quoted), anything else as short JSON."""
    if isinstance(value, str):
        return repr(value[:60]) if quoted else value[:60]
    return json.dumps(value)[:60]


def ignored_logical_types(schema: Mapping[str, Any]) -> Iterator[Finding]:
    """The ``logicalType`` annotations of ``schema`` that Avro would ignore: unknown ones
    and known ones on the wrong type (``logical-types``, reported by the schema loader)."""
    root = avro_walk.root_name(schema)
    supported = ", ".join(f"{name} ({'/'.join(bases)})" for name, bases in LOGICAL_TYPES.items())
    for spot in avro_walk.logical_types(schema):
        where = f"{root}.{spot.path}"
        base, logical = _shown(spot.base), _shown(spot.logical, quoted=True)
        needs = LOGICAL_TYPES.get(spot.logical) if isinstance(spot.logical, str) else None
        if needs is None:
            yield Finding(
                f"field {where}: logicalType {logical} is not one the mesh supports, so Avro "
                f"ignores it and the field is a plain {base}; supported: {supported}",
                where,
                (*spot.loc, "logicalType"),
                True,
            )
        elif base not in needs:
            yield Finding(
                f"field {where}: logicalType {logical} needs type {' or '.join(needs)}, "
                f"not {base}, so Avro ignores it and the field is a plain {base}",
                where,
                (*spot.loc, "logicalType"),
                True,
            )


# -- naming ----------------------------------------------------------------------------------

BUILTIN_POLICIES["schema-has-product"] = Policy(
    "schema-has-product",
    description="Every `.avsc` under schemas/ is the schema of some product (`mesh lint` only).",
    why="A contract no descriptor points at is undiscoverable: nobody owns it, no topic uses "
    "it, and it silently drifts from the products it was meant for.",
    fix="Point a product descriptor's `schema` at the file, or delete the file.",
    check=_no_findings,
    severity=Severity.WARNING,
)


@_policy(
    "naming",
    why="Products, topics and subjects are found by name: `<domain>.<product>`, topic "
    "`<domain>.<product>.v<major>`, subject `<topic>-value`, descriptor file "
    "`<products>/<domain>/products/<product>.yaml`, schema under `<schemas>/<domain>/` "
    "(`<products>` and `<schemas>`: the folders the project's mesh.yaml names, `domains` and "
    "`schemas` by default).",
    fix="Rename the file or change `name`/`schema` so they agree with the convention shown.",
)
def check_naming(review: Review, _params: NoParams) -> Iterator[Finding]:
    """Descriptor file, schema file and topic names follow the mesh's naming convention."""
    product = review.product
    domain, _, local_name = product.name.partition(".")
    layout = review.layout
    path = review.descriptor_file
    if path is not None:
        products = layout.products if layout is not None else Layout().products
        expected = products / domain / "products" / f"{local_name}{path.suffix}"
        if path.parts[-len(expected.parts) :] != expected.parts:
            yield Finding(
                f"product {product.name!r} is described in {path}, but its descriptor must be "
                f"{expected}",
                "name",
                ("name",),
            )
    schema_path = PurePosixPath(product.schema_file)
    if layout is not None:
        folder = (layout.schemas / domain).parts
        in_folder = schema_path.parts[: len(folder)] == folder
        where = f"under {PurePosixPath(*folder)}/"
    else:  # the registry: whichever schemas folder the owning repository uses
        in_folder = domain in schema_path.parts[:-1]
        where = f"in a {domain}/ folder"
    if not in_folder or schema_path.suffix != ".avsc":
        yield Finding(
            f"schema {product.schema_file!r} must be an `.avsc` file {where} (the contracts of "
            f"domain {domain!r})",
            "schema",
            ("schema",),
        )
    if len(product.dlq_topic) > KAFKA_MAX_TOPIC_LENGTH:
        yield Finding(
            f"topic {product.dlq_topic!r} is {len(product.dlq_topic)} characters; Kafka allows "
            f"at most {KAFKA_MAX_TOPIC_LENGTH}",
            "name",
            ("name",),
        )


# -- quality rules ---------------------------------------------------------------------------


@_policy(
    "rules-read-schema-fields",
    why="A quality rule reading a field the schema lacks fails on every record: each one is "
    "refused or dead-lettered at publish time, however good it is.",
    fix="Correct the field's path in the rule's `expr` (`message.<field>.<nested field>`, as "
    "the `.avsc` names them), or add the field to the schema; test a field that may be "
    "missing with `has(message.<field>)`.",
)
def check_rules_read_schema_fields(review: Review, _params: NoParams) -> Iterator[Finding]:
    """Every field a quality rule reads as `message.<field>` (or `message.<a>.<b>`, through
    nested records) is a field of the schema, and no field is selected from a value without
    fields."""
    if review.schema is None or not review.product.rules:
        return
    for index, rule in enumerate(review.product.rules):
        for path in field_paths_named(rule.expr):
            problem = avro_walk.selection_problem(review.schema, path)
            if problem is not None:
                yield Finding(
                    f"rule {rule.name!r} reads message.{'.'.join(path)}, but {problem}: "
                    f"the rule fails on every record",
                    f"rules.{index}.expr",
                    ("rules", index, "expr"),
                )


# -- documentation and ownership ------------------------------------------------------------


@_policy(
    "documentation",
    why="A product must be self-describing: consumers learn what each field means from the "
    "schema's `doc`, and the registry's search indexes it.",
    fix='Add a non-empty `"doc"` to the record or field in the `.avsc` shown.',
)
def check_documentation(review: Review, _params: NoParams) -> Iterator[Finding]:
    """Every record and every field of the schema has a non-empty `doc`."""
    if review.schema is None:
        return
    yield from undocumented(review.schema)


def undocumented(schema: Mapping[str, Any]) -> Iterator[Finding]:
    """The records and fields of ``schema`` without a `doc` (needs no descriptor, so the
    registry checks it even for a schema registered before its product)."""
    root = avro_walk.root_name(schema)
    for spot in avro_walk.walk(schema):
        doc = spot.record.get("doc") if isinstance(spot, avro_walk.RecordSpot) else None
        if isinstance(spot, avro_walk.RecordSpot):
            where = f"{root}.{spot.path}" if spot.path else root
            at = f" (at {where})" if spot.path else ""
            if not (isinstance(doc, str) and doc.strip()):
                yield Finding(f"record {spot.name!r}{at} has no doc", where, spot.loc, True)
        else:
            doc = spot.field.get("doc")
            if not (isinstance(doc, str) and doc.strip()):
                where = f"{root}.{spot.path}"
                yield Finding(f"field {where} has no doc", where, spot.loc, True)


CONTACT = re.compile(r"^(?:[^@\s]+@[^@\s]+\.[^@\s.]+|#[a-z0-9][a-z0-9._-]*|https?://\S+)\Z")


@_policy(
    "ownership",
    why="Domain ownership: every product has a team accountable for it and a way to reach "
    "that team when the product breaks.",
    fix="Set `owner.team` and `owner.contact` (an e-mail address, a #chat-channel or an "
    "https:// URL) in the descriptor.",
)
def check_ownership(review: Review, _params: NoParams) -> Iterator[Finding]:
    """The owner team is named and its contact is an e-mail, #channel or URL."""
    owner = review.product.owner
    if not owner.team.strip():
        yield Finding("owner.team is blank", "owner.team", ("owner", "team"))
    if not CONTACT.match(owner.contact.strip()):
        yield Finding(
            f"owner.contact {owner.contact!r} is not an e-mail address, #channel or http(s) URL",
            "owner.contact",
            ("owner", "contact"),
        )


# -- SLOs and classification -----------------------------------------------------------------


class SloBounds(BaseModel):
    """Least each product must promise."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    min_availability: float = Field(default=99.0, gt=0, le=100)
    max_freshness_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("*", mode="before")
    @classmethod
    def _not_nan(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's ``.nan`` fails every bound, so the bound's words ("should be less than or
        equal to 100") would send the author the wrong way: say it is not a number."""
        if _is_nan(value):
            want = _SLO_BOUND_VALUES.get(info.field_name or "", "a number")
            raise PydanticCustomError(
                "not_a_number", f"the value is NaN (not a number); give {want}"
            )
        return value


_SLO_BOUND_VALUES = {
    "min_availability": "a percentage above 0 and at most 100, e.g. 99",
    "max_freshness_seconds": "a number of seconds above 0, e.g. 3600, or .inf for no maximum",
}
"""What each bound wants instead of NaN."""


def _is_nan(value: Any) -> bool:
    """A NaN float, or text pydantic would read as one ("nan" in quotes)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float) and math.isnan(value)


@_policy(
    "slos-declared",
    why="Consumers build on a product only when they know how fresh and available it is; a "
    "product promising less than the platform minimum is not a product.",
    fix="Declare `slos.freshness_seconds` and `slos.availability` in the descriptor, within "
    "the bounds shown (set in mesh-policies.yaml, domain policies.yaml if overridable).",
    params=SloBounds,
    overridable=True,
)
def check_slos(review: Review, params: SloBounds) -> Iterator[Finding]:
    """SLOs are declared and at least as strong as the platform minimums."""
    slos = review.product.slos
    if slos.availability < params.min_availability:
        yield Finding(
            f"slos.availability {slos.availability:g}% is below the minimum "
            f"{params.min_availability:g}%",
            "slos.availability",
            ("slos", "availability"),
        )
    if slos.freshness_seconds > params.max_freshness_seconds:
        yield Finding(
            f"slos.freshness_seconds {slos.freshness_seconds:g} is above the maximum "
            f"{params.max_freshness_seconds:g}",
            "slos.freshness_seconds",
            ("slos", "freshness_seconds"),
        )


@_policy(
    "classification-declared",
    why="Access rules and PII checks depend on how sensitive a product is; an unclassified "
    "product cannot be governed.",
    fix="Set `classification` to one of public, internal, confidential, pii.",
)
def check_classification(_review: Review, _params: NoParams) -> Iterator[Finding]:
    """The descriptor declares its classification (the loader reports a missing one)."""
    return iter(())


# -- PII ------------------------------------------------------------------------------------


@_policy(
    "pii-classification",
    why="Personal data may only live in products classified `pii`, whose access is "
    "restricted accordingly.",
    fix='Classify the product `pii`, or remove/mask the field and drop its `"pii": true`.',
)
def check_pii_classification(review: Review, _params: NoParams) -> Iterator[Finding]:
    """Fields marked `"pii": true` appear only in products classified `pii`; a mark is the
    boolean `true` (or `false`), never `"true"` or `1`."""
    if review.schema is None:
        return
    root = avro_walk.root_name(review.schema)
    for spot in avro_walk.fields(review.schema):
        mark = spot.field.get("pii", False)
        if not isinstance(mark, bool):
            yield Finding(
                f'field {root}.{spot.path} has "pii": {json.dumps(mark)}, not the boolean '
                f'true or false (it counts as PII meanwhile); write "pii": true',
                f"{root}.{spot.path}",
                spot.loc,
                True,
            )
    if review.product.classification is Classification.PII:
        return
    for spot in avro_walk.fields(review.schema):
        if spot.is_pii:
            yield Finding(
                f"field {root}.{spot.path} is marked PII but product {review.product.name!r} "
                f"is classified {review.product.classification.value!r}",
                f"{root}.{spot.path}",
                spot.loc,
                True,
            )


def unmarked_pii(previous: Mapping[str, Any], schema: Mapping[str, Any]) -> Iterator[Finding]:
    """Fields ``previous`` (the subject's latest version) marks PII that ``schema`` keeps
    without the mark: records written before still hold personal data under that field, and
    a product reading it could then copy it below `pii` (the registry runs this on each new
    version, under pii-classification)."""
    kept = {spot.path: spot for spot in avro_walk.fields(schema)}
    root = avro_walk.root_name(schema)
    for path in avro_walk.pii_paths(previous):
        spot = kept.get(path)
        if spot is not None and not spot.is_pii:
            yield Finding(
                f"field {root}.{path} was marked PII in the subject's latest version and this "
                f"version drops the mark: the records already written hold personal data "
                f'under it; keep "pii": true (a mark is dropped only with a new major version)',
                f"{root}.{path}",
                spot.loc,
                True,
            )


UNMARKED_PII = "all fields: classified pii, no field marked"
"""What a `pii` product without `"pii": true` marks carries: any field may be personal."""


def _pii_of_input(catalog: Catalog, name: str) -> list[str] | None:
    """PII paths of input ``name`` (:data:`UNMARKED_PII` for a `pii` product without
    marks), None if the input carries no PII or is unknown."""
    upstream = catalog.product(name)
    if upstream is None:
        return None
    schema = catalog.schema(name)
    marked = avro_walk.pii_paths(schema) if schema is not None else []
    if marked:
        return marked
    return [UNMARKED_PII] if upstream.classification is Classification.PII else None


@_policy(
    "pii-lineage",
    why="Masking PII in one product is worthless if a downstream product copies it out again: "
    "no PII may flow into a product classified below `pii`.",
    fix="Declare `field_lineage` for every output field so governance can check field by "
    "field, drop or mask the PII fields in the processor, or classify the product `pii`.",
)
def check_pii_lineage(review: Review, _params: NoParams) -> Iterator[Finding]:
    """No PII reaches a non-`pii` product through lineage (field level when declared)."""
    product = review.product
    if product.classification is Classification.PII:
        return
    carriers = {
        name: pii
        for name in product.inputs
        if (pii := _pii_of_input(review.catalog, name)) is not None
    }
    if not product.field_lineage:
        for index, name in enumerate(product.inputs):
            if name in carriers:
                yield Finding(
                    f"input {name!r} carries PII ({', '.join(carriers[name])}) and "
                    f"{product.name!r} is classified {product.classification.value!r} without "
                    f"field_lineage showing the PII is dropped",
                    f"inputs[{index}]",
                    ("inputs", index),
                )
        return
    for output, sources in product.field_lineage.items():
        for index, source in enumerate(sources):
            upstream, _, field = source.partition(":")
            if upstream not in carriers:
                continue
            upstream_schema = review.catalog.schema(upstream)
            if carriers[upstream] == [UNMARKED_PII]:
                pii = [UNMARKED_PII]
            elif upstream_schema is None:
                continue
            else:
                pii = avro_walk.pii_within(upstream_schema, field)
            if pii:
                yield Finding(
                    f"output field {output!r} is computed from {source!r}, which is PII "
                    f"({', '.join(pii)}), but {product.name!r} is classified "
                    f"{product.classification.value!r}",
                    f"field_lineage.{output}[{index}]",
                    ("field_lineage", output, index),
                )
    if carriers and review.schema is not None:
        declared = {path.split(".", 1)[0] for path in product.field_lineage}
        uncovered = [
            name for name in avro_walk.top_level_fields(review.schema) if name not in declared
        ]
        if uncovered:
            yield Finding(
                f"inputs {', '.join(sorted(carriers))} carry PII but field_lineage does not "
                f"say where output fields {', '.join(uncovered)} come from",
                "field_lineage",
                ("field_lineage",),
            )


@_policy(
    "field-lineage-resolves",
    why="Field-level lineage is only evidence when every mapping points at real fields of "
    "declared inputs.",
    fix="Make each `field_lineage` entry map an existing output field to "
    "`<input product>:<field>` where the product is listed in `inputs` and has that field.",
)
def check_field_lineage(review: Review, _params: NoParams) -> Iterator[Finding]:
    """Every `field_lineage` entry names an output field and existing input fields."""
    product = review.product
    for output, sources in product.field_lineage.items():
        loc = ("field_lineage", output)
        if review.schema is not None and not avro_walk.has_field(review.schema, output):
            yield Finding(
                f"field_lineage names output field {output!r}, which the schema of "
                f"{product.name!r} does not have",
                f"field_lineage.{output}",
                loc,
            )
        for index, source in enumerate(sources):
            upstream, _, field = source.partition(":")
            if upstream not in product.inputs:
                yield Finding(
                    f"field_lineage.{output} reads {source!r} but {upstream!r} is not in inputs",
                    f"field_lineage.{output}[{index}]",
                    (*loc, index),
                )
                continue
            upstream_schema = review.catalog.schema(upstream)
            if upstream_schema is not None and not avro_walk.has_field(upstream_schema, field):
                yield Finding(
                    f"field_lineage.{output} reads {source!r} but {upstream!r} has no field "
                    f"{field!r}",
                    f"field_lineage.{output}[{index}]",
                    (*loc, index),
                )


# -- lineage and evolution --------------------------------------------------------------------


@_policy(
    "inputs-exist",
    why="An aggregate or consumer-aligned product is built from other products; lineage that "
    "points nowhere cannot be traced or trusted.",
    fix="List in `inputs` the existing products (`<domain>.<product>`) this one is computed "
    "from; register or add the missing ones first.",
)
def check_inputs_exist(review: Review, _params: NoParams) -> Iterator[Finding]:
    """Aggregate and consumer-aligned products name inputs, and every input exists."""
    product = review.product
    derived = product.kind.value != "source-aligned"
    if derived and not product.inputs:
        yield Finding(
            f"{product.kind.value} product {product.name!r} declares no inputs",
            "inputs",
            ("inputs",),
        )
    for index, name in enumerate(product.inputs):
        if name == product.name:
            yield Finding(
                f"{product.name!r} lists itself as an input", f"inputs[{index}]", ("inputs", index)
            )
            continue
        known = review.catalog.known(name)
        if known is None:
            said = unverified(review.catalog) or (
                "the registry could not be asked; set MESH_REGISTRY_URL to the mesh's "
                "registry to check it"
            )
            yield Finding(
                f"input {name!r} is not in this repository and could not be verified: {said}",
                f"inputs[{index}]",
                ("inputs", index),
                at_most=Severity.WARNING,
            )
        elif not known:
            yield Finding(
                f"input {name!r} is not a product of the mesh",
                f"inputs[{index}]",
                ("inputs", index),
            )


@_policy(
    "pii-input-readers",
    why="A pii product's records reach only its own domain and its `readers` (the ACL plan "
    "grants no one else READ at the broker): another domain's product built from it has a "
    "processor the broker refuses on a secured cluster, and as a registered input it would "
    "hold the owner's product (no delete, every schema change checked against it) without "
    "the owner's consent, which `readers` gives.",
    fix="Ask the input's owners to add this product's domain to `readers` in their "
    "descriptor, or build the product from inputs this domain may read.",
)
def check_pii_input_readers(review: Review, _params: NoParams) -> Iterator[Finding]:
    """Every pii input of a product is one its domain may read (its own, or one listing
    the domain in `readers`)."""
    product = review.product
    for index, name in enumerate(product.inputs):
        if name == product.name or not review.catalog.known(name):
            continue  # inputs-exist says so
        closed = _closed_to(review.catalog.product(name), product.domain)
        if closed is not None:
            yield Finding(
                f"input {name!r} is classified pii and domain {product.domain!r} is not among "
                f"its readers ({closed}): on a secured cluster the broker refuses this "
                f"product's processor its records",
                f"inputs[{index}]",
                ("inputs", index),
            )


def _closed_to(upstream: DataProduct | None, domain: str) -> str | None:
    """``upstream``'s readers, said, when it is a pii product ``domain`` may not read (its
    own domain and its ``readers`` may, as the ACL plan grants); None when it may."""
    if upstream is None or upstream.classification is not Classification.PII:
        return None
    if domain == upstream.domain or domain in upstream.readers:
        return None
    return ", ".join(upstream.readers) or "none"


@_policy(
    "compatibility-with-consumers",
    why="Products built on this one read every version of it, old records and new: a lagging "
    "processor, a replay or a restart breaks (e.g. a KeyError crash-loop) unless each new "
    "version is readable by every old one and reads every old record (FULL_TRANSITIVE). The "
    "registry checks every new version of a product others read (downstream products or "
    "consumer groups registered on it) at FULL_TRANSITIVE, and never lets a field a "
    "downstream product's field_lineage or a registered group's `reads` names be removed or "
    "retyped.",
    fix="Drop `compatibility` from the descriptor (a product others read then evolves under "
    "FULL_TRANSITIVE) or set it to FULL_TRANSITIVE; to keep a weaker level, say why in "
    "`compatibility_reason` (the registry then checks that level, and still protects the "
    "fields downstream field_lineage and registered groups read).",
)
def check_compatibility(review: Review, _params: NoParams) -> Iterator[Finding]:
    """A product others read evolves under FULL_TRANSITIVE, or says why not."""
    product = review.product
    declared = product.compatibility
    if declared is None or declared is Compatibility.FULL_TRANSITIVE:
        return
    consumers = [
        *review.catalog.downstream(product.name),
        *(f"consumer group {group}" for group in review.catalog.consumer_groups(product.name)),
    ]
    if not consumers:
        return
    read_by = f"{product.name!r} is read by {', '.join(consumers)}"
    if product.compatibility_reason:
        yield Finding(
            f"compatibility {declared.value} is weaker than FULL_TRANSITIVE although "
            f"{read_by}; accepted for the declared reason: {product.compatibility_reason!r}",
            "compatibility",
            ("compatibility",),
            at_most=Severity.WARNING,
        )
        return
    yield Finding(
        f"compatibility {declared.value} is weaker than FULL_TRANSITIVE but {read_by}, and "
        f"no compatibility_reason says why",
        "compatibility",
        ("compatibility",),
    )


# -- keys and topic configuration -----------------------------------------------------------


@_policy(
    "key-field",
    why="The key decides partitioning (ordering per key) and what compaction keeps; a key "
    "field the records do not have makes every key null.",
    fix="Set `key_field` to a top-level, non-null field of the schema of type string, uuid, "
    "enum, int, long, date or timestamp (required when cleanup_policy includes compact).",
)
def check_key_field(review: Review, _params: NoParams) -> Iterator[Finding]:
    """The key field is a top-level field of the schema; compacted products have one. A key
    field without one text as a key (not a string, uuid, enum, int, long, date, time or
    timestamp), or one that may be null on a compacted product, is a warning."""
    product = review.product
    if product.key_field is None:
        if product.retention.cleanup_policy is not CleanupPolicy.DELETE:
            yield Finding(
                f"cleanup_policy {product.retention.cleanup_policy.value!r} compacts by key "
                f"but no key_field is set",
                "key_field",
                ("retention", "cleanup_policy"),
            )
        return
    if review.schema is None:
        return
    names = avro_walk.top_level_fields(review.schema)
    if product.key_field not in names:
        yield Finding(
            f"key_field {product.key_field!r} is not a top-level field of the schema "
            f"(fields: {', '.join(names)})",
            "key_field",
            ("key_field",),
        )
        return
    kind = keys.key_type(review.schema, product.key_field)
    if kind is None:
        return
    # Warnings, not errors: products keyed so before this check stay publishable (their key
    # can only change with a new major version).
    problem = keys.key_field_problem(kind)
    if problem is not None:
        yield Finding(
            f"key_field {product.key_field!r}: {problem}",
            "key_field",
            ("key_field",),
            at_most=Severity.WARNING,
        )
    elif kind.nullable and product.retention.cleanup_policy is not CleanupPolicy.DELETE:
        yield Finding(
            f"key_field {product.key_field!r} may be null, and a record without a key is "
            f"refused by a compacted topic (cleanup_policy "
            f"{product.retention.cleanup_policy.value!r}); make the field non-null",
            "key_field",
            ("key_field",),
            at_most=Severity.WARNING,
        )
    elif kind.nullable:
        yield Finding(
            f"key_field {product.key_field!r} may be null: such a record is published without "
            f"a key, to a partition Kafka picks, out of order with the others; make the field "
            f"non-null unless that is meant",
            "key_field",
            ("key_field",),
            at_most=Severity.WARNING,
        )


class PartitionBounds(BaseModel):
    """Partition counts the platform supports."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    min: int = Field(default=1, ge=1)
    max: int = Field(default=48, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> PartitionBounds:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


@_policy(
    "partition-bounds",
    why="Partitions cost broker memory and file handles and cannot be reduced later; the "
    "platform supports a bounded range.",
    fix="Set `partitions` within the bounds shown (mesh-policies.yaml `partition-bounds`).",
    params=PartitionBounds,
)
def check_partitions(review: Review, params: PartitionBounds) -> Iterator[Finding]:
    """`partitions` lies within the platform's bounds."""
    partitions = review.product.partitions
    if not params.min <= partitions <= params.max:
        yield Finding(
            f"partitions {partitions} is outside the platform bounds {params.min}..{params.max}",
            "partitions",
            ("partitions",),
        )


DAY_MS = 24 * 3600 * 1000


class RetentionBounds(BaseModel):
    """Retention the platform accepts for topics that delete old segments."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    min_ms: int = Field(default=3600 * 1000, ge=0)
    max_ms: int | None = Field(default=90 * DAY_MS, ge=1, description="None = no upper bound.")

    @model_validator(mode="after")
    def _ordered(self) -> RetentionBounds:
        if self.max_ms is not None and self.min_ms > self.max_ms:
            raise ValueError(f"min_ms {self.min_ms} is above max_ms {self.max_ms}")
        return self


@_policy(
    "retention-bounds",
    why="Retention decides both what consumers can replay and what the platform must store.",
    fix="Set `retention.ms` within the bounds shown, or use cleanup_policy `compact` for "
    "state that must be kept forever.",
    params=RetentionBounds,
    overridable=True,
)
def check_retention(review: Review, params: RetentionBounds) -> Iterator[Finding]:
    """`retention.ms` of deleting topics lies within the platform's bounds; on a compacted
    topic, where it does not apply, a `retention.ms` other than -1 is a warning."""
    retention = review.product.retention
    if retention.cleanup_policy is CleanupPolicy.COMPACT:
        # compaction keeps the latest value per key; retention.ms does not apply, and the
        # topic is made without it, so the catalog must not promise it (a campaign)
        # -1 (kept, as compaction does) and the default, which a descriptor sent to the
        # registry carries though its YAML never said it, are no promise of their own
        default = type(retention).model_fields["ms"].default
        if "ms" in retention.model_fields_set and retention.ms not in (-1, default):
            yield Finding(
                f"retention.ms {retention.ms} has no effect with cleanup_policy 'compact' (the "
                f"topic keeps every key's latest value, and is created without it); drop it, "
                f"or use cleanup_policy 'compact,delete' to also delete older records",
                "retention.ms",
                ("retention", "ms"),
                at_most=Severity.WARNING,
            )
        return
    upper = "unbounded" if params.max_ms is None else f"{params.max_ms}"
    if retention.ms == -1:
        if params.max_ms is not None:
            yield Finding(
                f"retention.ms -1 keeps data forever; the bounds in force for domain "
                f"{review.product.domain!r} allow {params.min_ms}..{upper} ms for cleanup_policy "
                f"{retention.cleanup_policy.value!r}",
                "retention.ms",
                ("retention", "ms"),
            )
        return
    if retention.ms < params.min_ms or (params.max_ms is not None and retention.ms > params.max_ms):
        yield Finding(
            f"retention.ms {retention.ms} is outside the bounds in force for domain "
            f"{review.product.domain!r} {params.min_ms}..{upper} ms (mesh-policies.yaml, or "
            f"the domain's policies.yaml where it overrides them)",
            "retention.ms",
            ("retention", "ms"),
        )
