"""Policy configuration: the global set and the domains' overrides (the federated part).

The global set is ``mesh-policies.yaml`` at the repository root::

    policies:
      partition-bounds:
        severity: error          # error | warning | off
        overridable: false       # may a domain change this rule for itself?
        params: {min: 1, max: 48}

A domain may override, in ``domains/<domain>/policies.yaml``, only what the global set
marks ``overridable: true``; every override states its reason::

    overrides:
      slos-declared:
        reason: nightly batch export, fresh once a day
        params: {max_freshness_seconds: 90000}

Policies the global file does not mention keep their built-in severity and parameters and
are not overridable. A broken global file is a :class:`ConfigurationError` (file:line and
field named); a broken or illegal domain override is reported as a ``policy-override``
violation and not applied.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
)

from mesh_stream.descriptor import load_yaml, said_why, yaml_problem
from mesh_stream.errors import ConfigurationError, validation_problem
from mesh_stream.files import not_utf8, read_regular_text
from mesh_stream.governance import locate
from mesh_stream.governance.model import Loc, Severity, Violation
from mesh_stream.governance.policies import BUILTIN_POLICIES, Policy

GLOBAL_POLICIES_FILE = "mesh-policies.yaml"
DOMAIN_POLICIES_FILE = "policies.yaml"


@dataclass(frozen=True)
class RuleSetting:
    """A policy as it applies: its effective severity, overridability and parameters."""

    policy: Policy
    severity: Severity
    overridable: bool
    params: BaseModel


def builtin_rules() -> dict[str, RuleSetting]:
    """Every built-in policy with its built-in severity, overridability and parameters."""
    return {
        name: RuleSetting(policy, policy.severity, policy.overridable, policy.params())
        for name, policy in BUILTIN_POLICIES.items()
    }


def _off_from_yaml(value: Any) -> Any:
    """YAML 1.1 reads a bare ``off`` as False; take it to mean severity ``off``."""
    return Severity.OFF if value is False else value


class _GlobalRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Annotated[Severity, BeforeValidator(_off_from_yaml)]
    overridable: StrictBool = False  # `1` or "no" would be read as a flag: said instead
    params: dict[str, Any] = Field(default_factory=dict)


class _GlobalFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policies: dict[str, _GlobalRule]


class _Override(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, AfterValidator(said_why)] = Field(
        min_length=1, description="Why the domain needs its own setting."
    )
    severity: Annotated[Severity | None, BeforeValidator(_off_from_yaml)] = None
    params: dict[str, Any] = Field(default_factory=dict)


class _DomainFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overrides: dict[str, _Override]


@dataclass(frozen=True)
class _Problem:
    loc: Loc
    message: str


def _read_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    try:
        return load_yaml(text), locate.compose(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigurationError(f"{where}: {yaml_problem(exc)}") from exc


def _validation_problems(exc: ValidationError, prefix: Loc = ()) -> list[_Problem]:
    problems = []
    for error in exc.errors():
        loc = (*prefix, *(part for part in error["loc"] if isinstance(part, (int, str))))
        # pydantic names our model class ("... or instance of _GlobalRule"): not the user's
        said = re.sub(r" or instance of _?\w+", "", validation_problem(error))
        given = error.get("input")
        if error["type"] in ("int_type", "float_type") and isinstance(given, str):
            with contextlib.suppress(ValueError):
                number = float(given)
                whole = int(number) if number.is_integer() else number
                said += f" (the file gives the text {given!r}: write the number {whole}, unquoted)"
        if error["type"] == "model_type":
            given = "nothing" if error.get("input") is None else type(error["input"]).__name__
            said = f"should be a mapping of settings (`key: value` lines), got {given}"
        problems.append(_Problem(loc, f"{'.'.join(map(str, loc))}: {said}"))
    return problems


def _params(
    policy: Policy, given: Mapping[str, Any], prefix: Loc
) -> tuple[BaseModel | None, list[_Problem]]:
    try:
        return policy.params.model_validate(dict(given)), []
    except ValidationError as exc:
        return None, _validation_problems(exc, prefix)


def parse_global_policies(text: str, source: str = GLOBAL_POLICIES_FILE) -> dict[str, RuleSetting]:
    """The effective global rules from the text of ``mesh-policies.yaml``.

    Raises :class:`ConfigurationError` listing every problem as ``source:line: field: msg``.
    """
    data, node = _read_yaml(text, source)
    if data is None:  # an empty file: named as a file without its `policies:`
        data = {}
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{source}:1: a policy file must be a YAML mapping, e.g. `policies: {{naming: "
            f"{{severity: error}}}}` (the policies: `mesh lint --list-policies`)"
        )
    rules = builtin_rules()
    problems: list[_Problem] = []
    try:
        document = _GlobalFile.model_validate(data)
    except ValidationError as exc:
        problems = _validation_problems(exc)
    else:
        for name, entry in document.policies.items():
            loc: Loc = ("policies", name)
            policy = BUILTIN_POLICIES.get(name)
            if policy is None:
                problems.append(
                    _Problem(
                        loc,
                        f"policies.{name}: no such policy; known: "
                        f"{', '.join(n for n, p in BUILTIN_POLICIES.items() if p.configurable)}",
                    )
                )
                continue
            if not policy.configurable:
                problems.append(
                    _Problem(
                        loc,
                        f"policies.{name}: reserved for load problems, always an error; remove it",
                    )
                )
                continue
            params, bad = _params(policy, entry.params, (*loc, "params"))
            problems.extend(bad)
            if params is not None:
                rules[name] = RuleSetting(policy, entry.severity, entry.overridable, params)
    if problems:
        raise ConfigurationError(
            "\n".join(f"{source}:{locate.line_of(node, p.loc) or 1}: {p.message}" for p in problems)
            + "\n(the policies and their parameters: `mesh lint --list-policies`)"
        )
    return rules


def _unreadable(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return not_utf8(exc)
    return str(exc.strerror)


def load_global_policies(path: Path) -> dict[str, RuleSetting]:
    """Read ``mesh-policies.yaml`` (see :func:`parse_global_policies`)."""
    try:
        text = read_regular_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"{path}: cannot read the global policies: {_unreadable(exc)}; pass --policies FILE "
            f"or create {GLOBAL_POLICIES_FILE} at the repository root"
        ) from exc
    return parse_global_policies(text, str(path))


@dataclass(frozen=True)
class DomainOverrides:
    """What one domain's ``policies.yaml`` legally changes, and what it got wrong."""

    domain: str
    source: str
    rules: Mapping[str, RuleSetting]
    problems: tuple[Violation, ...] = ()


