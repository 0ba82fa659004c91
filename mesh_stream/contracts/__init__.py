"""Data contracts, the one home: a descriptor's quality rules and PII marks compiled into
the Confluent ``ruleSet``/``metadata`` registered with each schema version
(:mod:`~mesh_stream.contracts.compiler`), and those CEL rules run on records before they are
published (:mod:`~mesh_stream.contracts.cel`).

The CEL package is imported only when a product has rules: ``import mesh_stream`` and a
publisher of a product without rules never load it.
"""

from __future__ import annotations

from mesh_stream.contracts.cel import RuleBreach, RuleCheck, RuleEngine, check_expression
from mesh_stream.contracts.compiler import (
    DLQ_TOPIC_PARAM,
    PII_TAG,
    Contract,
    compile_contract,
    pii_tags,
)

__all__ = [
    "DLQ_TOPIC_PARAM",
    "PII_TAG",
    "Contract",
    "RuleBreach",
    "RuleCheck",
    "RuleEngine",
    "check_expression",
    "compile_contract",
    "pii_tags",
]
