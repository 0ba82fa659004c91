"""Data product descriptors: what a product is, who owns it, and how to address it.

A descriptor is YAML in ``domains/<domain>/products/<product>.yaml``, validated by the
pydantic model :class:`DataProduct`. Names follow DESIGN.md: product ``<domain>.<product>``,
topic ``<domain>.<product>.v<major>``, value subject ``<topic>-value``.

Loading errors name the file, the line and the field path, e.g.
``domains/orders/products/order-placed.yaml:7: slos.freshness_seconds: Input should be
greater than 0``.

:func:`resolve_product` finds a product by name: the owning domain's local descriptor first,
else the registry's catalog (what `mesh publish`, `mesh tail` and the SDK use).
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import json
import math
import os
import re
import stat
import sys
import weakref
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mesh_stream.errors import (
    ConfigurationError,
    DescriptorError,
    MeshError,
    ProductNotFoundError,
    SchemaError,
    validation_problem,
)
from mesh_stream.files import NotRegularFileError, not_utf8, read_regular_text


class ProductSource(Protocol):
    """Where descriptors not found locally come from (the registry client is one).

    A protocol, not the client class, so this products layer never imports the registry
    client above it.
    """

    url: str

    def get_product(self, name: str) -> dict[str, Any]: ...


NAME_PART = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*"
PRODUCT_NAME = re.compile(rf"^(?P<domain>{NAME_PART})\.(?P<product>{NAME_PART})\Z")
#: Longest product name: its topic ``<name>.v<version>`` must fit Kafka's 249 characters.
MAX_PRODUCT_NAME = 240
#: Longest product description, in characters: what a record means, not a manual.
MAX_DESCRIPTION_CHARS = 20_000
#: Largest descriptor as JSON, well under the registry's smallest request body (1 MiB by
#: default, MESH_REGISTRY_MAX_BODY_BYTES).
MAX_DESCRIPTOR_BYTES = 256 * 1024


def product_name_problem(name: str) -> str | None:
    """What is wrong with a product name (None when it is one); checked before the name is
    used in a path, a topic or a URL, so a 5,000-character name is not an OS error."""
    if len(name) > MAX_PRODUCT_NAME:
        return (
            f"{name[:40]!r}... has {len(name)} characters; a product name has at most "
            f"{MAX_PRODUCT_NAME}, so its topic `<name>.v<version>` fits Kafka's 249"
        )
    if not PRODUCT_NAME.match(name):
        return (
            f"{name!r} is not `<domain>.<product>` (lowercase letters and digits, "
            f"`-` inside words), e.g. `orders.order-placed`"
        )
    return None


TOPIC_NAME = re.compile(rf"^(?P<name>{NAME_PART}\.{NAME_PART})\.v(?P<major>[1-9][0-9]*)\Z")


class ProductKind(StrEnum):
    SOURCE_ALIGNED = "source-aligned"
    AGGREGATE = "aggregate"
    CONSUMER_ALIGNED = "consumer-aligned"


class Classification(StrEnum):
    """Ordered from least to most sensitive; see :meth:`rank`."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    PII = "pii"

    @property
    def rank(self) -> int:
        return list(Classification).index(self)


