"""Run the policies that hold for a product's domain over that product."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mesh_stream.governance.config import RuleSetting
from mesh_stream.governance.model import Finding, Severity, Violation
from mesh_stream.governance.policies import Review

Locator = Callable[[Finding], tuple[str | None, int | None]]
"""Maps a finding to ``(file, line)``; `mesh lint` knows the files, the registry does not."""


def check_product(
    review: Review, rules: Mapping[str, RuleSetting], locator: Locator | None = None
) -> list[Violation]:
    """Every violation of ``review.product`` against ``rules`` (policies set to off skipped)."""
    violations = []
    for name, rule in rules.items():
        if rule.severity is Severity.OFF or not rule.policy.configurable:
            continue
        for finding in rule.policy.check(review, rule.params):
            file, line = locator(finding) if locator is not None else (None, None)
            violations.append(
                Violation(
                    policy=name,
                    severity=_capped(rule.severity, finding.at_most),
                    message=finding.message,
                    why=rule.policy.why,
                    fix=rule.policy.fix,
                    product=review.product.name,
                    field=finding.field,
                    file=file,
                    line=line,
                )
            )
    return violations


_RANK = {Severity.OFF: 0, Severity.WARNING: 1, Severity.ERROR: 2}


def _capped(severity: Severity, cap: Severity | None) -> Severity:
    """``severity``, lowered to ``cap`` when the finding carries one."""
    return cap if cap is not None and _RANK[cap] < _RANK[severity] else severity
