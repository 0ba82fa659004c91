"""The global policy set and the domains' overrides (the federated part)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mesh_stream.errors import ConfigurationError
from mesh_stream.governance import Severity, lint_repository, load_governance
from mesh_stream.governance.config import (
    builtin_rules,
    load_global_policies,
    parse_domain_overrides,
    parse_global_policies,
)
from mesh_stream.governance.policies import BUILTIN_POLICIES, PartitionBounds, SloBounds
from tests.unit.governance.conftest import line_containing

GLOBAL = """\
policies:
  partition-bounds:
    severity: warning
    overridable: true
    params:
      max: 12
  documentation:
    severity: error
"""


def test_global_file_sets_severity_overridability_and_params() -> None:
    rules = parse_global_policies(GLOBAL)
    partitions = rules["partition-bounds"]
    assert (partitions.severity, partitions.overridable) == (Severity.WARNING, True)
    assert partitions.params == PartitionBounds(min=PartitionBounds().min, max=12)
    assert rules["documentation"].overridable is False
    # policies the file does not mention keep their built-in setting
    assert rules["ownership"] == builtin_rules()["ownership"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "policies:\n  partition-bounds:\n    severity: error\n    params:\n      max: -3\n",
            5,
            "policies.partition-bounds.params.max: Input should be greater than or equal to 1",
        ),
        (
            "policies:\n  partition-bounds:\n    severity: error\n    params: {min: 9, max: 3}\n",
            4,
            "policies.partition-bounds.params: min 9 is above max 3",
        ),
        (
            "policies:\n  naming:\n    severity: fatal\n",
            3,
            "policies.naming.severity: Input should be 'error', 'warning' or 'off'",
        ),
        (
            "policies:\n  spelling:\n    severity: error\n",
            2,
            "policies.spelling: no such policy; known: "
            + ", ".join(n for n, p in BUILTIN_POLICIES.items() if p.configurable),
        ),
        (
            "policies:\n  schema-valid:\n    severity: warning\n",
            2,
            "policies.schema-valid: reserved for load problems, always an error; remove it",
        ),
        ("rules: {}\n", 1, "policies: Field required"),
        (
            "policies:\n  naming:\n",
            2,
            "policies.naming: should be a mapping of settings (`key: value` lines), got nothing",
        ),
        # never converted (h32: `true` was read as 1 %, `1` as overridable)
        (
            "policies:\n  slos-declared:\n    severity: error\n    params:\n"
            "      min_availability: true\n",
            5,
            "policies.slos-declared.params.min_availability: Input should be a valid number",
        ),
        (
            "policies:\n  partition-bounds:\n    severity: error\n    params:\n      max: '48'\n",
            5,
            "policies.partition-bounds.params.max: Input should be a valid integer (the file "
            "gives the text '48': write the number 48, unquoted)",
        ),
        (
            "policies:\n  partition-bounds:\n    severity: error\n    overridable: 1\n",
            4,
            "policies.partition-bounds.overridable: Input should be a valid boolean",
        ),
    ],
)
def test_bad_global_file_names_file_line_and_field(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_global_policies(text, "mesh-policies.yaml")
    first = str(caught.value).splitlines()[0]
    assert first == f"mesh-policies.yaml:{line}: {message}"
    assert "mesh lint --list-policies" in str(caught.value)


def test_a_policy_given_twice_in_the_global_file_is_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_global_policies(
            "policies:\n  naming: {severity: error}\n  naming: {severity: off}\n",
            "mesh-policies.yaml",
        )
    assert str(caught.value) == (
        "mesh-policies.yaml:3: naming: given twice (first on line 2); keep one"
    )


def test_global_file_that_is_not_yaml() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_global_policies("policies:\n  naming: a: b\n", "mesh-policies.yaml")
    assert str(caught.value) == (
        "mesh-policies.yaml:2: not valid YAML: mapping values are not allowed here"
    )


def test_legal_override_changes_the_rule_for_that_domain_only() -> None:
    rules = parse_global_policies(GLOBAL)
    overrides = parse_domain_overrides(
        "overrides:\n  partition-bounds:\n    reason: tiny topics\n    severity: error\n"
        "    params: {max: 4}\n",
        "shop",
        rules,
        "domains/shop/policies.yaml",
    )
    assert overrides.problems == ()
    applied = overrides.rules["partition-bounds"]
    assert applied.severity is Severity.ERROR
    # unmentioned params are inherited from the global set
    assert applied.params == PartitionBounds(min=PartitionBounds().min, max=4)


@pytest.mark.parametrize(
    ("text", "needle", "message"),
    [
        (
            "overrides:\n  documentation:\n    reason: docs later\n    severity: off\n",
            "documentation:",
            "domain 'shop' overrides policy 'documentation', which the global set does not "
            "mark overridable",
        ),
        (
            "overrides:\n  partition-bounds:\n    params: {max: 4}\n",
            "partition-bounds:",
            "overrides.partition-bounds.reason: Field required",
        ),
        (
            "overrides:\n  partition-bounds:\n    reason: x\n    params: {maximum: 4}\n",
            "params:",
            "overrides.partition-bounds.params.maximum: Extra inputs are not permitted",
        ),
        (
            "overrides:\n  spelling:\n    reason: x\n",
            "spelling:",
            "overrides.spelling: no such policy; known: "
            + ", ".join(n for n, p in BUILTIN_POLICIES.items() if p.configurable),
        ),
        (
            "overrides:\n  descriptor-valid:\n    reason: x\n",
            "descriptor-valid:",
            "overrides.descriptor-valid: reserved for load problems, always an error; "
            "a domain cannot override it",
        ),
    ],
)
def test_illegal_override_is_a_violation_and_not_applied(
    text: str, needle: str, message: str, tmp_path: Path
) -> None:
    source = tmp_path / "policies.yaml"
    source.write_text(text)
    overrides = parse_domain_overrides(text, "shop", parse_global_policies(GLOBAL), str(source))
    assert overrides.rules == {}
    assert [(v.policy, v.severity, v.file, v.line, v.message) for v in overrides.problems] == [
        ("policy-override", Severity.ERROR, str(source), line_containing(source, needle), message)
    ]


def test_override_file_that_is_not_yaml() -> None:
    overrides = parse_domain_overrides(
        "overrides:\n  naming: a: b\n", "shop", builtin_rules(), "domains/shop/policies.yaml"
    )
    assert [(v.policy, v.file, v.line, v.message) for v in overrides.problems] == [
        (
            "policy-override",
            "domains/shop/policies.yaml",
            2,
            "not valid YAML: mapping values are not allowed here",
        )
    ]


def test_severity_off_silences_an_overridable_policy(
    mesh_tree: Callable[[str], Path],
) -> None:
    root = mesh_tree("slos-declared")
    assert [v.policy for v in lint_repository(root).violations] == ["slos-declared"]
    (root / "mesh-policies.yaml").write_text(
        "policies:\n  slos-declared:\n    severity: error\n    overridable: true\n"
    )
    (root / "domains/shop/policies.yaml").write_text(
        "overrides:\n  slos-declared:\n    reason: best effort shop\n    severity: off\n"
    )
    assert lint_repository(root).violations == ()


def test_legal_override_fixture(mesh_tree: Callable[[str], Path]) -> None:
    """The insights domain relaxes an overridable rule: clean with, one violation without."""
    root = mesh_tree("override-legal")
    config = load_governance(root)
    assert config.problems == []
    insights = config.rules_for("insights")["slos-declared"].params
    assert isinstance(insights, SloBounds)
    assert config.rules_for("shop")["slos-declared"] == config.global_rules["slos-declared"]
    assert lint_repository(root).violations == ()

    (root / "domains/insights/policies.yaml").unlink()
    file = "domains/insights/products/customer-summary.yaml"
    freshness = float(
        (root / file).read_text().split("freshness_seconds:")[1].splitlines()[0].strip()
    )
    limit = config.global_rules["slos-declared"].params
    assert isinstance(limit, SloBounds)
    assert freshness > limit.max_freshness_seconds
    assert freshness <= insights.max_freshness_seconds
    found = [(v.policy, v.file, v.line, v.message) for v in lint_repository(root).violations]
    assert found == [
        (
            "slos-declared",
            file,
            line_containing(root / file, "freshness_seconds:"),
            f"slos.freshness_seconds {freshness:g} is above the maximum "
            f"{limit.max_freshness_seconds:g}",
        )
    ]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("", "mesh-policies.yaml:1: policies: Field required"),
        ("- naming\n", "mesh-policies.yaml:1: a policy file must be a YAML mapping, e.g. "),
    ],
    ids=["empty", "list"],
)
def test_an_empty_or_list_policy_file_is_named_without_internals(text: str, first: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_global_policies(text, "mesh-policies.yaml")
    assert str(caught.value).startswith(first)
    assert "_GlobalFile" not in str(caught.value)


NAN_WANTS = {
    "min_availability": "a percentage above 0 and at most 100, e.g. 99",
    "max_freshness_seconds": "a number of seconds above 0, e.g. 3600, or .inf for no maximum",
}


@pytest.mark.parametrize("value", [".nan", ".NaN", "'nan'"], ids=["nan", "NaN", "quoted"])
@pytest.mark.parametrize("param", list(NAN_WANTS))
def test_a_nan_bound_in_the_global_file_is_called_nan_not_out_of_range(
    param: str, value: str, tmp_path: Path
) -> None:
    """NaN failed the bound checks, so it was told "less than or equal to 100" or "greater
    than 0": the author looked for a number too big or too small."""
    path = tmp_path / "mesh-policies.yaml"
    path.write_text(
        f"policies:\n  slos-declared:\n    severity: error\n    params:\n      {param}: {value}\n"
    )
    with pytest.raises(ConfigurationError) as caught:
        load_global_policies(path)
    assert str(caught.value).splitlines()[0] == (
        f"{path}:5: policies.slos-declared.params.{param}: the value is NaN (not a number); "
        f"give {NAN_WANTS[param]}"
    )


