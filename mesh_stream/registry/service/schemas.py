"""The schema face's domain core: subjects, versions, ids and compatibility, with no HTTP.

It follows Confluent Schema Registry's rules: the same schema text (after normalisation)
always has the same id, in any subject; registering a schema a subject already has returns
the existing version; soft deletes hide versions, permanent deletes need a soft delete first;
compatibility is checked against live (not soft-deleted) versions only. A version's Confluent
contract (``metadata``, ``ruleSet``; :mod:`.contracts`) is part of its schema's identity, and
a register request that omits a part inherits the subject's latest version's.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from mesh_stream.contracts.cel import field_paths_named, syntax_problem
from mesh_stream.descriptor import Compatibility
from mesh_stream.errors import (
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidRequestError,
    InvalidSchemaError,
    InvalidSubjectNameError,
    InvalidVersionError,
    OperationNotPermittedError,
    ProductInUseError,
    ReferenceExistsError,
    SchemaError,
    SchemaNotFoundError,
    SubjectConfigNotFoundError,
    SubjectModeNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from mesh_stream.governance.avro_walk import selection_problem
from mesh_stream.registry.service.auth import domain_of
from mesh_stream.registry.service.contexts import (
    ANY_CONTEXT,
    canonical_subject,
    contexts_in_use,
    owned_name,
)
from mesh_stream.registry.service.contracts import (
    CONFIG_PARTS,
    NO_CONTRACT,
    Contract,
    check_config_parts,
    check_references,
    inherit,
    requested,
    with_config,
)
from mesh_stream.registry.service.modes import Mode, effective_mode, parse_mode
from mesh_stream.registry.service.state import Record, RegistryState, SubjectVersion
from mesh_stream.registry.service.store import RegistryStore
from mesh_stream.schema.avro import AvroSchema, compatibility_problems, normalize, parse_schema
from mesh_stream.schema.wire import MAX_SIGNED_SCHEMA_ID

DEFAULT_COMPATIBILITY = Compatibility.BACKWARD
MAX_SUBJECT_LENGTH = 255
MAX_VERSION = 2**31 - 1
#: Deepest chain of schema references (A references B references C ...).
MAX_REFERENCE_DEPTH = 32
T = TypeVar("T")


def check_subject_name(subject: str) -> str:
    """The subject's stored name (:func:`.contexts.canonical_subject`), or a 42215 for names that
    could not be a topic-derived subject or could escape a path.

    Empty, over-long, control or separator characters (lone surrogates included), path
    separators, `..` anywhere and empty dot segments (also just before a `-key`/`-value`
    suffix, whose topic would end with `.`). Bytes that are not UTF-8 never reach
    here: the HTTP edge refuses such a URL before decoding it (edge.check_url).
    """
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidSubjectNameError(
            f"subject name must be 1 to {MAX_SUBJECT_LENGTH} characters, got {len(subject)}"
        )
    bad = [c for c in subject if unicodedata.category(c).startswith(("C", "Z")) and c != " "]
    if bad or subject != subject.strip():
        raise InvalidSubjectNameError(
            f"subject name {subject!r} contains control, separator or surrounding blank characters"
        )
    if "/" in subject or "\\" in subject:
        raise InvalidSubjectNameError(f"subject name {subject!r} contains a path separator")
    if ".." in subject:
        raise InvalidSubjectNameError(
            f"subject name {subject!r} contains `..`; subjects are dot-separated names "
            f"(e.g. orders.order-placed.v1-value)"
        )
    topic = subject.removesuffix("-value").removesuffix("-key")  # TopicNameStrategy's suffix
    if "" in subject.split(".") or "" in topic.split("."):
        raise InvalidSubjectNameError(
            f"subject name {subject!r} starts or ends with `.` (an empty segment"
            f"{'' if topic == subject else ' before its -key/-value suffix'}); subjects are "
            f"dot-separated names (e.g. orders.order-placed.v1-value)"
        )
    return canonical_subject(subject)


def check_new_subject_name(subject: str) -> None:
    """A 42215 for a new subject whose name is not in Unicode's composed form (NFC): ``café``
    written with a combining accent would be a second subject that reads like the first. A
    subject already stored keeps its name (reads, new versions, deletes), and an import
    keeps the source registry's names."""
    composed = unicodedata.normalize("NFC", subject)
    if composed != subject:
        raise InvalidSubjectNameError(
            f"subject name {subject!r} is not in Unicode's composed form (NFC); register it as "
            f"{composed!r}, which reads the same"
        )


def matches_prefix(subject: str, prefix: str) -> bool:
    """Confluent's ``subjectPrefix``: empty or ``:*:`` is every context, ``:.:x`` the default
    context's subjects starting with ``x``, anything else a plain prefix."""
    if prefix in ("", ANY_CONTEXT):
        return True
    if prefix.startswith(":.:"):
        return not subject.startswith(":") and subject.startswith(prefix[3:])
    return subject.startswith(prefix)


def parse_version(version: str | int) -> int | None:
    """A version number, or None for ``latest`` / -1; anything else is Confluent 42202."""
    text = str(version).strip()
    if text in ("latest", "-1"):
        return None
    if text.isascii() and text.isdigit() and len(text) <= 10:
        number = int(text)
        if 1 <= number <= MAX_VERSION:
            return number
    raise InvalidVersionError(
        f"The specified version {str(version)[:40]!r} is not a valid version id. Allowed values "
        f'are between [1, {MAX_VERSION}] and the string "latest"'
    )


