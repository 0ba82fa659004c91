"""A descriptor's contract in Confluent's terms: the ``ruleSet`` and ``metadata`` registered
with each value schema version.

Confluent's data contracts live on the schema version, not beside it: its serializers read
``ruleSet.domainRules`` (and run the CEL conditions) and ``metadata.tags`` (field tags such
as ``PII``) from the version they frame records with. So the descriptor's ``rules:`` and the
schema's ``"pii": true`` marks are compiled here into exactly those shapes, and every
registration path sends them with the schema (:mod:`mesh_stream.registration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mesh_stream.contracts.cel import check_expression
from mesh_stream.descriptor import DataProduct, QualityRule, RuleFailure
from mesh_stream.errors import DescriptorError

__all__ = ["DLQ_TOPIC_PARAM", "PII_TAG", "Contract", "compile_contract", "pii_tags"]

#: The rule parameter confluent-kafka's ``DlqAction`` reads for the dead-letter topic.
DLQ_TOPIC_PARAM = "dlq.topic"
#: The field tag a ``"pii": true`` mark becomes.
PII_TAG = "PII"


@dataclass(frozen=True)
class Contract:
    """What is registered with a schema besides its text: Confluent ``metadata`` and
    ``ruleSet``. A product without rules sends an empty ``ruleSet``, not none: Confluent
    gives a version registered without one the previous version's rules, so rules removed
    from the descriptor would live on."""

    metadata: dict[str, Any]
    rule_set: dict[str, Any]


def compile_contract(product: DataProduct, schema: Mapping[str, Any]) -> Contract:
    """The contract of ``product`` with value schema ``schema`` (a parsed ``.avsc``).

    Every rule's CEL expression is compiled first: one that does not parse is a
    :class:`DescriptorError` naming the product, the rule and the parser's complaint, so a
    bad rule never reaches the registry.
    """
    for rule in product.rules:
        problem = check_expression(rule.expr)
        if problem is not None:
            raise DescriptorError(
                f"{product.name}: rules.{rule.name}: expr {rule.expr!r} is not valid CEL: "
                f"{problem}; fix the expression in the product descriptor"
            )
    rules = [_confluent_rule(product, rule) for rule in product.rules]
    return Contract(
        metadata=_metadata(product, schema),
        rule_set={"domainRules": rules} if rules else {},
    )


def _confluent_rule(product: DataProduct, rule: QualityRule) -> dict[str, Any]:
    """One quality rule as a Confluent rule: a CEL condition checked when writing."""
    compiled: dict[str, Any] = {"name": rule.name}
    if rule.doc:
        compiled["doc"] = rule.doc
    compiled.update(
        {
            "kind": "CONDITION",
            "mode": "WRITE",
            "type": "CEL",
            "expr": rule.expr,
            "onFailure": rule.on_failure.value,
        }
    )
    if rule.on_failure is RuleFailure.DLQ:
        compiled["params"] = {DLQ_TOPIC_PARAM: product.dlq_topic}
    return compiled


def _metadata(product: DataProduct, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Field tags from the ``"pii": true`` marks, and the product's identity as properties
    (what a Confluent tool shows next to the schema)."""
    metadata: dict[str, Any] = {}
    tags = pii_tags(schema)
    if tags:
        metadata["tags"] = tags
    metadata["properties"] = {
        "product": product.name,
        "domain": product.domain,
        "owner": product.owner.team,
        "owner_contact": product.owner.contact,
        "classification": product.classification.value,
        "product_version": str(product.version),
    }
    return metadata


def pii_tags(schema: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{"<record full name>.<field>": ["PII"]}`` for every field marked ``"pii": true``.

    The key is the one confluent-kafka matches a field against (the full name of the record
    holding it, a dot, the field name), so nested records carry their own full names.
    """
    tags: dict[str, list[str]] = {}
    _walk(schema, "", tags, set())
    return dict(sorted(tags.items()))


def _walk(node: Any, namespace: str, tags: dict[str, list[str]], seen: set[str]) -> None:
    if isinstance(node, list):
        for branch in node:
            _walk(branch, namespace, tags, seen)
        return
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    if kind == "array":
        _walk(node.get("items"), namespace, tags, seen)
    elif kind == "map":
        _walk(node.get("values"), namespace, tags, seen)
    elif kind == "record":
        name = str(node.get("name", ""))
        if "." in name:
            full_name = name
        else:
            own = node.get("namespace")
            space = str(own) if own is not None else namespace
            full_name = f"{space}.{name}" if space else name
        if full_name in seen:
            return
        seen.add(full_name)
        inner_space = full_name.rpartition(".")[0]
        for field in node.get("fields", []):
            if not isinstance(field, Mapping):
                continue
            if field.get("pii") is True:
                tags[f"{full_name}.{field.get('name')}"] = [PII_TAG]
            _walk(field.get("type"), inner_space, tags, seen)
    elif isinstance(kind, (Mapping, list)):
        _walk(kind, namespace, tags, seen)
