"""The registry's state as a fold over its log of records.

Each record is ``(key, value)``: the key names one entity (so a compacted topic keeps only
its latest value), the value is JSON, and ``None`` is a tombstone (hard delete). Keys:

* ``["schema", id]`` -> ``{"schema": text, "references"?: [...], "metadata"?: {...},
  "ruleSet"?: {...}}``: schema ids, never deleted, so never reused; the Confluent contract
  parts are part of what an id names (see :mod:`.contracts`; older records have none);
* ``["version", subject, version]`` -> ``{"id": id, "deleted": bool}``;
* ``["config", subject | null]`` -> ``{"compatibility"?: level, "defaultMetadata"?: ...,
  "overrideMetadata"?, "defaultRuleSet"?, "overrideRuleSet"?}`` (null subject = global);
* ``["mode", subject | null]`` -> ``{"mode": mode}`` (null subject = global; see :mod:`.modes`);
* ``["product", name]`` -> ``{"descriptor": {...}, "updated_by": principal, "updated_at": iso}``;
* ``["consumer", product, group]`` -> ``{"owner": domain, "reads": [field, ...], "contact"?,
  "description"?, "registered_by": principal, "registered_at": iso}``: a consumer group
  registered on a product (see :mod:`.consumers`); a tombstone unregisters it.
* ``["writer"]`` -> ``{"writer_id": id, "instance": uuid, ...}``: the latest writer claim
  (see :mod:`.kafka_store`); the state only remembers it.
* ``["credential", principal]`` -> ``{"state": "active" | "revoked", ...}``: a token issued
  at run time, kept only as a salted hash (see :mod:`.credentials`); never tombstoned, so a
  revocation outlives compaction.
* ``["session", id]`` -> ``{"ended_until_ms": ms}``: a portal session signed out, refused
  until its cookie would have expired anyway (see :mod:`mesh_stream.registry.portal.access`);
  tombstoned by a later sign-out once that time has passed.

Applying a record costs O(1) (replaying N records is linear): big maps are updated in
place, only a subject's own small version map is copied.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from mesh_stream.descriptor import Compatibility
from mesh_stream.errors import (
    ConfigurationError,
    RegistryWriterConflictError,
    UnencodableInputError,
)
from mesh_stream.registry.service.contracts import CONFIG_PARTS, NO_CONTRACT, Contract
from mesh_stream.registry.service.modes import Mode

_DECODER = json.JSONDecoder()


def _decode(text: str) -> Any:
    """One JSON document (the log holds compact JSON: no surrounding blanks to skip)."""
    found, end = _DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError(f"extra data after the JSON document at character {end}")
    return found


#: Namespace of schema guids: uuid5(namespace, identity) names a schema the same everywhere.
GUID_NAMESPACE = uuid.UUID("6d657368-2d73-7472-6561-6d2d67756964")


def schema_guid(identity: str) -> str:
    """The guid Confluent clients may frame records with, stable for a schema's identity."""
    return str(uuid.uuid5(GUID_NAMESPACE, identity))


Key = tuple[Any, ...]
Value = dict[str, Any] | None


@dataclass(frozen=True)
class Record:
    """One entry of the registry log."""

    key: Key
    value: Value

    def encode(self) -> tuple[bytes, bytes | None]:
        """Key and value as UTF-8 JSON; text that is not valid Unicode is a 422."""
        key = json.dumps(list(self.key), separators=(",", ":"), ensure_ascii=False)
        value = (
            None
            if self.value is None
            else json.dumps(self.value, separators=(",", ":"), ensure_ascii=False)
        )
        try:
            return key.encode(), None if value is None else value.encode()
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end]
            raise UnencodableInputError(
                f"the request holds text that cannot be stored as UTF-8: {bad!r} at character "
                f"{exc.start} of the {self.key[0]} record {list(self.key[1:])} "
                f"({exc.reason}); send valid Unicode (a lone surrogate such as \\ud800 is not)",
                status=422,
                error_code=42216,
            ) from exc

    @classmethod
    def decode(cls, key: bytes, value: bytes | None, where: str) -> Record:
        try:  # the decoder directly: json.loads' type and encoding checks cost 40% of replay
            decoded_key = _decode(key.decode())
            decoded_value = None if value is None else _decode(value.decode())
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise ConfigurationError(f"{where}: registry record is not JSON: {exc}") from exc
        if not isinstance(decoded_key, list) or not decoded_key:
            raise ConfigurationError(f"{where}: registry record key {key!r} is not a JSON list")
        return cls(tuple(decoded_key), decoded_value)