def _override_violation(source: str, node: yaml.Node | None, problem: _Problem) -> Violation:
    reserved = BUILTIN_POLICIES["policy-override"]
    return Violation(
        policy=reserved.name,
        severity=Severity.ERROR,
        message=problem.message,
        why=reserved.why,
        fix=reserved.fix,
        field=".".join(map(str, problem.loc)) or None,
        file=source,
        line=locate.line_of(node, problem.loc),
    )


def parse_domain_overrides(
    text: str, domain: str, global_rules: Mapping[str, RuleSetting], source: str
) -> DomainOverrides:
    """Apply a domain's overrides to the global rules; illegal ones become violations."""
    try:
        data, node = load_yaml(text), locate.compose(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        violation = _override_violation(source, None, _Problem((), yaml_problem(exc)))
        if mark is not None:
            violation = replace(violation, line=mark.line + 1)
        return DomainOverrides(domain, source, {}, (violation,))
    problems: list[_Problem] = []
    applied: dict[str, RuleSetting] = {}
    try:
        document = _DomainFile.model_validate(data)
    except ValidationError as exc:
        problems = _validation_problems(exc)
    else:
        for name, entry in document.overrides.items():
            loc: Loc = ("overrides", name)
            rule = global_rules.get(name)
            if rule is None:
                problems.append(
                    _Problem(
                        loc,
                        f"overrides.{name}: no such policy; known: "
                        f"{', '.join(n for n, r in global_rules.items() if r.policy.configurable)}",
                    )
                )
                continue
            if not rule.policy.configurable:
                problems.append(
                    _Problem(
                        loc,
                        f"overrides.{name}: reserved for load problems, always an error; "
                        f"a domain cannot override it",
                    )
                )
                continue
            if not rule.overridable:
                problems.append(
                    _Problem(
                        loc,
                        f"domain {domain!r} overrides policy {name!r}, which the global set "
                        f"does not mark overridable",
                    )
                )
                continue
            merged = {**rule.params.model_dump(), **entry.params}
            params, bad = _params(rule.policy, merged, (*loc, "params"))
            problems.extend(bad)
            if params is not None:
                applied[name] = RuleSetting(
                    rule.policy, entry.severity or rule.severity, True, params
                )
    return DomainOverrides(
        domain,
        source,
        applied,
        tuple(_override_violation(source, node, problem) for problem in problems),
    )


@dataclass(frozen=True)
class GovernanceConfig:
    """The global rules plus every domain's legal overrides."""

    global_rules: Mapping[str, RuleSetting] = field(default_factory=builtin_rules)
    domains: Mapping[str, DomainOverrides] = field(default_factory=dict)
    source: str | None = None
    """Where the global rules came from (None: the built-in defaults)."""

    def rules_for(self, domain: str) -> dict[str, RuleSetting]:
        """The rules that hold for ``domain``: the global ones with its legal overrides."""
        rules = dict(self.global_rules)
        overrides = self.domains.get(domain)
        if overrides is not None:
            rules.update(overrides.rules)
        return rules

    @property
    def problems(self) -> list[Violation]:
        """Every ``policy-override`` violation of the domains' files."""
        return [v for overrides in self.domains.values() for v in overrides.problems]


def load_governance(
    root: Path, policies_file: Path | None = None, *, domains_dir: Path | None = None
) -> GovernanceConfig:
    """Global rules from ``policies_file`` (default ``root/mesh-policies.yaml``; built-in
    defaults when that file does not exist) and the overrides of ``domains_dir/*/`` (default
    ``root/domains``, a project's ``products`` folder)."""
    source: str | None = None
    if policies_file is not None:
        global_rules = load_global_policies(policies_file)
        source = str(policies_file)
    elif (root / GLOBAL_POLICIES_FILE).is_file():
        global_rules = load_global_policies(root / GLOBAL_POLICIES_FILE)
        source = GLOBAL_POLICIES_FILE
    else:
        global_rules = builtin_rules()
    domains: dict[str, DomainOverrides] = {}
    for path in sorted((domains_dir or root / "domains").glob(f"*/{DOMAIN_POLICIES_FILE}")):
        domain = path.parent.name
        display = path.relative_to(root).as_posix()
        try:
            text = read_regular_text(path)
        except (OSError, UnicodeDecodeError) as exc:
            problem = _Problem((), f"cannot read the domain's overrides: {_unreadable(exc)}")
            violation = _override_violation(display, None, problem)
            domains[domain] = DomainOverrides(domain, display, {}, (violation,))
            continue
        domains[domain] = parse_domain_overrides(text, domain, global_rules, display)
    return GovernanceConfig(global_rules, domains, source)
