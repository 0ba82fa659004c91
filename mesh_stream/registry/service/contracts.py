"""What a schema version carries beside its text: ``references``, ``metadata``, ``ruleSet``.

Confluent stores them with each version and counts them in its identity: the same schema
text with other references, metadata or rules is another schema (its own id). A register
request that omits metadata or ruleSet inherits the subject's latest version's (see
:func:`inherit`); references are the schema's own and never inherited. Bad shapes are a
422 / 42201 naming the path, e.g. ``ruleSet.domainRules[1].kind``; nothing here knows HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mesh_stream.contracts.cel import (
    MAX_COMPREHENSION_NESTING,
    MAX_EXPRESSION_CHARS,
    comprehension_nesting,
)
from mesh_stream.errors import InvalidSchemaError

RULE_KINDS = ("CONDITION", "TRANSFORM")
#: Modes a rule may have, per list of a ruleSet (Confluent's RuleSet validation).
DOMAIN_MODES = ("WRITE", "READ", "WRITEREAD")
MIGRATION_MODES = ("UPGRADE", "DOWNGRADE", "UPDOWN")
#: Modes that run in two directions, so onSuccess/onFailure may name two actions ``a,b``.
TWO_WAY_MODES = ("WRITEREAD", "UPDOWN")
RULE_LISTS = {
    "domainRules": DOMAIN_MODES,
    "migrationRules": MIGRATION_MODES,
    "encodingRules": DOMAIN_MODES,
}
_RULE_KEYS = (
    "name",
    "doc",
    "kind",
    "mode",
    "type",
    "tags",
    "params",
    "expr",
    "onSuccess",
    "onFailure",
    "disabled",
)
#: A rule name or action type: a letter, then letters, digits, ``_``, ``-`` or ``.``.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")


def _bad(path: str, problem: str, fix: str) -> InvalidSchemaError:
    return InvalidSchemaError(
        f"Invalid {path.split('.', 1)[0].split('[', 1)[0]}: {path} {problem}; {fix}"
    )


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, f"is {type(value).__name__}, not an object", "send a JSON object")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, f"is {type(value).__name__}, not a string", "send a string")
    return value


def _strings(value: Any, path: str) -> list[str]:
    if not isinstance(value, list):
        raise _bad(path, f"is {type(value).__name__}, not a list", "send a list of strings")
    return [_string(item, f"{path}[{i}]") for i, item in enumerate(value)]


def check_metadata(value: Any, path: str = "metadata") -> dict[str, Any] | None:
    """``{tags: {path: [tag]}, properties: {k: v}, sensitive: [k]}``; empty parts dropped.

    None when nothing is left (an explicit ``{}`` means "no metadata", not "inherit").
    """
    if value is None:
        return None
    document = _object(value, path)
    unknown = sorted(set(document) - {"tags", "properties", "sensitive"})
    if unknown:
        raise _bad(
            f"{path}.{unknown[0]}",
            "is not a metadata field",
            "metadata holds only tags, properties and sensitive",
        )
    checked: dict[str, Any] = {}
    tags = document.get("tags")
    if tags is not None:
        found = {
            _string(key, f"{path}.tags"): _strings(item, f"{path}.tags.{key}")
            for key, item in _object(tags, f"{path}.tags").items()
        }
        if found:
            checked["tags"] = {key: sorted(set(item)) for key, item in found.items()}
    properties = document.get("properties")
    if properties is not None:
        found_properties = {
            key: _string(item, f"{path}.properties.{key}")
            for key, item in _object(properties, f"{path}.properties").items()
        }
        if found_properties:
            checked["properties"] = found_properties
    sensitive = document.get("sensitive")
    if sensitive is not None:
        keys = _strings(sensitive, f"{path}.sensitive")
        if keys:
            checked["sensitive"] = sorted(set(keys))
    return checked or None


def _actions(value: Any, path: str, mode: str) -> str:
    text = _string(value, path)
    parts = text.split(",")
    if len(parts) > 2 or not all(_NAME.fullmatch(part) for part in parts):
        raise _bad(
            path,
            f"is {text[:60]!r}, not an action",
            "use NONE, ERROR, DLQ (or another action type), or two as `<write>,<read>`",
        )
    if len(parts) == 2 and mode not in TWO_WAY_MODES:
        raise _bad(
            path,
            f"names two actions ({text!r}) for a {mode} rule",
            f"two actions are only for modes {', '.join(TWO_WAY_MODES)}; name one",
        )
    return text


def _rule(value: Any, path: str, modes: tuple[str, ...]) -> dict[str, Any]:
    document = _object(value, path)
    unknown = sorted(set(document) - set(_RULE_KEYS))
    if unknown:
        raise _bad(
            f"{path}.{unknown[0]}", "is not a rule field", f"a rule has {', '.join(_RULE_KEYS)}"
        )
    for required in ("name", "kind", "mode", "type"):
        if document.get(required) is None:
            raise _bad(f"{path}.{required}", "is missing", f"every rule needs a {required}")
    name = _string(document["name"], f"{path}.name")
    if not _NAME.fullmatch(name):
        raise _bad(
            f"{path}.name",
            f"{name[:60]!r} is not a rule name",
            "start with a letter; use letters, digits, `_`, `-` and `.` (at most 128)",
        )
    kind = _string(document["kind"], f"{path}.kind")
    if kind not in RULE_KINDS:
        raise _bad(f"{path}.kind", f"is {kind[:40]!r}", f"use one of {', '.join(RULE_KINDS)}")
    mode = _string(document["mode"], f"{path}.mode")
    if mode not in modes:
        raise _bad(
            f"{path}.mode",
            f"is {mode[:40]!r}, not a mode of this list",
            f"use one of {', '.join(modes)}",
        )
    rule: dict[str, Any] = {"name": name, "kind": kind, "mode": mode}
    rule["type"] = _string(document["type"], f"{path}.type")
    if not rule["type"].strip():
        raise _bad(f"{path}.type", "is empty", "name the rule executor, e.g. CEL")
    for key in ("doc", "expr"):
        if document.get(key) is not None:
            rule[key] = _string(document[key], f"{path}.{key}")
    if len(rule.get("expr", "")) > MAX_EXPRESSION_CHARS:  # no client could compile it
        raise _bad(
            f"{path}.expr",
            f"is {len(rule['expr']):,} characters long",
            f"keep a rule's expression to at most {MAX_EXPRESSION_CHARS:,} characters",
        )
    nesting = comprehension_nesting(rule.get("expr", "")) if rule["type"] == "CEL" else 0
    if nesting > MAX_COMPREHENSION_NESTING:  # no publisher could run it in bounded time
        raise _bad(
            f"{path}.expr",
            f"nests comprehensions {nesting} deep",
            f"nest all, exists, exists_one, map and filter at most {MAX_COMPREHENSION_NESTING} "
            f"deep: each level multiplies the work by a list's length, for every record",
        )
    if document.get("tags") is not None:
        rule["tags"] = _strings(document["tags"], f"{path}.tags")
    if document.get("params") is not None:
        rule["params"] = {
            key: _string(item, f"{path}.params.{key}")
            for key, item in _object(document["params"], f"{path}.params").items()
        }
    for key in ("onSuccess", "onFailure"):
        if document.get(key) is not None:
            rule[key] = _actions(document[key], f"{path}.{key}", mode)
    if document.get("disabled") is not None:
        if not isinstance(document["disabled"], bool):
            raise _bad(f"{path}.disabled", "is not a boolean", "send true or false")
        rule["disabled"] = document["disabled"]
    return rule


def check_rule_set(value: Any, path: str = "ruleSet") -> dict[str, Any] | None:
    """``{domainRules: [...], migrationRules: [...], encodingRules: [...]}``, each rule checked.

    Rule names are unique within the ruleSet. None when no list holds a rule.
    """
    if value is None:
        return None
    document = _object(value, path)
    unknown = sorted(set(document) - set(RULE_LISTS) - {"enableAt"})
    if unknown:
        raise _bad(
            f"{path}.{unknown[0]}",
            "is not a ruleSet field",
            f"a ruleSet has {', '.join(RULE_LISTS)}",
        )
    checked: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, modes in RULE_LISTS.items():
        rules = document.get(key)
        if rules is None:
            continue
        if not isinstance(rules, list):
            raise _bad(f"{path}.{key}", "is not a list", "send a list of rules")
        found = []
        for i, item in enumerate(rules):
            where = f"{path}.{key}[{i}]"
            rule = _rule(item, where, modes)
            if rule["name"] in seen:
                raise _bad(
                    f"{where}.name",
                    f"{rule['name']!r} is used twice (also at {seen[rule['name']]})",
                    "give every rule its own name",
                )
            seen[rule["name"]] = where
            found.append(rule)
        if found:
            checked[key] = found
    if document.get("enableAt") is not None and checked:
        checked["enableAt"] = _string(document["enableAt"], f"{path}.enableAt")
    return checked or None


#: Most references one schema may have (each is resolved, transitively, on every parse).
MAX_REFERENCES = 100


def check_references(value: Any, path: str = "references") -> list[dict[str, Any]] | None:
    """``[{name, subject, version}]``: each names a type (its full name for Avro) defined in
    the given subject version (``-1`` = the latest, resolved when registered)."""
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise _bad(path, f"is {type(value).__name__}, not a list", "send a list of references")
    if len(value) > MAX_REFERENCES:
        raise _bad(path, f"has {len(value)} entries", f"reference at most {MAX_REFERENCES} types")
    found = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        document = _object(item, where)
        unknown = sorted(set(document) - {"name", "subject", "version"})
        if unknown:
            raise _bad(
                f"{where}.{unknown[0]}",
                "is not a reference field",
                "a reference has name, subject and version",
            )
        for required in ("name", "subject", "version"):
            if document.get(required) is None:
                raise _bad(
                    f"{where}.{required}", "is missing", f"every reference needs a {required}"
                )
        version = document["version"]
        if (
            isinstance(version, bool)
            or not isinstance(version, int)
            or not (version == -1 or 1 <= version <= 2**31 - 1)
        ):
            raise _bad(
                f"{where}.version",
                f"is {str(version)[:40]!r}",
                "use a version number (1 or more) or -1 for the latest",
            )
        found.append(
            {
                "name": _string(document["name"], f"{where}.name"),
                "subject": _string(document["subject"], f"{where}.subject"),
                "version": version,
            }
        )
    return found


@dataclass(frozen=True)
class Contract:
    """What a version carries beside its schema text (each part None when absent)."""

    metadata: dict[str, Any] | None = None
    rule_set: dict[str, Any] | None = None
    references: list[dict[str, Any]] | None = None

    @classmethod
    def from_record(cls, value: Mapping[str, Any]) -> Contract:
        """From a stored ``["schema", id]`` value (records older than contracts have none)."""
        return cls(value.get("metadata"), value.get("ruleSet"), value.get("references"))

    def to_record(self) -> dict[str, Any]:
        """The parts to store and to answer with, under Confluent's names."""
        found: dict[str, Any] = {}
        if self.references is not None:
            found["references"] = self.references
        if self.metadata is not None:
            found["metadata"] = self.metadata
        if self.rule_set is not None:
            found["ruleSet"] = self.rule_set
        return found

    def identity(self, text: str) -> str:
        """The key a schema id is found by: its text alone when it has no contract."""
        extra = self.to_record()
        if not extra:
            return text
        return text + "\n" + json.dumps(extra, sort_keys=True, separators=(",", ":"))