@dataclass(frozen=True)
class SubjectVersion:
    subject: str
    version: int
    schema_id: int
    deleted: bool


class RegistryState:
    """In-memory view built only by :meth:`apply`, so replaying the log rebuilds it exactly.

    ``apply`` runs on the store's tailing thread while request threads read. Maps are only
    read by key or copied whole in one C call (``list(d.items())``, atomic under the GIL) by
    readers that iterate (:meth:`version_items`, :attr:`products`); the small containers
    inside them (a subject's versions, an id's users) are replaced, never mutated, so a
    reader holding one sees a consistent snapshot. Every update is O(1).
    """

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        #: a schema's identity (its text, plus its contract if any) -> its id
        self.ids_by_schema: dict[str, int] = {}
        #: schema id -> its metadata / ruleSet, only for ids that have some
        self.contracts: dict[int, Contract] = {}
        #: schema id <-> its guid (derived from its identity, so the same in every registry)
        self.guids: dict[int, str] = {}
        self.ids_by_guid: dict[str, int] = {}
        #: (subject, version) -> ids of the schemas whose references name it
        self.referrers: dict[tuple[str, int], frozenset[int]] = {}
        self.versions: dict[str, dict[int, SubjectVersion]] = {}
        #: schema id -> the (subject, version) pairs using it, for O(1) lookups by id
        self.users: dict[int, frozenset[tuple[str, int]]] = {}
        self.configs: dict[str | None, Compatibility] = {}
        #: subject (None = global) -> its defaultMetadata / overrideRuleSet / ... if any
        self.config_parts: dict[str | None, dict[str, Any]] = {}
        self.modes: dict[str | None, Mode] = {}
        self._products: dict[str, dict[str, Any]] = {}
        self._products_view: dict[str, dict[str, Any]] | None = None
        #: product -> {group -> registration}; the inner maps are replaced, never mutated
        self.consumers: dict[str, dict[str, dict[str, Any]]] = {}
        self.writer: dict[str, Any] | None = None
        #: principal -> its issued credential (values replaced whole, never mutated)
        self.credentials: dict[str, dict[str, Any]] = {}
        #: portal session id -> until when (epoch ms) its sign-out must hold: its cookie's
        #: end (:mod:`mesh_stream.registry.portal.access`)
        self.ended_sessions: dict[str, int] = {}
        self.max_id = 0
        self.applied = 0

    @property
    def products(self) -> dict[str, dict[str, Any]]:
        """A snapshot of the products (copied once after each change, then shared)."""
        view = self._products_view
        if view is None:
            view = self._products_view = dict(self._products)
        return view

    def version_items(self) -> list[tuple[str, dict[int, SubjectVersion]]]:
        """Every subject with its versions, as one consistent list."""
        return list(self.versions.items())

    def apply(self, record: Record) -> None:
        """Fold one record into the view (the only mutator).

        Raises :class:`RegistryWriterConflictError` when a schema id arrives with another
        schema than the one it already names (two writers handed out the same id); the
        first schema stays.
        """
        kind, *rest = record.key
        value = record.value
        self.applied += 1
        if kind == "schema":
            self._apply_schema(int(rest[0]), value)
        elif kind == "version":
            self._apply_version(str(rest[0]), int(rest[1]), value)
        elif kind == "config":
            subject_key = None if rest[0] is None else str(rest[0])
            if value is None or "compatibility" not in value:
                self.configs.pop(subject_key, None)
            else:
                self.configs[subject_key] = Compatibility(value["compatibility"])
            parts = {k: v for k, v in (value or {}).items() if k in CONFIG_PARTS}
            if parts:
                self.config_parts[subject_key] = parts
            else:
                self.config_parts.pop(subject_key, None)
        elif kind == "mode":
            subject_key = None if rest[0] is None else str(rest[0])
            if value is None:
                self.modes.pop(subject_key, None)
            else:
                self.modes[subject_key] = Mode(value["mode"])
        elif kind == "product":
            if value is None:
                self._products.pop(str(rest[0]), None)
            else:
                self._products[str(rest[0])] = value
            self._products_view = None
        elif kind == "consumer":
            self._apply_consumer(str(rest[0]), str(rest[1]), value)
        elif kind == "writer":
            self.writer = value
        elif kind == "credential":
            if value is None:
                self.credentials.pop(str(rest[0]), None)
            else:
                self.credentials[str(rest[0])] = value
        elif kind == "session":
            if value is None:
                self.ended_sessions.pop(str(rest[0]), None)
            else:
                self.ended_sessions[str(rest[0])] = int(value["ended_until_ms"])

    def _apply_consumer(self, product: str, group: str, value: Value) -> None:
        groups = dict(self.consumers.get(product, {}))
        if value is None:
            groups.pop(group, None)
        else:
            groups[group] = value
        if groups:
            self.consumers[product] = groups
        else:
            self.consumers.pop(product, None)

    def _apply_schema(self, schema_id: int, value: Value) -> None:
        self.max_id = max(self.max_id, schema_id)
        if value is None:
            return
        text = value["schema"]
        contract = Contract.from_record(value)
        known = self.schemas.get(schema_id)
        if known is not None and (known != text or self.contract(schema_id) != contract):
            raise RegistryWriterConflictError(
                f"schema id {schema_id} was written again with a different schema: two "
                f"registry writers handed out the same id; every registry instance on one "
                f"topic must use the same MESH_REGISTRY_WRITER_ID",
                status=503,
                error_code=50303,
            )
        self.schemas[schema_id] = text
        if contract != NO_CONTRACT:
            self.contracts[schema_id] = contract
        for reference in contract.references or ():
            used = (str(reference["subject"]), int(reference["version"]))
            self.referrers[used] = self.referrers.get(used, frozenset()) | {schema_id}
        identity = contract.identity(text)
        self.ids_by_schema.setdefault(identity, schema_id)
        guid = schema_guid(identity)
        self.guids[schema_id] = guid
        self.ids_by_guid.setdefault(guid, schema_id)

    def contract(self, schema_id: int) -> Contract:
        """The metadata / ruleSet stored with ``schema_id`` (empty for most schemas)."""
        return self.contracts.get(schema_id, NO_CONTRACT)

    def _apply_version(self, subject: str, version: int, value: Value) -> None:
        old_inner = self.versions.get(subject, {})
        inner = dict(old_inner)
        previous = inner.pop(version, None)
        if previous is not None:
            self._unuse(previous.schema_id, (subject, version))
        if value is not None:
            schema_id = int(value["id"])
            inner[version] = SubjectVersion(
                subject, version, schema_id, bool(value.get("deleted", False))
            )
            self.users[schema_id] = self.users.get(schema_id, frozenset()) | {(subject, version)}
        if inner:
            self.versions[subject] = inner
        else:
            self.versions.pop(subject, None)

    def _unuse(self, schema_id: int, use: tuple[str, int]) -> None:
        left = self.users.get(schema_id, frozenset()) - {use}
        if left:
            self.users[schema_id] = left
        else:
            self.users.pop(schema_id, None)