def parse_level(level: object) -> Compatibility:
    try:
        return Compatibility(str(level).upper())
    except ValueError:
        allowed = ", ".join(c.value for c in Compatibility)
        raise InvalidCompatibilityLevelError(
            f"Invalid compatibility level {str(level)[:40]!r}; use one of {allowed}"
        ) from None


@dataclass(frozen=True)
class SchemaVersion:
    """A subject version with its schema text, as the API returns it."""

    subject: str
    version: int
    schema_id: int
    schema: str
    contract: Contract = NO_CONTRACT
    guid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
        }
        if self.guid is not None:
            found["guid"] = self.guid
        return {**found, "schema": self.schema, **self.contract.to_record()}


def page(items: Sequence[T], offset: int, limit: int) -> list[T]:
    """Confluent's pagination: skip ``offset`` items, then at most ``limit`` (negative: all)."""
    rest = list(items[max(offset, 0) :])
    return rest if limit < 0 else rest[:limit]


#: Confluent config fields whose one value this registry always applies: taken when sent so.
ALWAYS_APPLIED = {"normalize": True, "validateFields": True}


def _refuse_unkept_config(document: Mapping[str, Any]) -> None:
    """Refuse a config field the registry would not keep (Confluent's ``alias``,
    ``compatibilityGroup``, ``normalize: false``, a misspelt level, ...): a 200 that drops
    it would let the sender believe it applies."""
    kept = {"compatibility", "compatibilityLevel", *CONFIG_PARTS}
    unkept = [
        f"{key}={json.dumps(value)[:60]}"
        for key, value in document.items()
        if key not in kept and value is not None and ALWAYS_APPLIED.get(key) is not value
    ]
    if unkept:
        raise InvalidRequestError(
            f"config field(s) this registry does not keep: {', '.join(unkept)}; it takes "
            f"compatibility (or compatibilityLevel), {', '.join(CONFIG_PARTS)}, and normalize "
            f"and validateFields as true only (it always normalizes schemas and checks their "
            f"names)",
            status=422,
            error_code=42203,
        )


class _Prepared(NamedTuple):
    """A register or lookup request's schema, checked (see :meth:`SchemaRegistry._prepare`)."""

    parsed: AvroSchema
    text: str
    resolved: list[dict[str, Any]] | None
    #: Set when today's rules refuse the schema and only the subject holding it takes it.
    refused: InvalidSchemaError | None


#: A product's value subject: ``<product name>.v<major>-value``.
_PRODUCT_SUBJECT = re.compile(r"(.+)\.v([1-9][0-9]*)-value")


def _refuse_rules_no_record_passes(rule_set: Mapping[str, Any] | None, schema: AvroSchema) -> None:
    """A 422 when a CEL rule a new version would carry (sent or inherited) does not parse,
    or a CEL condition reads ``message.<field>`` that no record of ``schema`` has: either
    fails every record, refused or dead-lettered at publish time however good (h44: a ruleSet
    inherited from the previous version kept a rule on a field the new schema dropped).
    ``mesh lint`` refuses the same in a descriptor's ``rules``. Only new versions are judged:
    a lookup, a re-registration of a stored version and an import take what is stored (h46);
    syntax this parser lacks (CEL's optional ``.?``) is not held against a rule."""
    document = schema.to_json()
    if not rule_set or not isinstance(document, Mapping):
        return
    for index, rule in enumerate(rule_set.get("domainRules") or ()):
        if rule.get("type") != "CEL" or rule.get("disabled"):
            continue
        expr = str(rule.get("expr") or "")
        problem = syntax_problem(expr) if expr.strip() else None
        if problem is not None and "unsupported syntax" not in problem:
            raise InvalidSchemaError(
                f"Invalid ruleSet: ruleSet.domainRules[{index}].expr is not CEL: {problem}; "
                f"send an expression that parses"
            )
        if rule.get("kind") != "CONDITION":
            continue
        for path in field_paths_named(expr):
            problem = selection_problem(document, path)
            if problem is not None:
                raise InvalidSchemaError(
                    f"Invalid ruleSet: ruleSet.domainRules[{index}].expr: rule "
                    f"{rule.get('name')!r} reads message.{'.'.join(path)}, but {problem}, so "
                    f"it fails on every record; correct the path, add the field to the schema, "
                    f"test it with has(message.{path[0]}), or send a ruleSet without the rule"
                )


def _major(entry: Any) -> int:
    """The major version a catalog entry's descriptor declares (1 unless it says)."""
    descriptor = entry.get("descriptor") if isinstance(entry, dict) else None
    version = descriptor.get("version", 1) if isinstance(descriptor, dict) else 1
    return version if isinstance(version, int) else 1


def _inputs(entry: Any) -> list[Any]:
    """The inputs a catalog entry's descriptor lists (none when it is not a mapping)."""
    descriptor = entry.get("descriptor") if isinstance(entry, dict) else None
    inputs = descriptor.get("inputs") if isinstance(descriptor, dict) else None
    return inputs if isinstance(inputs, list) else []


