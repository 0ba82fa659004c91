"""Run a schema version's CEL quality rules on records, as confluent-kafka's serializer does.

The evaluator is the ``common-expression-language`` package (``import cel``, a Rust CEL
implementation): on the 12-field benchmark record with 3 rules it costs about a thirtieth of
``cel-python``, the package confluent-kafka's own CEL executor uses, and both agree on the
records the tests try (tests/unit/sdk/test_rules_cel.py runs confluent-kafka's executor next
to this one). It is imported only when a product has rules, so the SDK import stays light.

Semantics copied from confluent-kafka's serializer (``_execute_rules_with_phase`` and
``CelExecutor``): domain rules run in order on the record as given, with the record bound to
``message``; an expression ``guard; expr`` checks ``expr`` only where ``guard`` holds; a result
that is false (Python truthiness) or an evaluation error is a failure, and the rule's
``onFailure`` (default ERROR) decides: ``ERROR`` refuses the record, ``DLQ`` dead-letters it,
``NONE`` lets it go on to the next rule. Disabled rules and rules of other modes are skipped.

One speed-up keeps the semantics: converting a Python dict into CEL values costs about a
microsecond per field, so when every use of ``message`` in every rule is a plain field access
(``message.amount``, ``message.address.city``), only those top-level fields are handed over.
A record that lacks one still lacks it, so ``has()`` and missing-field errors are unchanged.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh_stream.errors import ConfigurationError

__all__ = [
    "CONFLUENT_ONLY_FUNCTIONS",
    "RuleBreach",
    "RuleCheck",
    "RuleEngine",
    "check_expression",
]

#: Functions confluent-kafka's CEL executor adds to CEL (protovalidate's); this evaluator
#: does not have them, so a rule using one is refused where it is declared.
CONFLUENT_ONLY_FUNCTIONS = frozenset(
    {"isEmail", "isHostname", "isIpv4", "isIpv6", "isUri", "isUriRef", "isUuid", "format"}
)
_WRITE_MODES = frozenset({"WRITE", "WRITEREAD"})
_ACTIONS = frozenset({"ERROR", "DLQ", "NONE"})
# Strings and comments of a CEL expression, so a `message` inside them is not a use.
_LITERALS = re.compile(
    r"""(?:[rR][bB]?|[bB][rR])(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'[^'\n]*'|"[^"\n]*")"""
    r"""|[bB]?(?:'''(?:\\[\s\S]|[\s\S])*?'''|\"\"\"(?:\\[\s\S]|[\s\S])*?\"\"\""""
    r"""|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")"""
    r"""|//[^\n]*"""
)
_MESSAGE = re.compile(r"\bmessage\b")
_FIELD_ACCESS = re.compile(r"\bmessage\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")
_NATIVE = frozenset({str, int, float, bool, type(None), bytes})
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()


def _cel() -> Any:
    """The CEL package, imported on first need (the SDK import must not pay for it)."""
    try:
        import cel
    except ImportError as exc:  # pragma: no cover - a dependency of mesh-stream
        raise ConfigurationError(
            "this product has data-quality rules (CEL) but the package "
            "`common-expression-language` is not installed; `pip install mesh-stream` "
            "brings it"
        ) from exc
    return cel


def _parts(expr: str) -> tuple[str | None, str]:
    """(guard, expression) the way confluent-kafka splits ``guard; expr`` (first ``;``)."""
    guard, separator, rest = expr.partition(";")
    if not separator:
        return None, expr
    return (guard if guard.strip() else None), rest


def check_expression(expr: str) -> str | None:
    """None when ``expr`` compiles (guard included), else the parser's complaint."""
    cel = _cel()
    for part in _parts(expr):
        if part is None:
            continue
        try:
            program = cel.compile(part)
        except ValueError as exc:
            return " ".join(str(exc).split())
        foreign = sorted(CONFLUENT_ONLY_FUNCTIONS & set(program.references()["functions"]))
        if foreign:
            return (
                f"{', '.join(foreign)} is a confluent-kafka extension the mesh-stream publisher "
                "does not run (use matches() with a regular expression instead)"
            )
    return None


def _fields_read(expressions: Sequence[str]) -> frozenset[str] | None:
    """The top-level fields the expressions read, or None when one uses ``message`` other
    than as ``message.<field>`` (then the whole record is handed over)."""
    fields: set[str] = set()
    for expr in expressions:
        code = _LITERALS.sub(" ", expr)
        uses = len(_MESSAGE.findall(code))
        accesses = _FIELD_ACCESS.findall(code)
        if len(accesses) != uses:
            return None
        fields.update(accesses)
    return frozenset(fields)