def test_a_nan_bound_in_a_domain_override_is_called_nan(mesh_tree: Callable[[str], Path]) -> None:
    root = mesh_tree("override-legal")
    (root / "domains/insights/policies.yaml").write_text(
        "overrides:\n  slos-declared:\n    reason: nightly\n    params:\n"
        "      max_freshness_seconds: .nan\n"
    )
    [problem] = load_governance(root).problems
    assert (problem.policy, problem.file, problem.line, problem.message) == (
        "policy-override",
        "domains/insights/policies.yaml",
        5,
        "overrides.slos-declared.params.max_freshness_seconds: the value is NaN (not a "
        f"number); give {NAN_WANTS['max_freshness_seconds']}",
    )


def test_an_infinite_freshness_bound_still_means_no_maximum(tmp_path: Path) -> None:
    path = tmp_path / "mesh-policies.yaml"
    path.write_text(
        "policies:\n  slos-declared:\n    severity: error\n    params:\n"
        "      max_freshness_seconds: .inf\n"
    )
    bounds = load_global_policies(path)["slos-declared"].params
    assert isinstance(bounds, SloBounds)
    assert bounds.max_freshness_seconds == float("inf")


def test_a_reason_of_blanks_is_no_reason() -> None:
    """A domain override and a descriptor's compatibility_reason must say why (h32: three
    spaces were accepted)."""
    from pydantic import ValidationError

    from mesh_stream.descriptor import DataProduct
    from mesh_stream.governance.config import _Override
    from tests.fixtures.sdk.helpers import new_product

    with pytest.raises(ValidationError, match="reason\n  Value error, is blank: say why"):
        _Override.model_validate({"reason": "   ", "severity": "warning"})
    assert _Override.model_validate({"reason": " nightly export "}).reason == " nightly export "
    document = new_product("reason").to_document()
    document.update(compatibility="BACKWARD", compatibility_reason=" \t ")
    with pytest.raises(ValidationError, match="compatibility_reason\n  Value error, is blank"):
        DataProduct.model_validate(document)
