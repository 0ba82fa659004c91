"""The registry's state as a fold over its log of records.

Each record is ``(key, value)``: the key names one entity (so a compacted topic keeps only
its latest value), the value is JSON, and ``None`` is a tombstone (hard delete). Keys:

* ``["schema", id]`` -> ``{"schema": text}``: schema ids, never deleted, so never reused;
* ``["version", subject, version]`` -> ``{"id": id, "deleted": bool}``;
* ``["config", subject | null]`` -> ``{"compatibility": level}`` (null subject = global);
* ``["product", name]`` -> ``{"descriptor": {...}, "updated_by": principal, "updated_at": iso}``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from mesh_stream.descriptor import Compatibility
from mesh_stream.errors import ConfigurationError

Key = tuple[Any, ...]
Value = dict[str, Any] | None


@dataclass(frozen=True)
class Record:
    """One entry of the registry log."""

    key: Key
    value: Value

    def encode(self) -> tuple[bytes, bytes | None]:
        key = json.dumps(list(self.key), separators=(",", ":"), ensure_ascii=False)
        value = (
            None
            if self.value is None
            else json.dumps(self.value, separators=(",", ":"), ensure_ascii=False)
        )
        return key.encode(), None if value is None else value.encode()

    @classmethod
    def decode(cls, key: bytes, value: bytes | None, where: str) -> Record:
        try:
            decoded_key = json.loads(key)
            decoded_value = None if value is None else json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
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

    ``apply`` runs on the store's tailing thread while request threads read. The containers
    readers iterate (``versions`` and each subject's inner dict, ``products``) are replaced,
    never mutated in place, so a reader iterates a consistent snapshot without a lock.
    """

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.ids_by_schema: dict[str, int] = {}
        self.versions: dict[str, dict[int, SubjectVersion]] = {}
        self.configs: dict[str | None, Compatibility] = {}
        self.products: dict[str, dict[str, Any]] = {}
        self.max_id = 0
        self.changed = threading.Condition()
        self.applied = 0

    def apply(self, record: Record) -> None:
        """Fold one record into the view (the only mutator)."""
        kind, *rest = record.key
        value = record.value
        if kind == "schema":
            schema_id = int(rest[0])
            self.max_id = max(self.max_id, schema_id)
            if value is not None:
                self.schemas[schema_id] = value["schema"]
                self.ids_by_schema.setdefault(value["schema"], schema_id)
        elif kind == "version":
            subject, version = str(rest[0]), int(rest[1])
            inner = dict(self.versions.get(subject, {}))
            if value is None:
                inner.pop(version, None)
            else:
                inner[version] = SubjectVersion(
                    subject, version, int(value["id"]), bool(value.get("deleted", False))
                )
            outer = dict(self.versions)
            if inner:
                outer[subject] = inner
            else:
                outer.pop(subject, None)
            self.versions = outer
        elif kind == "config":
            subject_key = None if rest[0] is None else str(rest[0])
            if value is None:
                self.configs.pop(subject_key, None)
            else:
                self.configs[subject_key] = Compatibility(value["compatibility"])
        elif kind == "product":
            products = dict(self.products)
            if value is None:
                products.pop(str(rest[0]), None)
            else:
                products[str(rest[0])] = value
            self.products = products
        with self.changed:
            self.applied += 1
            self.changed.notify_all()