class Compatibility(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"


class CleanupPolicy(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"
    COMPACT_DELETE = "compact,delete"


class Owner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    team: StrictStr = Field(min_length=1, description="Owning team within the domain.")
    contact: StrictStr = Field(
        min_length=1, description="Where to reach the team (email, channel)."
    )


_SLO_VALUES = {
    "availability": "a percentage between 0 and 100, e.g. 99.9",
    "freshness_seconds": "a number of seconds above 0, e.g. 5",
    "max_dlq_ratio": "a ratio from 0 to 1, e.g. 0.01, or leave it out",
    "max_lag_seconds": "a number of seconds above 0, e.g. 60, or leave it out",
    "min_records_per_minute": "a number of records from 0 up, e.g. 10, or leave it out",
}
"""What each SLO wants instead of NaN."""


class Slos(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    freshness_seconds: StrictFloat = Field(
        gt=0, description="Max delay from event time to availability on the topic."
    )
    availability: StrictFloat = Field(gt=0, le=100, description="Availability target in percent.")
    max_dlq_ratio: StrictFloat | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Most dead letters per record read, over a minute (0.01 = 1 %); unset = "
        "not judged.",
    )
    max_lag_seconds: StrictFloat | None = Field(
        default=None,
        gt=0,
        description="Longest a registered consumer group or downstream processor may lag "
        "behind the newest record, in seconds; unset = not judged.",
    )
    min_records_per_minute: StrictFloat | None = Field(
        default=None,
        ge=0,
        description="Fewest records a minute the product should carry; unset = not judged.",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _not_nan(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's ``.nan`` fails every bound check, so the bound's message ("should be less
        than or equal to 100") would send the author the wrong way: say it is not a number."""
        if isinstance(value, float) and math.isnan(value):
            name = info.field_name or "the value"
            want = _SLO_VALUES.get(name, "a number")
            raise PydanticCustomError("not_a_number", f"{name} is NaN (not a number): give {want}")
        return value


class Retention(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ms: StrictInt = Field(
        default=7 * 24 * 3600 * 1000, ge=-1, description="retention.ms; -1 = forever"
    )
    cleanup_policy: CleanupPolicy = Field(
        default=CleanupPolicy.DELETE,
        description="cleanup.policy: `compact` keeps each key's latest record (upserts).",
    )


class RuleFailure(StrEnum):
    """What happens to a record that fails a quality rule (Confluent's rule actions)."""

    ERROR = "ERROR"
    DLQ = "DLQ"


class QualityRule(BaseModel):
    """A data-quality rule: a CEL expression over the record (``message``) that must hold.

    Compiled into the Confluent ``ruleSet.domainRules`` of the registered schema (kind
    CONDITION, type CEL, mode WRITE), so mesh-stream's publisher and Confluent's serializers
    evaluate the same rule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr = Field(description="Rule name, unique in the product (lowercase, `-`).")
    expr: StrictStr = Field(
        min_length=1,
        description="CEL expression over the record as `message`, true when the record is "
        "good, e.g. `message.total_amount >= 0`.",
    )
    doc: StrictStr | None = Field(default=None, description="Why the rule exists, for people.")
    on_failure: RuleFailure = Field(
        default=RuleFailure.ERROR,
        description="`ERROR`: the publish is refused; `DLQ`: the record goes to the product's "
        "dead-letter topic with `__rule.*` headers and the rest of the batch goes on.",
    )

    @field_validator("name")
    @classmethod
    def _check_rule_name(cls, value: str) -> str:
        if not re.fullmatch(NAME_PART, value):
            raise ValueError(f"rule name {value!r} is not lowercase words joined by `-`")
        return value

    @field_validator("expr")
    @classmethod
    def _check_rule_expr(cls, value: str) -> str:
        from mesh_stream.contracts.cel import check_expression  # imports CEL: rules only

        problem = check_expression(value)
        if problem is not None:
            raise ValueError(f"not valid CEL: {problem}")
        return value


class DataProduct(BaseModel):
    """One data product: a versioned Avro-typed Kafka topic with an owner and a contract.

    Scalar fields are strict types: ``partitions: true``, ``version: "2"`` or ``1.0`` and
    ``description: 3`` are errors, not silently converted (YAML ints are ints already).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    name: StrictStr = Field(description="`<domain>.<product>`, lowercase, `-` inside words.")
    domain: StrictStr = Field(description="The owning domain; the part of `name` before the dot.")
    kind: ProductKind = Field(
        description="source-aligned (the domain's own facts), or aggregate / consumer-aligned "
        "(built from `inputs`)."
    )
    description: StrictStr = Field(
        min_length=1,
        max_length=MAX_DESCRIPTION_CHARS,
        description="What a record means, for people.",
    )
    owner: Owner = Field(description="Who answers for the product.")
    version: StrictInt = Field(
        default=1, ge=1, description="Major version; part of the topic name."
    )
    schema_file: StrictStr = Field(
        alias="schema", description="Path of the `.avsc`, relative to the project root."
    )
    key_field: StrictStr | None = Field(
        default=None,
        description="Top-level record field whose value is the Kafka key, as the text of "
        "what Avro writes: a string, uuid or enum symbol as written; an int, long, "
        "date (days) or timestamp (epoch ms or µs) as its digits.",
    )
    partitions: StrictInt = Field(default=3, ge=1, description="Partitions of the topic.")
    replication_factor: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Copies of each partition; unset = the cluster's default.replication.factor.",
    )
    retention: Retention = Field(default_factory=Retention, description="How long records stay.")
    slos: Slos = Field(description="What consumers may rely on.")
    classification: Classification = Field(
        description="Sensitivity. `pii` limits reading to the domain and its `readers` (the "
        "ACL plan) and holds lineage to it; `public`, `internal` and `confidential` label the "
        "product for its consumers and every domain may read it."
    )
    tags: tuple[StrictStr, ...] = Field(default=(), description="Words to find it by.")
    inputs: tuple[StrictStr, ...] = Field(
        default=(), description="Products this one is built from (its lineage)."
    )
    compatibility: Compatibility | None = Field(
        default=None,
        description="Schema evolution rule the registry enforces on the value subject. Unset: "
        "FULL_TRANSITIVE once another product reads this one, else BACKWARD. A weaker level on "
        "a product others read needs `compatibility_reason`.",
    )
    compatibility_reason: StrictStr | None = Field(
        default=None,
        min_length=1,
        description="Why a product other products read evolves under a level weaker than "
        "FULL_TRANSITIVE (the domain's override of the consumer-protection policy).",
    )
    rules: tuple[QualityRule, ...] = Field(
        default=(),
        description="Data-quality rules (CEL) every published record must pass; registered "
        "with the schema as its Confluent ruleSet.",
    )
    readers: tuple[StrictStr, ...] = Field(
        default=(),
        description="For a `pii` product: the other domains allowed to read it (its own domain "
        "always may); `mesh acl apply` grants them READ at the broker. Every domain may read "
        "products of the other classifications.",
    )
    field_lineage: dict[StrictStr, tuple[StrictStr, ...]] = Field(
        default_factory=dict,
        description="Field-level lineage declared by a processor: output field -> the input "
        "fields it is computed from, each `<product>:<field>` (e.g. "
        "`customers.customer-profile:region`).",
    )

    @field_validator("compatibility_reason")
    @classmethod
    def _check_reason(cls, value: str | None) -> str | None:
        return None if value is None else said_why(value)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        problem = product_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("inputs")
    @classmethod
    def _check_inputs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not PRODUCT_NAME.match(item):
                raise ValueError(f"input {item!r} is not a product name `<domain>.<product>`")
        return value

    @field_validator("readers")
    @classmethod
    def _check_readers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.fullmatch(NAME_PART, item):
                raise ValueError(f"reader {item!r} is not a domain name (e.g. analytics)")
        return value

    @field_validator("field_lineage")
    @classmethod
    def _check_field_lineage(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for output, sources in value.items():
            for source in sources:
                product, _, field = source.partition(":")
                if not PRODUCT_NAME.match(product) or not field:
                    raise ValueError(
                        f"field_lineage.{output}: {source!r} is not `<product>:<field>`"
                    )
        return value

    @field_validator("rules")
    @classmethod
    def _check_rule_names(cls, value: tuple[QualityRule, ...]) -> tuple[QualityRule, ...]:
        names = [rule.name for rule in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"rule names must be unique; given more than once: {twice}")
        return value

    @model_validator(mode="after")
    def _domain_matches_name(self) -> DataProduct:
        if self.name.split(".", 1)[0] != self.domain:
            raise ValueError(
                f"name {self.name!r} must start with its domain {self.domain!r} "
                f"(a product belongs to exactly one domain)"
            )
        return self

    @model_validator(mode="after")
    def _fits_the_registry(self) -> DataProduct:
        """A descriptor the registry would refuse as too large (HTTP 413) is refused here,
        before `mesh products apply` has created its topic and registered its schema."""
        size = len(json.dumps(self.to_document(), ensure_ascii=False).encode())
        if size > MAX_DESCRIPTOR_BYTES:
            raise ValueError(
                f"the descriptor takes {size:,} bytes as JSON, over the {MAX_DESCRIPTOR_BYTES:,} "
                f"a descriptor may take; keep long documentation in the schema's docs or a "
                f"linked page"
            )
        return self

    @property
    def compatibility_level(self) -> Compatibility:
        """The level set on the value subject: the declared one, else BACKWARD (the registry's
        consumer-protection policy adds FULL_TRANSITIVE checks once others read the product)."""
        return self.compatibility or Compatibility.BACKWARD

    def required_compatibility(self, *, has_consumers: bool) -> Compatibility:
        """The level evolution must meet: the declared one, else FULL_TRANSITIVE when other
        products read this one, else BACKWARD."""
        if self.compatibility is not None:
            return self.compatibility
        return Compatibility.FULL_TRANSITIVE if has_consumers else Compatibility.BACKWARD

    @property
    def topic(self) -> str:
        return f"{self.name}.v{self.version}"

    @property
    def value_subject(self) -> str:
        return f"{self.topic}-value"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    def schema_path(self, root: Path) -> Path:
        """The ``.avsc`` of this product in the project at ``root``: the one place a
        descriptor's ``schema`` becomes a file, so none is read from outside the project
        (an absolute path, ``..`` or a symlink leaving it), where a parse error would quote
        a file that is none of the project's."""
        path = root / self.schema_file
        try:
            inside = path.resolve().is_relative_to(root.resolve())
        except (OSError, RuntimeError, ValueError) as exc:  # a loop, a name too long, NUL
            problem = "a symlink loop" if isinstance(exc, RuntimeError) else str(exc)
            raise SchemaError(
                f"{self.name}: schema: {self.schema_file!r} cannot be used ({problem})"
            ) from exc
        if not inside:
            raise SchemaError(
                f"{self.name}: schema: {self.schema_file!r} lies outside the project at {root} "
                f"(an absolute path, `..` or a symlink leaving it); the descriptor's `schema` "
                f"must be a path inside the project"
            )
        return path

    def to_document(self) -> dict[str, Any]:
        """The descriptor as plain JSON-able data, with the YAML field names.

        Unset optional fields (``replication_factor``, ``compatibility``, its reason, no
        ``rules``) are left out, so documents stored before they existed and documents
        written now look the same.
        """
        document = self.model_dump(mode="json", by_alias=True)
        for optional in ("replication_factor", "compatibility", "compatibility_reason"):
            if document.get(optional) is None:
                document.pop(optional, None)
        if not document.get("rules"):
            document.pop("rules", None)
        return document


def said_why(reason: str) -> str:
    """``reason`` when it says something: a reason of blanks alone is refused (a weaker
    level, an override or an exception must say why)."""
    if not reason.strip():
        raise ValueError("is blank: say why, in words")
    return reason


def topic_for(product_name: str, version: int = 1) -> str:
    return f"{product_name}.v{version}"


# -- loading -------------------------------------------------------------------------------


def line_of(node: yaml.Node | None, loc: Iterable[int | str]) -> int | None:
    """1-based line of the YAML node at pydantic location ``loc`` (nearest parent found)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        else:
            child = None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


_Model = TypeVar("_Model", bound=BaseModel)


def _second_key(node: yaml.MappingNode) -> tuple[yaml.ScalarNode, int] | None:
    """The first key given twice in a mapping (its second node) and the line of its first;
    a merge key (``<<``) is not one: keys after it override what it merges, as YAML says."""
    first_line: dict[str, int] = {}
    for key, _value in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if key.value in first_line:
            return key, first_line[key.value]
        first_line[key.value] = key.start_mark.line + 1
    return None


def repeated_key(node: yaml.MappingNode) -> tuple[str, int, int] | None:
    """The first key given twice in a YAML mapping, as (key, its line, the first line), or
    None: YAML keeps the last of two equal keys silently, which hides a mistake."""
    found = _second_key(node)
    if found is None:
        return None
    key, first = found
    return key.value, key.start_mark.line + 1, first


class RepeatedKeyError(yaml.constructor.ConstructorError):
    """A mapping gives a key twice; ``problem`` says which and where it first was."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in a mapping is an error: YAML
    keeps the last one silently, so ``classification: pii`` followed by
    ``classification: public`` would quietly be public."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        found = _second_key(node)
        if found is not None:
            key, first = found
            problem = f"{key.value}: given twice (first on line {first}); keep one"
            raise RepeatedKeyError(None, None, problem, key.start_mark)
        return super().construct_mapping(node, deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value, or an error at its line when its constructor refuses it (a date out of
        range: PyYAML's constructors raise plain ValueErrors, which carry no line)."""
        try:
            return super().construct_object(node, deep)
        except ValueError as exc:
            problem = (str(exc).splitlines() or [repr(exc)])[0]
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        """An int, or an error at its line when it has more digits than Python reads."""
        try:
            return super().construct_yaml_int(node)
        except ValueError as exc:
            digits = sum(c.isdigit() for c in str(node.value))
            most = sys.get_int_max_str_digits()
            problem = f"a number of {digits} digits, more than the {most} Python reads"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses a mapping key given twice (:class:`RepeatedKeyError`,
    a ``yaml.YAMLError`` whose ``problem_mark`` is the second one's line). Descriptors,
    ``mesh.yaml`` and policy files are read through it."""
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects


def yaml_problem(exc: BaseException) -> str:
    """What is wrong with YAML that :func:`load_yaml` refused, for after its ``file:line``."""
    if isinstance(exc, RecursionError):
        return "not valid YAML: nested too deeply"
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [repr(exc)])[0]
    if isinstance(exc, RepeatedKeyError):
        return str(problem)
    # PyYAML finds an unclosed `[` or `{` only at the next line's key: say where it opened
    context, opened, found = (
        getattr(exc, "context", None),
        getattr(exc, "context_mark", None),
        getattr(exc, "problem_mark", None),
    )
    if (
        str(context).startswith("while parsing a flow")
        and opened is not None
        and found is not None
        and opened.line != found.line
    ):
        what = str(context).removeprefix("while parsing a ")
        problem = f"{problem} (in the {what} that starts on line {opened.line + 1})"
    return f"not valid YAML: {problem}"


def validate_yaml(
    text: str,
    source: str,
    model: type[_Model],
    error: type[MeshError],
    what: str,
    *,
    empty_is_defaults: bool = False,
) -> _Model:
    """Validate YAML ``text`` as ``model``; every problem is ``source:line: field.path: msg``.

    Shared by descriptors and ``mesh.yaml`` so both point at file:line the same way;
    ``what`` names the document in the message ("a descriptor", "mesh.yaml");
    ``empty_is_defaults`` lets an empty file stand for a model whose fields all default.
    """
    try:
        node = yaml.compose(text)
        data = load_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        # ValueError: a scalar YAML resolves but cannot build, e.g. the date 2026-02-30;
        # RecursionError: absurdly deep nesting.
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise error(f"{where}: {yaml_problem(exc)}") from exc
    if data is None and empty_is_defaults:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{source}: {what} must be a YAML mapping of fields")
    untext = non_text_key(node)
    if untext is not None:
        key, path = untext
        raise error(f"{source}:{key.start_mark.line + 1}: {path}{key_problem(key)}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            loc = [part for part in item["loc"] if isinstance(part, (int, str))]
            path = ".".join(str(part) for part in loc) or f"({what})"
            line = line_of(node, loc)
            where = f"{source}:{line}" if line else source
            problem = field_problem(item)
            if item.get("type") == "extra_forbidden" and len(loc) == 1:
                problem = _unknown_field(str(loc[0]), model, what)
            problems.append(f"{where}: {path}: {problem}")
        raise error("\n".join(problems)) from exc


def _unknown_field(name: str, model: type[BaseModel], what: str) -> str:
    """A top-level key ``model`` has no field for, with the nearest field name when one is
    close (``prodcuts``: did you mean ``products``?)."""
    known = [info.alias or field for field, info in model.model_fields.items()]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if close:
        return f"not a field of {what}; did you mean {close[0]}?"
    return f"not a field of {what} (its fields: {', '.join(sorted(known))})"


_TAG_WORDS = {
    "bool": "a boolean",
    "null": "null (no value)",
    "int": "a number",
    "float": "a number",
    "timestamp": "a date",
}


def non_text_key(node: yaml.Node | None) -> tuple[yaml.Node, str] | None:
    """The first mapping key YAML reads as something other than text (``yes:``, ``~:``,
    ``1:``), with the path of the mapping holding it (``slos.``), or None. Every key of the
    documents mesh reads is a name; pydantic would only say "Keys should be strings" at the
    mapping's first line."""
    stack: list[tuple[yaml.Node, str]] = [(node, "")] if node is not None else []
    seen: set[int] = set()  # an alias makes the same node a child twice, or of itself
    found: list[tuple[yaml.Node, str]] = []
    while stack:
        current, path = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    stack.append((value, path))  # what it merges are this mapping's keys
                elif key.tag != "tag:yaml.org,2002:str":
                    found.append((key, path))
                else:
                    stack.append((value, f"{path}{key.value}."))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(
                (item, f"{path.rstrip('.')}[{n}].") for n, item in enumerate(current.value)
            )
    return min(found, key=lambda item: item[0].start_mark.index, default=None)


def key_problem(key: yaml.Node) -> str:
    """``yes: YAML reads this key as a boolean, ...``: the key and what YAML made of it (a
    list or mapping as a key never gets here: the loader refuses it as unhashable)."""
    kind = _TAG_WORDS.get(key.tag.rsplit(":", 1)[-1], "a value other than text")
    return (
        f'{key.value}: YAML reads this key as {kind}, not a name; quote it ("{key.value}":) '
        f"or fix its spelling"
    )


def field_problem(item: Mapping[str, Any]) -> str:
    """pydantic's words for one problem of a YAML field, said in YAML's terms where pydantic
    speaks Python's ("Input should be a valid tuple" for `domains: orders`)."""
    kind = item.get("type")
    if kind in ("tuple_type", "list_type", "set_type"):
        given = _yaml_kind(item.get("input"))
        return f"must be a list (`[a, b]`, or one `- item` per line), not {given}"
    wanted = _YAML_WANTED.get(str(kind))
    if wanted is not None:
        return f"must be {wanted}, not {_yaml_kind(item.get('input'))}"
    return validation_problem(item)


#: What a field of a YAML document must be, by pydantic's error type, where pydantic says
#: "Input should be a valid string/dictionary/integer" (Python's words, h49).
_YAML_WANTED = {
    "string_type": "text",
    "dict_type": "a mapping (`key: value` lines)",
    "model_type": "a mapping (`key: value` lines)",
    "model_attributes_type": "a mapping (`key: value` lines)",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def _yaml_kind(value: Any) -> str:
    """What a YAML value is, in YAML's words."""
    if isinstance(value, str):
        return f"the text {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if value is None:
        return "an empty value (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "a mapping (`key: value` lines)"
    return f"a {type(value).__name__}"


def parse_descriptor(text: str, source: str = "<string>") -> DataProduct:
    """Validate descriptor YAML; errors name ``source:line: field.path: problem``."""
    product = validate_yaml(text, source, DataProduct, DescriptorError, "a descriptor")
    _SOURCES[id(product)] = (source, text)
    weakref.finalize(product, _SOURCES.pop, id(product), None)
    return product


#: The file name and text each parsed descriptor came from, by the object's id (forgotten
#: with the object; not a field, which would make equal descriptors unequal), so that a
#: check made later, the publisher's of ``key_field`` against the schema, says file:line.
_SOURCES: dict[int, tuple[str, str]] = {}


def where_in_descriptor(product: DataProduct, *loc: str | int) -> str | None:
    """``file:line`` of field ``loc`` in the descriptor ``product`` was parsed from (just
    the file when the line is not found); None for a product built in code or read from
    the registry."""
    found = _SOURCES.get(id(product))
    if found is None:
        return None
    source, text = found
    try:
        line = line_of(yaml.compose(text), loc)
    except (yaml.YAMLError, RecursionError):
        line = None
    return f"{source}:{line}" if line else source


def load_descriptor(path: Path | str) -> DataProduct:
    """Read and validate one descriptor file (a path, or its text as a str path)."""
    path = _as_path("load_descriptor", path)
    try:
        text = read_descriptor_text(path)
    except DescriptorError as exc:
        raise DescriptorError(f"{path}: {exc}") from exc
    return parse_descriptor(text, str(path))


def _as_path(function: str, path: object) -> Path:
    """``path`` as a Path (a str is one); anything else is a DescriptorError naming it."""
    if isinstance(path, str):
        return Path(path)
    if not isinstance(path, Path):
        raise DescriptorError(
            f"{function} needs a file path (a pathlib.Path or a str), got {type(path).__name__}"
        )
    return path


def read_descriptor_text(path: Path) -> str:
    """The text of a descriptor file, or a :class:`DescriptorError` saying why it cannot be
    read (without the path: each caller names the file its own way)."""
    try:
        return read_regular_text(path)
    except NotRegularFileError as exc:
        raise DescriptorError(
            f"cannot read descriptor: {exc.strerror}; a descriptor is a regular YAML file: "
            f"remove this one or replace it with one"
        ) from exc
    except OSError as exc:
        raise DescriptorError(f"cannot read descriptor: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DescriptorError(f"cannot read descriptor: {not_utf8(exc)}; save it as UTF-8") from exc


DESCRIPTOR_SUFFIXES = (".yaml", ".yml")


def is_hidden(name: str) -> bool:
    """A name starting with ``.``: never a descriptor or a domain folder, however it ends.
    Editors and tools leave such files beside the real ones (``.orders.yaml.swp``, Emacs's
    ``.#orders.yaml`` lock link, macOS's ``._orders.yaml`` copies, a ``.orders.yaml``
    backup), and reading one as a descriptor would report a product twice or a file that
    is not YAML."""
    return name.startswith(".")


def is_descriptor_name(name: str) -> bool:
    """Whether a file named ``name`` in a ``products/`` folder is read as a descriptor: it
    ends in ``.yaml`` or ``.yml`` and is not hidden (:func:`is_hidden`)."""
    return name.endswith(DESCRIPTOR_SUFFIXES) and not is_hidden(name)


def _folder_entries(folder: Path, problems: list[str]) -> list[os.DirEntry[str]]:
    """The entries of ``folder``; one it cannot list is a problem (named with the OS's reason)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as exc:
        problems.append(
            f"{folder}: cannot read the folder ({exc.strerror or exc}), so the descriptors in "
            f"it are not seen; make it readable (or remove it)"
        )
        return []


def _products_folder(domain: Path, problems: list[str]) -> Path | None:
    """``domain/products`` when it is a folder; None when the domain has none. Anything
    else there (a file, a FIFO, a broken link) or a domain folder that cannot be searched
    is a problem: a domain must not vanish from the mesh without a word."""
    folder = domain / "products"
    try:
        mode = folder.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ENOENT and not folder.is_symlink():
            return None  # no products folder (e.g. __pycache__): not a domain of products
        reason = "a broken symlink" if exc.errno == errno.ENOENT else exc.strerror or str(exc)
        problems.append(
            f"{folder}: cannot read the folder ({reason}), so the descriptors in it are not "
            f"seen; make it readable (or remove it)"
        )
        return None
    if not stat.S_ISDIR(mode):
        problems.append(
            f"{folder}: not a folder, so no descriptor in it is seen; descriptors go in "
            f"{folder}/<product>.yaml"
        )
        return None
    return folder


def _dangling_link(link: Path, problems: list[str]) -> None:
    """A problem when ``link`` (a symlink in the domains folder) leads nowhere readable: it
    is most likely a domain folder kept elsewhere, and must not vanish without a word."""
    try:
        link.stat()
    except OSError as exc:
        reason = "a broken symlink" if exc.errno == errno.ENOENT else exc.strerror or str(exc)
        problems.append(
            f"{link}: cannot read the folder ({reason}), so the descriptors of domain "
            f"{link.name!r} are not seen; fix the link (or remove it)"
        )


def descriptor_files(domains_dir: Path) -> list[Path]:
    """Every descriptor under ``domains/<domain>/products/`` (``.yaml`` files, then ``.yml``),
    each group sorted. Hidden names (starting with ``.``, :func:`is_hidden`) are skipped, as
    files and as domain folders.

    The one place descriptors are discovered (lint, plan, apply, up, ... all come here). A
    folder on that path that cannot be read (permissions, a broken link, not a folder) is a
    :class:`DescriptorError` naming every such folder and the OS's reason, never a domain
    silently left out. A ``domains_dir`` that does not exist holds no descriptors.
    """
    try:
        domains_dir.lstat()
    except FileNotFoundError:
        return []
    except OSError:
        pass  # scandir below says why
    problems: list[str] = []
    found: list[Path] = []
    for entry in _folder_entries(domains_dir, problems):
        if is_hidden(entry.name):  # .git
            continue
        if not entry.is_dir():  # runnables.py, README.md; but a link to nothing without a
            if entry.is_symlink() and "." not in entry.name:  # file's suffix: a domain lost
                _dangling_link(domains_dir / entry.name, problems)
            continue
        products = _products_folder(domains_dir / entry.name, problems)
        if products is not None:
            found.extend(
                products / item.name
                for item in _folder_entries(products, problems)
                if is_descriptor_name(item.name)
            )
    if problems:
        raise DescriptorError("\n".join(problems))
    return [
        *sorted(p for p in found if p.suffix == ".yaml"),
        *sorted(p for p in found if p.suffix == ".yml"),
    ]


def described_twice(name: str, first: Path | str) -> str:
    """Why a second descriptor of product ``name`` is refused (the first is ``first``)."""
    return (
        f"product {name!r} is also described by {first}; a product has one descriptor (each "
        f"tool would take one of the two): remove one"
    )


def load_descriptors(domains_dir: Path | str, *, missing_ok: bool = False) -> list[DataProduct]:
    """Load every descriptor below ``domains_dir``; all errors are reported together. A
    folder that does not exist is a :class:`DescriptorError` (a mistyped path read as "no
    products", h53), unless ``missing_ok`` (a project with no product yet)."""
    domains_dir = _as_path("load_descriptors", domains_dir)
    if not missing_ok and not os.path.lexists(domains_dir):
        raise DescriptorError(
            f"{domains_dir}: no such folder; load_descriptors reads the folder holding "
            f"<domain>/products/*.yaml (a project's `products` folder, `domains` by default)"
        )
    products: list[DataProduct] = []
    errors: list[str] = []
    first: dict[str, Path] = {}
    for path in descriptor_files(domains_dir):
        try:
            product = load_descriptor(path)
        except DescriptorError as exc:
            errors.append(str(exc))
            continue
        if path.parent.parent.name != product.domain:
            errors.append(
                f"{path}: domain: {product.domain!r} lives in the folder of domain "
                f"{path.parent.parent.name!r}; move it to domains/{product.domain}/products/"
            )
            continue
        if product.name in first:
            errors.append(f"{path}: name: {described_twice(product.name, first[product.name])}")
            continue
        first[product.name] = path
        products.append(product)
    if errors:
        raise DescriptorError("\n".join(errors))
    return products


# -- resolving products by name ---------------------------------------------------------


def _from_registry_document(document: Mapping[str, Any]) -> DataProduct:
    known = {info.alias or name for name, info in DataProduct.model_fields.items()}
    return DataProduct.model_validate({k: v for k, v in document.items() if k in known})


def _local_descriptor(name: str, folder: Path, short: str) -> DataProduct | None:
    for suffix in DESCRIPTOR_SUFFIXES:
        candidate = folder / f"{short}{suffix}"
        if candidate.exists():
            product = load_descriptor(candidate)
            if product.name == name:
                return product
    try:
        others = sorted(p for p in folder.iterdir() if is_descriptor_name(p.name))
    except OSError:  # no such folder, or one that cannot be listed: the registry is next
        others = []
    for path in others:
        with contextlib.suppress(DescriptorError):
            product = load_descriptor(path)
            if product.name == name:
                return product
    return None


def topic_name_hint(name: str) -> str:
    """What ``name`` is when it is a product's topic (``orders.order-placed.v1``) or
    dead-letter topic (``....v1.dlq``) rather than its name, as a clause to add to the
    refusal ("; that is ..."); empty for anything else."""
    found = re.fullmatch(r"(?P<product>[^.]+\.[^.]+)(\.v(?P<major>[1-9]\d*))?(?P<dlq>\.dlq)?", name)
    if found is None or not (found["major"] or found["dlq"]):
        return ""
    product, major = found["product"], int(found["major"] or 1)
    if not PRODUCT_NAME.match(product):
        return ""
    of = f"product {product}" + (f" (major {major})" if major > 1 else "")
    if found["dlq"]:
        option = f" --major {major}" if major > 1 else ""
        return (
            f"; that is the dead-letter topic of {of}: `mesh tail {product}{option} "
            f"--dead-letters` reads it"
        )
    return f"; that is the topic of {of}: name the product" + (
        f", with major {major} (`--major {major}`, `major={major}`)" if major > 1 else ""
    )


def resolve_product(
    name: str | DataProduct,
    *,
    registry: ProductSource | None = None,
    root: Path | None = Path("."),
    products_dir: Path | None = None,
) -> DataProduct:
    """A product by name: from ``root/domains/<domain>/products/`` first, else the registry.

    The local descriptor ``domains/<domain>/products/<product>.yaml`` wins (it is what the
    owning domain ships); other files of the domain are searched next, then the registry.
    ``root=None`` asks the registry only; ``products_dir`` replaces ``root/domains`` (a
    project's ``products`` folder, see :mod:`mesh_stream.project`).
    """
    if isinstance(name, DataProduct):
        return name
    if len(name) > MAX_PRODUCT_NAME:
        raise ConfigurationError(f"product name {product_name_problem(name)}")
    match = PRODUCT_NAME.match(name)
    if match is None:
        raise ConfigurationError(
            f"{name!r} is not a product name `<domain>.<product>` (e.g. orders.order-placed)"
            + topic_name_hint(name)
        )
    folder = (products_dir or (root or Path(".")) / "domains") / match["domain"] / "products"
    if root is not None:
        local = _local_descriptor(name, folder, match["product"])
        if local is not None:
            return local
    if registry is not None:
        try:
            return _from_registry_document(registry.get_product(name))
        except ProductNotFoundError:
            pass
    where = f"the registry at {registry.url}" if registry is not None else "no registry"
    looked = f"no descriptor in {folder} and " if root is not None else ""
    raise ProductNotFoundError(
        f"product {name} not found: {looked}{where} does not know it; "
        f"check the name with `mesh products list`, run inside the project holding its "
        f"descriptor (mesh.yaml), or register it there first (`mesh products apply`)",
        status=404,
        error_code=40404,
    )