NO_CONTRACT = Contract()


def requested(metadata: Any, rule_set: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Both parts of a request checked; an omitted part stays None (see :func:`inherit`)."""
    return (
        None if metadata is None else (check_metadata(metadata) or {}),
        None if rule_set is None else (check_rule_set(rule_set) or {}),
    )


def inherit(
    metadata: dict[str, Any] | None,
    rule_set: dict[str, Any] | None,
    previous: Contract,
    references: list[dict[str, Any]] | None = None,
) -> Contract:
    """The contract a new version gets: metadata and ruleSet as sent, or the previous
    version's if omitted (an explicit ``{}`` clears one, as in Confluent); its references."""
    return Contract(
        previous.metadata if metadata is None else (metadata or None),
        previous.rule_set if rule_set is None else (rule_set or None),
        references,
    )


#: The ``/config`` fields that shape every new version's contract (Confluent's names).
CONFIG_PARTS = ("defaultMetadata", "overrideMetadata", "defaultRuleSet", "overrideRuleSet")


def check_config_parts(document: Mapping[str, Any]) -> dict[str, Any]:
    """The contract parts a ``PUT /config`` body sets, each checked; absent ones left out.

    An explicit ``{}`` (or null-free empty part) is kept as ``{}``: it removes the part.
    """
    found: dict[str, Any] = {}
    for key in CONFIG_PARTS:
        if document.get(key) is None:
            continue
        check = check_metadata if key.endswith("Metadata") else check_rule_set
        found[key] = check(document[key], key) or {}
    return found


def merge_metadata(
    base: dict[str, Any] | None, top: dict[str, Any] | None
) -> dict[str, Any] | None:
    """``top`` over ``base``: properties of ``top`` win, tags and sensitive keys add up."""
    if not base or not top:
        return top or base or None
    tags = dict(base.get("tags", {}))
    for path, names in top.get("tags", {}).items():
        tags[path] = sorted(set(tags.get(path, [])) | set(names))
    merged: dict[str, Any] = {}
    if tags:
        merged["tags"] = tags
    properties = {**base.get("properties", {}), **top.get("properties", {})}
    if properties:
        merged["properties"] = properties
    sensitive = sorted(set(base.get("sensitive", [])) | set(top.get("sensitive", [])))
    if sensitive:
        merged["sensitive"] = sensitive
    return merged


def merge_rule_sets(
    base: dict[str, Any] | None, top: dict[str, Any] | None
) -> dict[str, Any] | None:
    """``top`` over ``base``, list by list: a rule of ``top`` replaces ``base``'s of that name."""
    if not base or not top:
        return top or base or None
    merged: dict[str, Any] = {}
    for key in RULE_LISTS:
        rules = {rule["name"]: rule for rule in base.get(key, [])}
        for rule in top.get(key, []):
            rules.pop(rule["name"], None)
            rules[rule["name"]] = rule
        if rules:
            merged[key] = list(rules.values())
    enable_at = top.get("enableAt", base.get("enableAt"))
    if enable_at is not None:
        merged["enableAt"] = enable_at
    return merged


def with_config(contract: Contract, parts: Mapping[str, Any]) -> Contract:
    """A version's contract under its config: defaults beneath what it has, overrides above."""
    metadata = merge_metadata(
        merge_metadata(parts.get("defaultMetadata"), contract.metadata),
        parts.get("overrideMetadata"),
    )
    rule_set = merge_rule_sets(
        merge_rule_sets(parts.get("defaultRuleSet"), contract.rule_set),
        parts.get("overrideRuleSet"),
    )
    return Contract(metadata, rule_set, contract.references)