def _cel_value(value: Any) -> Any:
    """``value`` as the CEL package takes it, converted like confluent-kafka's executor
    (a UUID is its string, a date its day number since the epoch)."""
    if type(value) in _NATIVE:
        return value
    if isinstance(value, Mapping):
        return {str(key): _cel_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cel_value(item) for item in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return value.toordinal() - _EPOCH_DAY
    return value


@dataclass(frozen=True)
class RuleCheck:
    """One CEL condition of a schema version's ruleSet, compiled."""

    name: str
    expr: str
    doc: str | None
    action: str  # ERROR | DLQ | NONE
    dlq_topic: str | None
    guard: Any  # cel.Program or None
    program: Any  # cel.Program

    @property
    def failure_text(self) -> str:
        """What confluent-kafka says of a false condition (its ``__rule.exception``)."""
        return self.doc or f"Rule expr failed: {self.expr}"


@dataclass(frozen=True)
class RuleBreach:
    """A record failed ``rule``: its result was false, or evaluating it raised ``error``."""

    rule: RuleCheck
    error: str | None = None

    @property
    def reason(self) -> str:
        if self.error is None:
            return self.rule.failure_text
        return f"{self.rule.failure_text} ({self.error})"


class RuleEngine:
    """The write-side CEL conditions of one schema version; :meth:`first_breach` per record."""

    def __init__(self, checks: Sequence[RuleCheck], fields: frozenset[str] | None) -> None:
        self.checks = tuple(checks)
        self._fields = tuple(sorted(fields)) if fields is not None else None
        self._needs_now = any("now" in check.expr for check in self.checks)
        self._context: Callable[[dict[str, Any]], Any] = _cel().Context

    @property
    def has_dlq(self) -> bool:
        return any(check.action == "DLQ" for check in self.checks)

    @classmethod
    def from_rule_set(
        cls, rule_set: Mapping[str, Any] | None, *, owner: str, dlq_topic: str
    ) -> RuleEngine | None:
        """The engine for a registered ``ruleSet`` (None when it has nothing to run on write).

        ``owner`` names the product/subject in errors; ``dlq_topic`` is where DLQ rules send
        records unless their ``dlq.topic`` parameter says otherwise. A write rule this
        publisher cannot run (not a CEL condition, an unknown action) is refused here rather
        than skipped, since skipping it would publish records its contract forbids.
        """
        if not rule_set:
            return None
        cel = _cel()
        checks: list[RuleCheck] = []
        for index, rule in enumerate(rule_set.get("domainRules") or ()):
            where = f"{owner}: ruleSet.domainRules[{index}]"
            name = str(rule.get("name", f"#{index}"))
            if rule.get("disabled") or str(rule.get("mode", "")).upper() not in _WRITE_MODES:
                continue
            kind, kind_of = str(rule.get("type", "")).upper(), str(rule.get("kind", "")).upper()
            if kind != "CEL" or kind_of != "CONDITION":
                raise ConfigurationError(
                    f"{where} ({name}): a {kind_of or '?'} rule of type {kind or '?'} runs on "
                    "write, and the mesh-stream publisher runs CEL conditions only; publish "
                    "this product with confluent-kafka's serializer or change the rule"
                )
            expr = rule.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                continue  # confluent-kafka skips a rule without an expression too
            action = str(rule.get("onFailure") or "ERROR").upper()
            if "," in action:
                action = action.split(",", 1)[0].strip()
            if action not in _ACTIONS:
                raise ConfigurationError(
                    f"{where} ({name}): onFailure {action!r} is not ERROR, DLQ or NONE, the "
                    "actions the mesh-stream publisher runs"
                )
            problem = check_expression(expr)
            if problem is not None:
                raise ConfigurationError(f"{where} ({name}): expr {expr!r}: {problem}")
            guard, body = _parts(expr)
            params = rule.get("params") or {}
            checks.append(
                RuleCheck(
                    name=name,
                    expr=expr,
                    doc=rule.get("doc") or None,
                    action=action,
                    dlq_topic=str(params.get("dlq.topic") or dlq_topic),
                    guard=cel.compile(guard) if guard is not None else None,
                    program=cel.compile(body),
                )
            )
        if not checks:
            return None
        return cls(checks, _fields_read([check.expr for check in checks]))

    def _message(self, record: Mapping[str, Any]) -> dict[str, Any]:
        fields = self._fields
        if fields is None:
            return {str(key): _cel_value(value) for key, value in record.items()}
        return {name: _cel_value(record[name]) for name in fields if name in record}

    def first_breach(self, record: Mapping[str, Any]) -> RuleBreach | None:
        """The first rule (in order) whose failure action is ERROR or DLQ that ``record``
        fails, or None: the record may be published. NONE rules that fail are passed by."""
        variables: dict[str, Any] = {"message": self._message(record)}
        if self._needs_now:
            variables["now"] = dt.datetime.now(tz=dt.UTC)
        context = self._context(variables)
        for check in self.checks:
            try:
                if check.guard is not None and not check.guard.execute(context):
                    continue
                passed = bool(check.program.execute(context))
                error = None
            except Exception as exc:  # any evaluation error fails the rule, as in confluent-kafka
                passed, error = False, " ".join(str(exc).split()) or type(exc).__name__
            if passed or check.action == "NONE":
                continue
            return RuleBreach(check, error)
        return None
