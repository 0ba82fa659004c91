"""The repository's own governance: its policy files, the policies reference, its sample mesh."""

from __future__ import annotations

import re
from pathlib import Path

from mesh_stream.governance import BUILTIN_POLICIES, lint_repository, load_governance
from mesh_stream.governance.config import builtin_rules, load_global_policies

REPO = Path(__file__).resolve().parents[3]


def test_global_file_lists_every_policy_with_the_built_in_values() -> None:
    """mesh-policies.yaml is explicit about every configurable policy, and the registry's
    default (the built-in set) enforces the same values."""
    text = (REPO / "mesh-policies.yaml").read_text()
    listed = re.findall(r"^  ([a-z-]+):$", text, flags=re.MULTILINE)
    assert listed == [name for name, p in BUILTIN_POLICIES.items() if p.configurable]
    assert load_global_policies(REPO / "mesh-policies.yaml") == builtin_rules()


def test_sample_domain_overrides_are_legal_and_applied() -> None:
    config = load_governance(REPO)
    assert config.problems == []
    assert config.domains, "at least one sample domain shows a legal override"
    for domain, overrides in config.domains.items():
        for name, rule in overrides.rules.items():
            assert config.global_rules[name].overridable
            assert config.rules_for(domain)[name] == rule
            assert rule.params != config.global_rules[name].params


def test_policies_reference_table_matches_the_policies() -> None:
    section = (REPO / "docs" / "reference" / "policies.md").read_text().split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z-]+)` \| (\w+) \| (yes|no) \|", section, flags=re.MULTILINE)
    rules = load_global_policies(REPO / "mesh-policies.yaml")
    assert rows == [
        (name, rule.severity.value, "yes" if rule.overridable else "no")
        for name, rule in rules.items()
    ]


def test_sample_mesh_is_lint_clean() -> None:
    """No errors; the one warning is the sample's documented example of a weaker level on a
    product others read (engagement-event: BACKWARD, with its reason)."""
    report = lint_repository(REPO)
    assert [(v.policy, v.severity.value, v.location) for v in report.violations] == [
        (
            "compatibility-with-consumers",
            "warning",
            "domains/customers/products/engagement-event.yaml:24",
        )
    ]
    assert "accepted for the declared reason: 'New interaction kinds" in (
        report.violations[0].message
    )
    assert report.products == len(list((REPO / "domains").glob("*/products/*.yaml")))