class SchemaRegistry:
    """Subjects, versions, schema ids and compatibility config over a :class:`RegistryStore`."""

    def __init__(self, store: RegistryStore, state: RegistryState | None = None) -> None:
        self.store = store
        self.state = state or RegistryState()
        self.write_lock = threading.RLock()
        self._parsed: dict[int, AvroSchema] = {}
        #: Called under the write lock with every schema about to become a new version, after
        #: the compatibility check and before anything is stored; raises to refuse it (the
        #: product catalog installs its governance gate here).
        self.gate: Callable[[str, AvroSchema], None] | None = None
        #: Called like ``gate`` but before the subject-level compatibility check, so a change
        #: that breaks the products reading the subject is refused naming them (409).
        self.consumer_gate: Callable[[str, AvroSchema], None] | None = None

    # -- helpers -----------------------------------------------------------------------

    def parsed(self, schema_id: int) -> AvroSchema:
        if schema_id not in self._parsed:
            # Stored earlier: read leniently, so a stricter release never strands a subject.
            named = self._named_types(self.state.contract(schema_id).references, {schema_id})
            self._parsed[schema_id] = parse_schema(
                self.state.schemas[schema_id], strict=False, named_types=named
            )
        return self._parsed[schema_id]

    def _resolve_references(self, references: Any) -> list[dict[str, Any]] | None:
        """References checked, each naming an existing version (``-1``: the latest, pinned)."""
        checked = check_references(references)
        if checked is None:
            return None
        resolved = []
        for i, reference in enumerate(checked):
            subject, number = reference["subject"], reference["version"]
            try:
                subject = check_subject_name(subject)
            except InvalidSubjectNameError as exc:
                raise InvalidSchemaError(
                    f"Invalid schema: references[{i}].subject: {exc.message}"
                ) from None
            versions = self._all_versions(subject)
            if number == -1:
                live = self._live(subject)
                number = live[-1].version if live else -1
            if number not in versions:
                shown = "latest version" if number == -1 else f"version {number}"
                raise InvalidSchemaError(
                    f"Invalid schema: references[{i}] names the {shown} of subject "
                    f"'{subject}', which does not exist; register the referenced schema "
                    f"first, or fix the reference's subject and version"
                )
            resolved.append({**reference, "subject": subject, "version": number})
        return resolved

    def _named_types(
        self, references: list[dict[str, Any]] | None, seen: set[int] | None = None
    ) -> list[Any]:
        """The referenced schemas (decoded), transitively, dependencies first, each once."""
        found: list[Any] = []
        seen = set() if seen is None else seen

        def collect(refs: list[dict[str, Any]] | None, depth: int) -> None:
            for reference in refs or ():
                record = self._all_versions(reference["subject"]).get(reference["version"])
                if record is None:
                    raise InvalidSchemaError(
                        f"Invalid schema: the referenced version {reference['version']} of "
                        f"subject '{reference['subject']}' no longer exists"
                    )
                if record.schema_id in seen:
                    continue
                if depth > MAX_REFERENCE_DEPTH:
                    raise InvalidSchemaError(
                        f"Invalid schema: references nest more than {MAX_REFERENCE_DEPTH} deep"
                    )
                seen.add(record.schema_id)
                collect(self.state.contract(record.schema_id).references, depth + 1)
                found.append(json.loads(self.state.schemas[record.schema_id]))

        collect(references, 1)
        return found

    def _referrers(self, subject: str, version: int) -> list[int]:
        """Ids of schemas, still used by some version, whose references name this version."""
        ids = self.state.referrers.get((subject, version), frozenset())
        return sorted(i for i in ids if self.state.users.get(i))

    def _refuse_if_referenced(self, subject: str, numbers: Sequence[int]) -> None:
        for number in numbers:
            referrers = self._referrers(subject, number)
            if referrers:
                using = {(s, v) for i in referrers for s, v in self.state.users[i]}
                users = sorted(f"{s} v{v}" for s, v in using)
                # who may delete each: its domain, as authorize_subject judges (a context's
                # subjects, and names of no domain, are admin's alone)
                named = [owned_name(s) for s, _v in using]
                owners = sorted({domain_of(n) for n in named if "." in n and n[0] != ":"})
                who = (
                    f"their subjects' owners (domain {', '.join(owners)}) or admin"
                    if owners
                    else "admin"
                )
                raise ReferenceExistsError(
                    f"One or more references exist to the schema {{subject={subject}, "
                    f"version={number}}}: schema ids {referrers} ({', '.join(users[:5])}) "
                    f"reference it; those versions must be deleted permanently first, by {who}"
                )

    def _refuse_if_read(self, subject: str, what: str, numbers: Sequence[int]) -> None:
        """Refuse the permanent deletion of ``what`` (versions ``numbers`` of ``subject``)
        when it is the value subject of a catalog product's current or an earlier major, other
        products or registered consumer groups read the product, and schema ids would stop
        resolving: records on its topic written with them would be unreadable to those readers
        (a campaign: every record of the product's history went to their DLQs; another: every
        record of the earlier major a reader was still draining). An id another version still
        uses stays resolvable, so it does not count."""
        match = _PRODUCT_SUBJECT.fullmatch(subject)
        entry = self.state.products.get(match.group(1)) if match is not None else None
        if match is None or entry is None or int(match.group(2)) > _major(entry):
            return
        name = match.group(1)
        going = {(subject, number) for number in numbers}
        versions = self._all_versions(subject)
        ids = {versions[n].schema_id for n in numbers if n in versions}
        lost = sorted(i for i in ids if self.state.users.get(i, frozenset()) <= going)
        if not lost:
            return
        products = self.state.products
        downstream = sorted(o for o, e in products.items() if name in _inputs(e))
        groups = sorted(self.state.consumers.get(name, {}))
        if not downstream and not groups:
            return
        readers = [*downstream, *(f"consumer group {g}" for g in groups)]
        major, current = int(match.group(2)), _major(entry)
        earlier = (
            f" (its major {major}, which readers that have not moved to major {current}, or "
            f"processors held at major {major}, still read)"
            if major < current
            else ""
        )
        then = (
            "The registry cannot tell which major a reader reads, so this waits until the "
            "product has no readers; retire the major by deleting its topic instead"
            if earlier
            else "Change or unregister those readers first"
        )
        raise ProductInUseError(
            f"{what} of subject '{subject}' cannot be deleted permanently: product {name} is "
            f"read by {', '.join(readers)}, and records on its topic{earlier} written with "
            f"schema id(s) {', '.join(map(str, lost))} would become unreadable to them; a soft "
            f"delete keeps them readable. {then}"
        )

    def _all_versions(self, subject: str) -> dict[int, SubjectVersion]:
        return self.state.versions.get(subject, {})

    def _live(self, subject: str) -> list[SubjectVersion]:
        versions = self._all_versions(subject).values()
        return sorted((v for v in versions if not v.deleted), key=lambda v: v.version)

    def _version_obj(self, record: SubjectVersion) -> SchemaVersion:
        return SchemaVersion(
            record.subject,
            record.version,
            record.schema_id,
            self.state.schemas[record.schema_id],
            self.state.contract(record.schema_id),
            self.state.guids.get(record.schema_id),
        )

    @staticmethod
    def _normalized(
        schema: str | Mapping[str, Any], schema_type: str | None, named_types: Sequence[Any] = ()
    ) -> AvroSchema:
        if schema_type not in (None, "AVRO"):
            raise InvalidSchemaError(
                f"schemaType {str(schema_type)[:40]!r} is not supported; this registry "
                f"stores AVRO schemas only"
            )
        try:
            return parse_schema(schema, named_types=named_types)
        except SchemaError as exc:
            raise InvalidSchemaError(f"Invalid schema: {exc}") from exc

    def _prepare(
        self,
        schema: str | Mapping[str, Any],
        schema_type: str | None,
        references: Any,
        *,
        known_in: str | None = None,
    ) -> _Prepared:
        """The parsed schema, its stored text and its resolved references.

        A schema a rule added since refuses is still read when ``known_in`` (a subject)
        holds it already, with the refusal kept on ``refused``: Confluent's serializers
        register or look up their schema on every start, and an older schema must keep
        answering its id, while nothing new (a version, a contract) may be made of it.
        """
        resolved = self._resolve_references(references)
        named = self._named_types(resolved)
        try:
            parsed = self._normalized(schema, schema_type, named)
        except InvalidSchemaError as refused:
            if known_in is None or schema_type not in (None, "AVRO"):
                raise
            if not self._all_versions(known_in):
                raise
            try:
                parsed = parse_schema(schema, strict=False, named_types=named)
                text = normalize(parsed, named_types=named)
            except SchemaError:
                raise refused from None
            held = {
                self.state.schemas.get(v.schema_id) for v in self._all_versions(known_in).values()
            }
            if text not in held:
                raise
            return _Prepared(parsed, text, resolved, refused)
        try:
            return _Prepared(parsed, normalize(parsed, named_types=named), resolved, None)
        except SchemaError as exc:
            raise InvalidSchemaError(f"Invalid schema: {exc}") from exc

    def _checked_request(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        schema_type: str | None,
        references: Any,
        metadata: Any,
        rule_set: Any,
    ) -> tuple[str, tuple[dict[str, Any] | None, dict[str, Any] | None], _Prepared]:
        """A register request's parts, each checked (422 naming the first bad one): the
        subject name, the metadata and ruleSet as sent, and :meth:`_prepare`'s schema. One
        function for :meth:`register` and :meth:`check_compatibility`, so a compatibility
        check never says yes to a body registration refuses."""
        subject = check_subject_name(subject)
        sent = requested(metadata, rule_set)
        return subject, sent, self._prepare(schema, schema_type, references, known_in=subject)

    # -- reads -------------------------------------------------------------------------

    def live_versions(self, subject: str) -> list[SchemaVersion]:
        """The subject's versions that are not soft-deleted, oldest first (empty if none)."""
        return [self._version_obj(v) for v in self._live(subject)]

    def subjects(
        self, *, deleted: bool = False, deleted_only: bool = False, prefix: str = ""
    ) -> list[str]:
        """Subjects with live versions; ``deleted`` adds soft-deleted subjects, ``deleted_only``
        lists only those (every version soft-deleted), as Confluent's filters do."""
        found = []
        for subject, versions in self.state.version_items():
            if not versions or not matches_prefix(subject, prefix):
                continue
            soft_deleted = all(v.deleted for v in versions.values())
            if soft_deleted if deleted_only else (deleted or not soft_deleted):
                found.append(subject)
        return sorted(found)

    def versions(
        self, subject: str, *, deleted: bool = False, deleted_only: bool = False
    ) -> list[int]:
        """Live version numbers; ``deleted`` adds soft-deleted ones, ``deleted_only`` only those.

        40401 when the subject has no version the filter could show.
        """
        subject = check_subject_name(subject)
        all_versions = self._all_versions(subject).values()
        if not any(deleted or deleted_only or not v.deleted for v in all_versions):
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        return sorted(
            v.version
            for v in all_versions
            if (v.deleted if deleted_only else (deleted or not v.deleted))
        )

    def list_schemas(
        self, *, prefix: str = "", deleted: bool = False, latest_only: bool = False
    ) -> list[SchemaVersion]:
        """``GET /schemas``: every subject version (by subject, then version) under ``prefix``;
        ``deleted`` adds soft-deleted ones, ``latest_only`` keeps each subject's newest."""
        found: list[SchemaVersion] = []
        for subject, versions in sorted(self.state.version_items()):
            if not matches_prefix(subject, prefix):
                continue
            shown = sorted(
                (v for v in versions.values() if deleted or not v.deleted),
                key=lambda v: v.version,
            )
            found.extend(self._version_obj(v) for v in (shown[-1:] if latest_only else shown))
        return found

    def contexts(self) -> list[str]:
        """``GET /contexts``: the default context ``.`` and every context a subject is in."""
        return contexts_in_use(s for s, versions in self.state.version_items() if versions)

    def referenced_by(self, subject: str, version: str | int) -> list[int]:
        """Ids of the schemas (still used by a version) whose references name this version."""
        target = self.get_version(subject, version, deleted=True)
        return self._referrers(target.subject, target.version)

    def get_by_guid(self, guid: str) -> dict[str, Any]:
        """``GET /schemas/guids/{guid}``: like ``/schemas/ids/{id}`` for the id with that guid."""
        schema_id = self.state.ids_by_guid.get(guid.strip().lower())
        if schema_id is None:
            raise SchemaNotFoundError(f"Schema {guid[:64]!r} not found")
        return self.get_schema_document(schema_id)

    def latest_with_metadata(
        self, subject: str, properties: Mapping[str, str], *, deleted: bool = False
    ) -> SchemaVersion:
        """The newest version whose metadata properties hold every ``properties`` pair."""
        subject = check_subject_name(subject)
        candidates = sorted(
            (v for v in self._all_versions(subject).values() if deleted or not v.deleted),
            key=lambda v: v.version,
        )
        if not candidates:
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        for record in reversed(candidates):
            held = (self.state.contract(record.schema_id).metadata or {}).get("properties", {})
            if all(held.get(key) == value for key, value in properties.items()):
                return self._version_obj(record)
        wanted = ", ".join(f"{k}={v}" for k, v in properties.items())
        raise VersionNotFoundError(
            f"No version of subject '{subject}' has metadata properties {wanted}."
        )

    def get_version(
        self, subject: str, version: str | int, *, deleted: bool = False
    ) -> SchemaVersion:
        subject = check_subject_name(subject)
        number = parse_version(version)
        all_versions = self._all_versions(subject)
        if not all_versions or (not deleted and not self._live(subject)):
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        if number is None:  # latest: the newest live one, or with deleted=true the newest one
            live = self._live(subject)
            newest = live[-1] if live else all_versions[max(all_versions)]
            return self._version_obj(newest)
        record = all_versions.get(number)
        if record is None or (record.deleted and not deleted):
            raise VersionNotFoundError(f"Version {number} not found for subject '{subject}'.")
        return self._version_obj(record)

    def get_schema(self, schema_id: int) -> str:
        """Schema text by id, while some subject version (soft-deleted too) still uses it."""
        text = self.state.schemas.get(schema_id)
        if text is None or not self.state.users.get(schema_id):
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return text

    def get_schema_document(self, schema_id: int) -> dict[str, Any]:
        """``GET /schemas/ids/{id}``'s answer: the text and its contract, Confluent's names."""
        text = self.get_schema(schema_id)
        return {
            "schema": text,
            "guid": self.state.guids[schema_id],
            **self.state.contract(schema_id).to_record(),
        }

    def subject_versions_of(self, schema_id: int) -> list[tuple[str, int]]:
        """The (subject, version) pairs using ``schema_id``, from the state's index: O(1)."""
        return sorted(self.state.users.get(schema_id, ()))

    def lookup(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        schema_type: str | None = None,
        *,
        deleted: bool = False,
        metadata: Any = None,
        rule_set: Any = None,
        references: Any = None,
    ) -> SchemaVersion:
        """The oldest version with this schema and references; a sent ``metadata`` /
        ``ruleSet`` must match too."""
        subject = check_subject_name(subject)
        wanted_metadata, wanted_rules = requested(metadata, rule_set)
        if not self._all_versions(subject) or (not deleted and not self._live(subject)):
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        _parsed, text, resolved, _refused = self._prepare(
            schema, schema_type, references, known_in=subject
        )

        def matches_request(record: SubjectVersion) -> bool:
            if self.state.schemas.get(record.schema_id) != text:
                return False
            contract = self.state.contract(record.schema_id)
            if contract.references != resolved:
                return False
            return (wanted_metadata is None or (wanted_metadata or None) == contract.metadata) and (
                wanted_rules is None or (wanted_rules or None) == contract.rule_set
            )

        matches = [
            v
            for v in sorted(self._all_versions(subject).values(), key=lambda v: v.version)
            if (deleted or not v.deleted) and matches_request(v)
        ]
        if not matches:
            raise SchemaNotFoundError(f"Schema not found under subject '{subject}'")
        return self._version_obj(matches[0])

    def latest_schema_json(self, subject: str) -> Any | None:
        live = self._live(subject)
        return self.parsed(live[-1].schema_id).to_json() if live else None

    # -- config ------------------------------------------------------------------------

    def effective_level(self, subject: str | None) -> Compatibility:
        if subject is not None and subject in self.state.configs:
            return self.state.configs[subject]
        return self.state.configs.get(None, DEFAULT_COMPATIBILITY)

    def get_config(self, subject: str | None, *, default_to_global: bool = False) -> Compatibility:
        if subject is None:
            return self.effective_level(None)
        subject = check_subject_name(subject)
        if subject in self.state.configs:
            return self.state.configs[subject]
        if default_to_global:
            return self.effective_level(None)
        raise SubjectConfigNotFoundError(
            f"Subject '{subject}' does not have subject-level compatibility configured"
        )

    def config_parts_for(self, subject: str | None) -> dict[str, Any]:
        """The contract parts of ``subject``'s config: its own, else the global config's."""
        own = self.state.config_parts.get(subject, {}) if subject is not None else {}
        return {**self.state.config_parts.get(None, {}), **own}

    def config_document(self, subject: str | None, *, default_to_global: bool = False) -> Any:
        """``GET /config[/{s}]``: the level and the contract parts (defaultMetadata, ...)."""
        if subject is None or default_to_global:
            subject = None if subject is None else check_subject_name(subject)
            return {
                "compatibilityLevel": self.effective_level(subject).value,
                **self.config_parts_for(subject),
            }
        subject = check_subject_name(subject)
        level = self.state.configs.get(subject)
        parts = self.state.config_parts.get(subject, {})
        if level is None and not parts:
            raise SubjectConfigNotFoundError(
                f"Subject '{subject}' does not have subject-level compatibility configured"
            )
        return {**({} if level is None else {"compatibilityLevel": level.value}), **parts}

    def set_config(self, subject: str | None, level: object) -> Compatibility:
        self.update_config(subject, level, {})
        return parse_level(level)

    def update_config(
        self, subject: str | None, level: object | None, document: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change the level and/or contract parts of a config; what the body omits stays.

        A contract part sent as ``{}`` is removed. Answers the config as stored.
        """
        _refuse_unkept_config(document)
        parts = check_config_parts(document)
        compatibility = None if level is None else parse_level(level)
        if compatibility is None and not parts:
            raise InvalidCompatibilityLevelError(
                'body needs {"compatibility": <level>} or one of ' + ", ".join(CONFIG_PARTS)
            )
        if subject is not None:
            subject = check_subject_name(subject)
        with self.write_lock:
            kept = compatibility or self.state.configs.get(subject)
            merged = {**self.state.config_parts.get(subject, {}), **parts}
            value: dict[str, Any] = {} if kept is None else {"compatibility": kept.value}
            value.update({key: part for key, part in merged.items() if part})
            self.store.append([Record(("config", subject), value or None)])
        return value

    def delete_config(self, subject: str | None) -> dict[str, Any]:
        """Remove a config (the global one falls back to the defaults); answers the old one."""
        subject = None if subject is None else check_subject_name(subject)
        previous: dict[str, Any] = self.config_document(subject)
        with self.write_lock:
            self.store.append([Record(("config", subject), None)])
        return previous

    # -- mode --------------------------------------------------------------------------

    def mode_of(self, subject: str) -> Mode:
        """The mode ``subject``'s writes are judged by (see :func:`.modes.effective_mode`)."""
        return effective_mode(self.state.modes.get(subject), self.state.modes.get(None))

    def get_mode(self, subject: str | None, *, default_to_global: bool = False) -> Mode:
        if subject is None:
            return effective_mode(None, self.state.modes.get(None))
        subject = check_subject_name(subject)
        if default_to_global:
            return self.mode_of(subject)
        own = self.state.modes.get(subject)
        if own is not None:
            return own
        raise SubjectModeNotFoundError(
            f"Subject '{subject}' does not have subject-level mode configured"
        )

    def set_mode(self, subject: str | None, mode: object, *, force: bool = False) -> Mode:
        """Set the global (None) or a subject's mode; IMPORT over existing schemas needs force."""
        wanted = parse_mode(mode)
        if subject is not None:
            subject = check_subject_name(subject)
        with self.write_lock:
            has_schemas = (
                bool(self.state.versions) if subject is None else bool(self._all_versions(subject))
            )
            if wanted is Mode.IMPORT and has_schemas and not force:
                where = "the registry" if subject is None else f"subject '{subject}'"
                raise OperationNotPermittedError(
                    f"Cannot import since found existing subjects: {where} already has schemas; "
                    f"imported ids could clash with them. Add ?force=true to switch anyway"
                )
            self.store.append([Record(("mode", subject), {"mode": wanted.value})])
        return wanted

    def delete_mode(self, subject: str) -> Mode:
        """Remove a subject's own mode (it follows the global one again); returns the old one."""
        subject = check_subject_name(subject)
        previous = self.get_mode(subject)
        with self.write_lock:
            self.store.append([Record(("mode", subject), None)])
        return previous

    def _require_writable(self, subject: str) -> Mode:
        mode = self.mode_of(subject)
        if mode.writable:
            return mode
        if self.state.modes.get(None) is Mode.READONLY_OVERRIDE:
            allow = (
                "the registry's mode READONLY_OVERRIDE overrides every subject's: an admin can "
                'allow writes with PUT /mode {"mode": "READWRITE"}'
            )
        elif self.state.modes.get(subject) is None:
            allow = (
                f"the subject follows the registry's mode: an admin can allow writes with PUT "
                f'/mode {{"mode": "READWRITE"}}, or for this subject alone with PUT '
                f'/mode/{subject} {{"mode": "READWRITE"}}'
            )
        else:
            allow = f'an admin can allow writes with PUT /mode/{subject} {{"mode": "READWRITE"}}'
        raise OperationNotPermittedError(
            f"Subject '{subject}' is in read-only mode ({mode.value}); {allow}"
        )

    # -- compatibility -------------------------------------------------------------------

    def check_compatibility(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        schema_type: str | None = None,
        version: str | int | None = None,
        references: Any = None,
        *,
        metadata: Any = None,
        rule_set: Any = None,
    ) -> list[str]:
        """Problems of ``schema`` against one version (``version``) or per the subject's level.

        The body is checked as :meth:`register` checks it (:meth:`_checked_request`): what
        registering would refuse with a 422 is refused here with the same 422, never
        answered "compatible". What the consumers' protection (:attr:`consumer_gate`) would
        refuse with a 409 is a problem here too, so a CI check on this answer and the
        registration after it agree.
        """
        subject, (sent_metadata, sent_rules), (candidate, _text, resolved, _refused) = (
            self._checked_request(subject, schema, schema_type, references, metadata, rule_set)
        )
        live = self._live(subject)
        previous = self.state.contract(live[-1].schema_id) if live else NO_CONTRACT
        contract = inherit(sent_metadata, sent_rules, previous, resolved)
        contract = with_config(contract, self.config_parts_for(subject))
        _refuse_rules_no_record_passes(contract.rule_set, candidate)  # as registering would
        level = self.effective_level(subject)
        if version is None:
            against = [(v.version, self.parsed(v.schema_id)) for v in self._live(subject)]
        elif parse_version(version) is None and not live:
            # `latest` of a subject with no version yet: compatible, as Confluent answers (so
            # a CI check of a new product passes, as its registration would; h44)
            against = []
        else:
            target = self.get_version(subject, version)
            against = [(target.version, self.parsed(target.schema_id))]
            level = Compatibility(level.value.removesuffix("_TRANSITIVE"))
        problems = compatibility_problems(candidate, against, level, subject=subject)
        if self.consumer_gate is not None:
            try:
                self.consumer_gate(subject, candidate)
            except IncompatibleSchemaError as exc:
                problems = [*problems, exc.message]
        return problems

    # -- writes ------------------------------------------------------------------------

    def register(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        schema_type: str | None = None,
        references: Any = None,
        *,
        metadata: Any = None,
        rule_set: Any = None,
        schema_id: int | None = None,
        version: int | None = None,
    ) -> SchemaVersion:
        """Register ``schema`` under ``subject``; the same schema again returns the same id.

        The same schema means the same text and contract; an omitted ``metadata`` or
        ``rule_set`` is the subject's latest live version's (Confluent's inheritance).
        ``schema_id`` and ``version`` are taken only in IMPORT mode (see :mod:`.modes`).
        """
        subject, (sent_metadata, sent_rules), (parsed, text, resolved, refused) = (
            self._checked_request(subject, schema, schema_type, references, metadata, rule_set)
        )
        with self.write_lock:
            mode = self.mode_of(subject)
            if mode is not Mode.IMPORT and not self._all_versions(subject):
                check_new_subject_name(subject)
            live = self._live(subject)
            previous = self.state.contract(live[-1].schema_id) if live else NO_CONTRACT
            contract = inherit(sent_metadata, sent_rules, previous, resolved)
            if mode is Mode.IMPORT:  # kept as the source registry had it
                if refused is not None:  # an import writes: only what today's rules take
                    raise refused
                return self._import(subject, parsed, text, contract, schema_id, version)
            contract = with_config(contract, self.config_parts_for(subject))
            if schema_id is not None or version is not None:
                self._require_writable(subject)
                raise OperationNotPermittedError(
                    f"Subject '{subject}' is not in import mode: a register request may name "
                    f"its id or version only in IMPORT mode (an admin sets it with PUT "
                    f'/mode/{subject} {{"mode": "IMPORT"}}); drop "id" and "version"'
                )
            # Already registered: its id, read-only or not (Confluent answers so, and its
            # serializers register on every start).
            existing_id = self.state.ids_by_schema.get(contract.identity(text))
            for record in live:
                if record.schema_id == existing_id:
                    return self._version_obj(record)
            if refused is not None:  # held already, but not this way: nothing new of it
                raise refused
            self._require_writable(subject)
            if self.consumer_gate is not None:
                self.consumer_gate(subject, parsed)
            problems = compatibility_problems(
                parsed,
                [(v.version, self.parsed(v.schema_id)) for v in live],
                self.effective_level(subject),
                subject=subject,
            )
            if problems:
                raise IncompatibleSchemaError(
                    f"Schema being registered is incompatible with an earlier schema for "
                    f'subject "{subject}" (compatibility {self.effective_level(subject).value}): '
                    + "; ".join(problems)
                )
            new_id = existing_id if existing_id is not None else self.state.max_id + 1
            new_version = max(self._all_versions(subject), default=0) + 1
            return self._store_version(
                subject, parsed, text, contract, new_id, new_version, check_rules=True
            )

    def _store_version(
        self,
        subject: str,
        parsed: AvroSchema,
        text: str,
        contract: Contract,
        schema_id: int,
        version: int,
        *,
        check_rules: bool = False,
    ) -> SchemaVersion:
        """Run the gate (and with ``check_rules`` the contract's rules against the schema:
        an import keeps what its source registry held), then append the schema (if its id is
        new) and the version."""
        if schema_id > MAX_SIGNED_SCHEMA_ID or version > MAX_VERSION:  # an import at the top
            what, top, highest = (
                ("schema id", MAX_SIGNED_SCHEMA_ID, "the highest id in use")
                if schema_id > MAX_SIGNED_SCHEMA_ID
                else (
                    f"version of subject '{subject}'",
                    MAX_VERSION,
                    "the subject's highest version",
                )
            )
            raise OperationNotPermittedError(
                f"no {what} is left: new ones are handed out above {highest}, {top}, the "
                f"largest clients read (four bytes, signed), most likely imported; nothing was "
                f"stored. Register with an explicit id and version in IMPORT mode, or delete "
                f"that version permanently"
            )
        if self.gate is not None:
            self.gate(subject, parsed)
        if check_rules:
            _refuse_rules_no_record_passes(contract.rule_set, parsed)
        records: list[Record] = []
        if schema_id not in self.state.schemas:
            records.append(Record(("schema", schema_id), {"schema": text, **contract.to_record()}))
        records.append(Record(("version", subject, version), {"id": schema_id, "deleted": False}))
        self.store.append(records)
        return self._version_obj(self.state.versions[subject][version])

    def _import(
        self,
        subject: str,
        parsed: AvroSchema,
        text: str,
        contract: Contract,
        schema_id: int | None,
        version: int | None,
    ) -> SchemaVersion:
        """IMPORT mode: keep the sent id and version; never overwrite another schema's."""
        identity = contract.identity(text)
        if schema_id is None:
            found = self.state.ids_by_schema.get(identity)
            schema_id = found if found is not None else self.state.max_id + 1
        elif schema_id in self.state.schemas:
            known = self.state.contract(schema_id).identity(self.state.schemas[schema_id])
            if known != identity:
                raise OperationNotPermittedError(
                    f"Overwrite schema for the same ID is not permitted: id {schema_id} already "
                    f"names another schema here; import this schema under a free id"
                )
        versions = self._all_versions(subject)
        if version is None:
            for record in self._live(subject):
                if record.schema_id == schema_id:
                    return self._version_obj(record)
            version = max(versions, default=0) + 1
        elif version in versions:
            held = versions[version]
            if held.schema_id == schema_id and not held.deleted:
                return self._version_obj(held)
            raise OperationNotPermittedError(
                f"Overwrite of version {version} of subject '{subject}' is not permitted: it "
                f"holds schema id {held.schema_id}{' (soft-deleted)' if held.deleted else ''}; "
                f"delete it permanently first or import under another version"
            )
        return self._store_version(subject, parsed, text, contract, schema_id, version)

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        subject = check_subject_name(subject)
        with self.write_lock:
            self._require_writable(subject)
            versions = self._all_versions(subject)
            if not versions:
                raise SubjectNotFoundError(f"Subject '{subject}' not found.")
            live = [v for v in versions.values() if not v.deleted]
            self._refuse_if_referenced(subject, sorted(versions))
            if permanent:
                if live:
                    raise SubjectNotSoftDeletedError(
                        f"Subject '{subject}' was not deleted first before being permanently "
                        f"deleted"
                    )
                self._refuse_if_read(subject, "every version", sorted(versions))
                numbers = sorted(versions)
                records = [Record(("version", subject, n), None) for n in numbers]
                if subject in self.state.configs:
                    records.append(Record(("config", subject), None))
                self.store.append(records)
                return numbers
            if not live:
                raise SubjectSoftDeletedError(f"Subject '{subject}' was soft deleted.")
            numbers = sorted(v.version for v in live)
            self.store.append(
                [
                    Record(("version", subject, v.version), {"id": v.schema_id, "deleted": True})
                    for v in live
                ]
            )
            return numbers

    def delete_version(self, subject: str, version: str | int, *, permanent: bool = False) -> int:
        subject = check_subject_name(subject)
        number = parse_version(version)
        with self.write_lock:
            self._require_writable(subject)
            versions = self._all_versions(subject)
            if not versions:
                raise SubjectNotFoundError(f"Subject '{subject}' not found.")
            if number is None:
                live = self._live(subject)
                if not live:
                    raise SubjectNotFoundError(f"Subject '{subject}' not found.")
                number = live[-1].version
            record = versions.get(number)
            if record is None:
                raise VersionNotFoundError(f"Version {number} not found for subject '{subject}'.")
            self._refuse_if_referenced(subject, [number])
            if permanent:
                if not record.deleted:
                    raise VersionNotSoftDeletedError(
                        f"Subject '{subject}' Version {number} was not deleted first before "
                        f"being permanently deleted"
                    )
                self._refuse_if_read(subject, f"version {number}", [number])
                self.store.append([Record(("version", subject, number), None)])
            else:
                if record.deleted:
                    raise VersionSoftDeletedError(
                        f"Subject '{subject}' Version {number} was soft deleted. Set "
                        f"permanent=true to delete permanently"
                    )
                self.store.append(
                    [
                        Record(
                            ("version", subject, number), {"id": record.schema_id, "deleted": True}
                        )
                    ]
                )
            return number
