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

Three speed-ups keep the semantics. Converting a Python dict into CEL values costs about a
microsecond per field, so when every use of ``message`` in a rule is a plain field access
(``message.amount``, ``message.address.city``), the rule gets only those top-level fields
(a record that lacks one still lacks it, so ``has()`` and missing-field errors are
unchanged). Such a rule is also compiled a second time with each ``message.<field>`` renamed
to a variable of its own (``__m_<field>``, strings and comments untouched) and evaluated in a
flat context of those variables, which the CEL package builds about four times faster than a
nested ``message`` map; a missing field is then an unbound variable, an evaluation error as
before, and any error is evaluated again the original way so the verdict and its message are
the original's. Not renamed: rules with ``has(message.<field>)`` (the macro needs a field
selection) or with ``message`` selected from something else (``x.message.y``). And a CEL
expression is a pure function of what it reads: a rule that reads only scalar fields
remembers its verdict per exact combination of their values and types, so a rule over a
currency or a status code is evaluated once per distinct value. At :data:`MEMO_SIZE`
verdicts the memo starts over, or is dropped for good when fewer than a quarter of the
lookups found a verdict (the values hardly repeat). Not remembered: rules reading ``now``,
nested records or lists, or the whole ``message``. A key holds each value with its type (``1``
and ``True`` are equal in Python, not in CEL), and a float zero as its text (``0.0`` and
``-0.0`` too).
"""

from __future__ import annotations

import datetime as dt
import importlib.machinery
import importlib.util
import math
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesh_stream.errors import ConfigurationError
from mesh_stream.schema.codec import parse_schema, with_logical_defaults

__all__ = [
    "CONFLUENT_ONLY_FUNCTIONS",
    "MEMO_SIZE",
    "RuleBreach",
    "RuleCheck",
    "RuleEngine",
    "check_expression",
    "field_paths_named",
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
# Where renaming `message.<field>` would change the meaning: `has()` needs a field selection,
# and a `message` selected from another value is not the record.
_NOT_RENAMABLE = re.compile(r"\bhas\s*\(\s*message\s*\.\s*\w+\s*\)|\.\s*message\b|__m_")
_PREFIX = "__m_"
_NATIVE = frozenset({str, int, float, bool, type(None), bytes})
#: Verdicts a rule remembers before it forgets them all and starts over.
MEMO_SIZE = 4096


class _Missing:
    """A field the record does not have (part of a memo key, unlike any value)."""


_MISSING = _Missing()
_KEYABLE = frozenset({str, int, bool, type(None), bytes, _Missing})
Verdict = tuple[bool, str | None]  # (passed, evaluation error)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()


_LOADED: list[Any] = []


def _cel() -> Any:
    """The CEL package's compiled core, loaded on first need (the SDK import must not pay
    for it). The package's ``__init__`` also imports its command-line tool (typer, rich,
    prompt-toolkit: about 0.6 s), so the extension module ``cel.cel`` is loaded by itself
    and registered under its own name (a later ``import cel`` then reuses it); if that
    fails, the package is imported the ordinary way."""
    if _LOADED:
        return _LOADED[0]
    module = sys.modules.get("cel.cel") or _extension_alone()
    if module is None:
        try:
            import cel as module
        except ImportError as exc:  # pragma: no cover - a dependency of mesh-stream
            raise ConfigurationError(
                "this product has data-quality rules (CEL) but the package "
                "`common-expression-language` is not installed; `pip install mesh-stream` "
                "brings it"
            ) from exc
    _LOADED.append(module)
    return module


def _extension_alone() -> Any:
    try:
        package = importlib.util.find_spec("cel")
        folders = list(package.submodule_search_locations or []) if package else []
        for folder in folders:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = Path(folder) / f"cel{suffix}"
                if not path.is_file():
                    continue
                spec = importlib.util.spec_from_file_location("cel.cel", path)
                if spec is None or spec.loader is None:
                    return None
                module = importlib.util.module_from_spec(spec)
                sys.modules["cel.cel"] = module
                spec.loader.exec_module(module)
                if hasattr(module, "compile") and hasattr(module, "Context"):
                    return module
                del sys.modules["cel.cel"]
                return None
    except Exception:  # any surprise in the package layout: the ordinary import instead
        sys.modules.pop("cel.cel", None)
    return None


def _parts(expr: str) -> tuple[str | None, str]:
    """(guard, expression) the way confluent-kafka splits ``guard; expr`` (first ``;``)."""
    guard, separator, rest = expr.partition(";")
    if not separator:
        return None, expr
    return (guard if guard.strip() else None), rest


#: The longest rule expression taken. The CEL parser panics (a Rust panic, which Python
#: cannot catch as an ordinary exception) on a syntax error past column 65,535, and no rule
#: needs a fraction of that.
MAX_EXPRESSION_CHARS = 10_000

#: The deepest comprehensions (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) may
#: nest. Each level multiplies a rule's work by a list's length, and the evaluator cannot
#: be interrupted (not even by Ctrl-C): five levels over 100 items are 10^10 steps, for
#: every record.
MAX_COMPREHENSION_NESTING = 2
_COMPREHENSION_OR_PAREN = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(|[()]")


def comprehension_nesting(expr: str) -> int:
    """How deep ``expr`` nests comprehensions (strings and comments aside)."""
    open_parens: list[bool] = []  # per open parenthesis: does it open a comprehension?
    deepest = inside = 0
    for match in _COMPREHENSION_OR_PAREN.finditer(_LITERALS.sub(" ", expr)):
        token = match.group()
        if token == ")":
            if open_parens and open_parens.pop():
                inside -= 1
        elif token == "(":
            open_parens.append(False)
        else:
            open_parens.append(True)
            inside += 1
            deepest = max(deepest, inside)
    return deepest


def _is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust panic surfacing from the CEL package (pyo3's
    ``PanicException``, a BaseException that no module exports under a stable name)."""
    return type(exc).__name__ == "PanicException"


def check_expression(expr: str) -> str | None:
    """None when ``expr`` compiles (guard included), else the parser's complaint."""
    if len(expr) > MAX_EXPRESSION_CHARS:
        return (
            f"is {len(expr):,} characters long; a rule's expression is at most "
            f"{MAX_EXPRESSION_CHARS:,}"
        )
    nesting = comprehension_nesting(expr)
    if nesting > MAX_COMPREHENSION_NESTING:
        return (
            f"nests comprehensions (all, exists, exists_one, map, filter) {nesting} deep; at "
            f"most {MAX_COMPREHENSION_NESTING}: each level multiplies the work by a list's "
            f"length, for every record"
        )
    programs = []
    for part in _parts(expr):
        if part is None:
            continue
        program, problem = _compiled(part)
        if problem is not None:
            return problem
        programs.append(program)
    for program in programs:
        foreign = sorted(CONFLUENT_ONLY_FUNCTIONS & set(program.references()["functions"]))
        if foreign:
            return (
                f"{', '.join(foreign)} is a confluent-kafka extension the mesh-stream publisher "
                "does not run (use matches() with a regular expression instead)"
            )
    return None


def syntax_problem(expr: str) -> str | None:
    """None when every part of ``expr`` (its guard too) parses as CEL, else the parser's
    complaint: what any CEL executor would refuse, Confluent's extensions allowed (the
    registry keeps rules other clients run)."""
    for part in _parts(expr):
        if part is not None:
            problem = _compiled(part)[1]
            if problem is not None:
                return problem
    return None


def _compiled(part: str) -> tuple[Any, str | None]:
    """(``part`` compiled, None), or (None, why it does not compile)."""
    try:
        return _cel().compile(part), None
    except ValueError as exc:
        return None, _parser_complaint(str(exc))
    except BaseException as exc:
        if not _is_panic(exc):
            raise
        return None, f"the CEL parser failed on it ({' '.join(str(exc).split())})"


#: The longest parser complaint repeated: the parser echoes the expression, several times
#: for some errors (28 KB for brackets nested 3,000 deep).
MAX_COMPLAINT_CHARS = 400


def _parser_complaint(text: str) -> str:
    said = " ".join(text.split())
    if "Recursion limit" in said:
        return "nested too deeply for the CEL parser (its recursion limit); flatten it"
    return said if len(said) <= MAX_COMPLAINT_CHARS else f"{said[:MAX_COMPLAINT_CHARS]}..."


# `has(message.a.b)` may name a field that is missing; what it tests is not read.
_HAS_FIELD = re.compile(r"\bhas\s*\(\s*message((?:\s*\.\s*\w+)+)\s*\)")
# `message.a.b` as far as it selects fields: a name followed by `(` is a method call.
_FIELD_PATH = re.compile(r"\bmessage((?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*\b(?!\s*\())+)")


# a comprehension or binding that names its variable `message`: past it, `message.x` is no
# longer the record's field, so what the expression reads cannot be told by its text
_REBINDS_MESSAGE = re.compile(
    r"\b(?:all|exists|exists_one|map|filter)\s*\(\s*message\s*,|\bbind\s*\(\s*message\s*,"
)


def field_paths_named(expr: str) -> list[tuple[str, ...]]:
    """The field paths ``expr`` reads as ``message.<field>[.<field>...]``, in order (strings
    and comments aside): ``message.lines[0]`` reads ``("lines",)``, ``message.name.size()``
    reads ``("name",)``. A path the expression tests with ``has()`` is left out, and so is
    what it reads below one (``!has(message.note) || size(message.note) < 9`` reads nothing
    that must exist); an expression that rebinds ``message`` names none (h46)."""
    text = _LITERALS.sub(" ", expr)
    if _REBINDS_MESSAGE.search(text):
        return []
    tested = {_path(match.group(1)) for match in _HAS_FIELD.finditer(text)}
    code = _HAS_FIELD.sub(" ", text)
    paths = (
        _path(match.group(1))
        for match in _FIELD_PATH.finditer(code)
        # `l.message.code` selects from another value (a comprehension's variable)
        if not code[: match.start()].rstrip().endswith(".")
    )
    return [
        path
        for path in dict.fromkeys(paths)
        if not any(path[: len(guard)] == guard for guard in tested)
    ]


def _path(selections: str) -> tuple[str, ...]:
    """``("a", "b")`` of ``". a . b"``: the fields a chain of selections names."""
    return tuple(part.strip() for part in selections.split(".")[1:])


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


def _renamed(part: str) -> str | None:
    """``part`` with each ``message.<field>`` outside strings and comments renamed to the
    variable ``__m_<field>``, or None when renaming could change its meaning."""
    code = _LITERALS.sub(" ", part)
    if _NOT_RENAMABLE.search(code):
        return None
    pieces: list[str] = []
    start = 0
    for literal in _LITERALS.finditer(part):
        pieces.append(_FIELD_ACCESS.sub(_PREFIX + r"\1", part[start : literal.start()]))
        pieces.append(literal.group())
        start = literal.end()
    pieces.append(_FIELD_ACCESS.sub(_PREFIX + r"\1", part[start:]))
    renamed = "".join(pieces)
    return None if _MESSAGE.search(_LITERALS.sub(" ", renamed)) else renamed


def _flat_versions(
    cel: Any, guard: str | None, body: str, fields: frozenset[str]
) -> dict[str, Any]:
    """The renamed guard and condition of a rule reading ``fields`` (see :func:`_renamed`),
    compiled, as :class:`RuleCheck` keywords; empty when a part cannot be renamed."""
    flat_body = _renamed(body)
    flat_guard = _renamed(guard) if guard is not None else None
    if flat_body is None or (guard is not None and flat_guard is None):
        return {}
    try:
        compiled_guard = cel.compile(flat_guard) if flat_guard is not None else None
        compiled_body = cel.compile(flat_body)
    except ValueError:  # a form the renaming did not foresee: evaluate the original
        return {}
    return {
        "flat_guard": compiled_guard,
        "flat_program": compiled_body,
        "variables": tuple((name, _PREFIX + name) for name in sorted(fields)),
        "pass_test": flat_body if flat_guard is None else _either(flat_guard, flat_body),
    }


def _grouped(expr: str) -> str:
    """``expr`` in parentheses, on lines of its own (a ``//`` comment ends at its line)."""
    return f"(\n{expr}\n)"


def _either(guard: str, body: str) -> str:
    """The renamed ``guard; body`` as one CEL test that is ``true`` exactly when the rule
    passes with a boolean guard (a guard that is not a boolean is an error here, and the
    rule-by-rule path then applies Python truthiness as confluent-kafka does)."""
    return f"{_grouped(guard)} ? {_grouped(body)} : true"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TIMESTAMP_UNITS = {
    "timestamp-millis": dt.timedelta(milliseconds=1),
    "timestamp-micros": dt.timedelta(microseconds=1),
    "local-timestamp-millis": dt.timedelta(milliseconds=1),
    "local-timestamp-micros": dt.timedelta(microseconds=1),
}


def timestamp_fields(schema: Mapping[str, Any] | None) -> dict[str, dt.timedelta]:
    """The root record's timestamp fields (also as a union's branch), each with the unit
    of a number given for it."""
    found: dict[str, dt.timedelta] = {}
    fields = schema.get("fields") if isinstance(schema, Mapping) else None
    for field in fields if isinstance(fields, list) else ():
        if not isinstance(field, Mapping) or not isinstance(field.get("name"), str):
            continue
        branches = field.get("type")
        for branch in branches if isinstance(branches, list) else [branches]:
            if not isinstance(branch, Mapping) or branch.get("type") != "long":
                continue
            logical = branch.get("logicalType")
            unit = _TIMESTAMP_UNITS.get(logical) if isinstance(logical, str) else None
            if unit is not None:
                found[field["name"]] = unit
    return found


def written_defaults(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The root record's fields that have a default, each with the value a record leaving it
    out is written with (Avro fills it in): what a rule reading the field sees then, as a
    reader of the record would (an optional field left out is ``null``, not missing)."""
    fields = schema.get("fields") if isinstance(schema, Mapping) else None
    if not isinstance(fields, list) or not any(
        isinstance(field, Mapping) and "default" in field for field in fields
    ):
        return {}
    try:
        parsed = with_logical_defaults(parse_schema(dict(schema or {})))
    except Exception:  # not a schema the encoder takes either: it says what is wrong
        return {}
    return {
        str(field["name"]): _as_written(field["type"], field["default"])
        for field in parsed.get("fields", ())
        if "default" in field
    }


def _as_written(kind: Any, default: Any) -> Any:
    """A default as the encoder writes it: Avro gives a ``bytes`` or ``fixed`` default as a
    string of code points 0-255, which is those bytes (h46: the rules saw the str)."""
    if isinstance(kind, list):  # a union's default is of its first branch
        kind = kind[0] if kind else None
    name = kind.get("type") if isinstance(kind, Mapping) else kind
    if name in ("bytes", "fixed") and isinstance(default, str):
        if isinstance(kind, Mapping) and kind.get("logicalType") == "decimal":
            return default  # with_logical_defaults made it a Decimal already, or left it
        try:
            return default.encode("latin-1")
        except UnicodeEncodeError:
            return default
    return default


def _cel_value(value: Any) -> Any:
    """``value`` as the CEL package takes it, converted like confluent-kafka's executor
    (a UUID is its string, a date its day number since the epoch). A datetime is its
    instant in UTC, as Avro keeps it: ``getHours()`` of 01:00+01:00 is 0, as of 00:00Z (a
    naive one is UTC, as the encoder takes it)."""
    if type(value) in _NATIVE:
        return value
    if isinstance(value, Mapping):
        return {str(key): _cel_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cel_value(item) for item in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return value.toordinal() - _EPOCH_DAY
    return value


@dataclass(eq=False, slots=True)
class RuleCheck:
    """One CEL condition of a schema version's ruleSet, compiled, with its memo."""

    name: str
    expr: str
    doc: str | None
    action: str  # ERROR | DLQ | NONE
    dlq_topic: str | None
    guard: Any  # cel.Program or None
    program: Any  # cel.Program
    context: Callable[..., Any]  # cel.Context
    #: The top-level fields it reads (None: it reads ``message`` as a whole).
    fields: tuple[str, ...] | None = None
    uses_now: bool = False
    #: Remembered verdicts by the exact values of ``fields`` (None: not remembered).
    memo: dict[tuple[Any, ...], Verdict] | None = None
    lookups: int = 0
    #: The guard and condition with ``message.<field>`` renamed to flat variables (None:
    #: not renamed), and (field, variable) for each field read.
    flat_guard: Any = None
    flat_program: Any = None
    variables: tuple[tuple[str, str], ...] = ()
    #: (field, variable) of a renamed rule that reads one field, has no guard and no
    #: ``now``: the fast path of :meth:`verdict` (None: the general one).
    one: tuple[str, str] | None = None
    #: The renamed rule as one CEL test over flat variables, ``true`` exactly when the rule
    #: passes (``guard ? body : true`` with a guard); None when not renamed.
    pass_test: str | None = None

    def __post_init__(self) -> None:
        if (
            len(self.variables) == 1
            and self.flat_program is not None
            and self.flat_guard is None
            and not self.uses_now
        ):
            self.one = self.variables[0]

    def verdict(self, record: Mapping[str, Any]) -> Verdict:
        """(passed, error) for ``record`` of a rule that reads only ``fields``: remembered,
        or evaluated on those fields. The hot path of the publisher, so a rule reading one
        field (the common case) takes a path of its own with few calls."""
        one = self.one
        if one is None:
            return self._verdict_general(record)
        value = record.get(one[0], _MISSING)
        kind = type(value)
        memo = self.memo
        key: tuple[Any, ...] | None = None
        if memo is not None:
            if kind in _KEYABLE:
                key = (kind, value)
            elif kind is float:  # 0.0 == -0.0 in Python, not in CEL: zeros by their text
                key = (kind, value if value else repr(value))
            if key is not None:
                self.lookups += 1
                found = memo.get(key)
                if found is not None:
                    return found
        if kind in _NATIVE:
            try:
                passed = self.flat_program.execute({one[1]: value})
            except Exception:  # an evaluation error: the original way says it in its words
                found = self.evaluate_fields(record)
            else:
                found = (True, None) if passed else (False, None)
        else:  # missing, or a value to convert first
            found = self.evaluate_fields(record)
        if key is not None and memo is not None:
            self._remember(memo, key, found)
        return found

    def _verdict_general(self, record: Mapping[str, Any]) -> Verdict:
        memo = self.memo
        if memo is None:
            return self.evaluate_fields(record)
        key = self._key(record, self.fields or ())
        if key is None:
            return self.evaluate_fields(record)
        self.lookups += 1
        found = memo.get(key)
        if found is None:
            found = self.evaluate_fields(record)
            self._remember(memo, key, found)
        return found

    def evaluate_fields(self, record: Mapping[str, Any]) -> Verdict:
        """(passed, error) in a context of only the fields this rule reads: flat variables
        when the rule was renamed (an error is evaluated again the original way, so its
        verdict and message are the original's), else a ``message`` map of them."""
        program = self.flat_program
        if program is not None:
            variables: dict[str, Any] = {}
            for name, variable in self.variables:
                if name in record:
                    value = record[name]
                    variables[variable] = value if type(value) in _NATIVE else _cel_value(value)
            if self.uses_now:
                variables["now"] = dt.datetime.now(tz=dt.UTC)
            try:
                guard = self.flat_guard
                if guard is None:  # one evaluation: the package converts the dict itself
                    return (True, None) if program.execute(variables) else (False, None)
                context = self.context(variables)
                if not guard.execute(context) or program.execute(context):
                    return True, None
                return False, None
            except Exception:
                pass  # the original evaluation below says what went wrong, in its words
        fields = self.fields or ()
        message = {name: _cel_value(record[name]) for name in fields if name in record}
        nested: dict[str, Any] = {"message": message}
        if self.uses_now:
            nested["now"] = dt.datetime.now(tz=dt.UTC)
        return self.evaluate(self.context(nested))

    @staticmethod
    def _key(record: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[Any, ...] | None:
        """The memo key of ``record``: each field's exact type and value (None: not a key)."""
        key: list[Any] = []
        for name in fields:
            value = record.get(name, _MISSING)
            kind = type(value)
            if kind is float:
                key += (kind, value if value else repr(value))
            elif kind in _KEYABLE:
                key += (kind, value)
            else:
                return None
        return tuple(key)

    def _remember(self, memo: dict[tuple[Any, ...], Verdict], key: Any, found: Verdict) -> None:
        """Keep ``found``; each miss adds one verdict, so ``lookups - len(memo)`` are hits."""
        if len(memo) >= MEMO_SIZE:
            if (self.lookups - len(memo)) * 4 < self.lookups:  # values hardly repeat
                self.memo = None
                return
            memo.clear()
            self.lookups = 1
        memo[key] = found

    def evaluate(self, context: Any) -> Verdict:
        """(passed, error) of this rule in a CEL ``context``; a guard that does not hold
        passes, and any evaluation error fails, as in confluent-kafka."""
        try:
            if self.guard is not None and not self.guard.execute(context):
                return True, None
            return bool(self.program.execute(context)), None
        except KeyError as exc:  # the CEL package's words for it: only "'note'"
            name = exc.args[0] if exc.args else "?"
            if self.fields is not None and name in self.fields:
                return False, f"the record has no field {name!r}"
            return False, f"no key {name!r} in a map or nested record"
        except Exception as exc:
            return False, " ".join(str(exc).split()) or type(exc).__name__

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


@dataclass(eq=False, slots=True)
class _Lane:
    """A rule on the all-at-once path (:meth:`RuleEngine.all_pass`), with the values it
    was seen to pass: for a rule reading one field, each value mapped to its type (a value
    counts only with the same type: ``1`` and ``True`` are equal in Python, not in CEL;
    float zeros are never kept, as ``0.0 == -0.0``); for a rule reading several, the typed
    memo keys of :meth:`RuleCheck._key`. None: not remembered (``now``, nested values)."""

    check: RuleCheck
    index: int
    #: The one field it reads and its flat variable, or None.
    one: str | None
    variable: str | None
    program: Any  # the compiled pass test (``RuleCheck.pass_test``)
    passing: dict[Any, Any] | None
    misses: int = 0
    #: The engine's record count when ``passing`` was (re)started.
    since: int = 0


def _flat_variables(lanes: Sequence[_Lane], record: Mapping[str, Any]) -> dict[str, Any]:
    """The flat variables of what ``lanes`` read in ``record`` (a missing field unbound)."""
    variables: dict[str, Any] = {}
    for lane in lanes:
        for name, variable in lane.check.variables:
            if name in record:
                value = record[name]
                variables[variable] = value if type(value) in _NATIVE else _cel_value(value)
    return variables


#: Combined programs an engine keeps (one per set of rules evaluated together).
_MOST_COMBINED = 64


class RuleEngine:
    """The write-side CEL conditions of one schema version; :meth:`first_breach` per record.

    ``all_at_once`` (on unless switched off) puts a path in front of the rule-by-rule one:
    see :meth:`all_pass`. The rule-by-rule path alone decides which rule a record fails and
    why, so the switch changes how fast a record passes, never a verdict.
    """

    def __init__(
        self,
        checks: Sequence[RuleCheck],
        *,
        all_at_once: bool = True,
        instants: Mapping[str, dt.timedelta] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.checks = tuple(checks)
        #: Top-level fields with a default (name -> the value written for it): a record that
        #: leaves one out reaches the rules with it, as it is written (:func:`written_defaults`).
        self._defaults = dict(defaults or {})
        #: Top-level timestamp fields (name -> the unit of a number given for one): a number
        #: reaches the rules as the instant it stands for, as a datetime does.
        self._instants = dict(instants or {})
        self._needs_now = any(check.uses_now for check in self.checks)
        self._context: Callable[[dict[str, Any]], Any] = _cel().Context
        self._compile: Callable[[str], Any] = _cel().compile
        self._lanes = self._all_at_once_lanes() if all_at_once else None
        self._combined: dict[tuple[int, ...], Any] = {}
        self._checked = 0  # records through all_pass (its memos' lookups)

    @property
    def all_at_once(self) -> bool:
        """Whether records go through :meth:`all_pass` first."""
        return self._lanes is not None

    def _all_at_once_lanes(self) -> tuple[_Lane, ...] | None:
        """The lanes of the rules that can stop a record (ERROR and DLQ; a failed NONE rule
        never does), or None when one of them is not renamed or reads ``now`` (each such
        rule then runs its own way, and so do the others)."""
        lanes: list[_Lane] = []
        for check in self.checks:
            if check.action == "NONE":
                continue
            if check.pass_test is None or check.uses_now or check.fields is None:
                return None
            program = check.flat_program if check.flat_guard is None else None
            if program is None:
                try:
                    program = self._compile(check.pass_test)
                except ValueError:
                    return None
            one, variable = check.variables[0] if len(check.variables) == 1 else (None, None)
            memo: dict[Any, Any] | None = {} if check.memo is not None else None
            lanes.append(_Lane(check, len(lanes), one, variable, program, memo))
        return tuple(lanes)

    @property
    def has_dlq(self) -> bool:
        return any(check.action == "DLQ" for check in self.checks)

    @classmethod
    def from_rule_set(
        cls,
        rule_set: Mapping[str, Any] | None,
        *,
        owner: str,
        dlq_topic: str,
        all_at_once: bool = True,
        schema: Mapping[str, Any] | None = None,
    ) -> RuleEngine | None:
        """The engine for a registered ``ruleSet`` (None when it has nothing to run on write).

        With the version's ``schema``, a top-level timestamp field given as a number (epoch
        milliseconds or microseconds, as the encoder takes it) is a timestamp to the rules.

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
                shown = expr if len(expr) <= 200 else f"{expr[:200]}..."
                raise ConfigurationError(f"{where} ({name}): expr {shown!r}: {problem}")
            guard, body = _parts(expr)
            params = rule.get("params") or {}
            fields = _fields_read([expr])
            uses_now = "now" in expr  # confluent-kafka binds `now` on the same test
            checks.append(
                RuleCheck(
                    name=name,
                    expr=expr,
                    doc=rule.get("doc") or None,
                    action=action,
                    dlq_topic=str(params.get("dlq.topic") or dlq_topic),
                    guard=cel.compile(guard) if guard is not None else None,
                    program=cel.compile(body),
                    fields=tuple(sorted(fields)) if fields is not None else None,
                    uses_now=uses_now,
                    memo={} if fields is not None and not uses_now else None,
                    context=cel.Context,
                    **(_flat_versions(cel, guard, body, fields) if fields is not None else {}),
                )
            )
        if not checks:
            return None
        instants = timestamp_fields(schema)
        defaults = written_defaults(schema)
        if all(check.fields is not None for check in checks):  # only those a rule reads
            read = {name for check in checks for name in check.fields or ()}
            instants = {name: unit for name, unit in instants.items() if name in read}
            defaults = {name: value for name, value in defaults.items() if name in read}
        return cls(checks, all_at_once=all_at_once, instants=instants, defaults=defaults)

    def first_breach(
        self, record: Mapping[str, Any], *, skip: str | None = None
    ) -> RuleBreach | None:
        """The first rule (in order) whose failure action is ERROR or DLQ that ``record``
        fails, or None: the record may be published. NONE rules that fail are passed by,
        and so is the rule named ``skip`` (a dead letter published again carries the rule
        it failed in its ``__rule.name`` header; confluent-kafka skips that rule too)."""
        if self._defaults:
            record = self._with_defaults(record)
        if self._instants:
            record = self._as_instants(record)
        if skip is None and self._lanes is not None and self.all_pass(record):
            return None
        whole = None  # the whole record's context, built once when a rule needs it
        for check in self.checks:
            if skip is not None and check.name == skip:
                continue
            if check.fields is not None:
                passed, error = check.verdict(record)
            else:
                if whole is None:
                    whole = self._whole_context(record)
                passed, error = check.evaluate(whole)
            if passed or check.action == "NONE":
                continue
            return RuleBreach(check, error)
        return None

    def _with_defaults(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """``record`` with each field it leaves out that has a default given that default
        (a copy, only when one is left out)."""
        changed: dict[str, Any] | None = None
        for name, value in self._defaults.items():
            if name not in record:
                if changed is None:
                    changed = dict(record)
                changed[name] = value
        return record if changed is None else changed

    def _as_instants(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """``record`` with each timestamp field given as a number made a datetime (a copy,
        only when there is one)."""
        changed: dict[str, Any] | None = None
        for name, unit in self._instants.items():
            value = record.get(name)
            if type(value) is int or type(value) is float:
                try:
                    instant = _EPOCH + unit * value
                except (OverflowError, ValueError):
                    continue  # outside datetime's years: the encoder refuses the record
                if changed is None:
                    changed = dict(record)
                changed[name] = instant
        return record if changed is None else changed

    def all_pass(self, record: Mapping[str, Any]) -> bool:
        """True when every rule that can stop a record passes ``record``, found with at most
        one CEL call; False means "not shown": the rule-by-rule path then decides.

        A rule whose verdict for these exact values is remembered is not evaluated again;
        the others' pass tests (``RuleCheck.pass_test``) are joined with ``&&`` into one
        program over the union of their flat variables, so their record is converted once
        and CEL runs once. CEL's ``&&`` is ``true`` only when every side is ``true`` (an
        error or a false side makes it false or an error), so ``true`` means each rule
        passes; anything else, or a remembered failure, sends the record rule by rule,
        which names the first failing rule and its error in confluent-kafka's terms.
        """
        lanes = self._lanes
        if lanes is None:
            return False
        self._checked += 1
        missed: list[_Lane] = []
        for lane in lanes:
            passing = lane.passing
            if passing is not None:
                field = lane.one
                try:
                    if field is not None:
                        value = record.get(field, _MISSING)
                        if passing.get(value) is type(value):
                            continue
                    elif lane.check._key(record, lane.check.fields or ()) in passing:
                        continue
                except TypeError:  # an unhashable value: evaluated, never remembered
                    pass
                lane.misses += 1
            missed.append(lane)
        if not missed:
            return True
        if len(missed) == 1:
            lane = missed[0]
            program = lane.program
            value = record.get(lane.one, _MISSING) if lane.one is not None else _MISSING
            if type(value) in _NATIVE:  # the common case: one plain value, no conversion
                variables = {str(lane.variable): value}
            else:
                variables = _flat_variables(missed, record)
        else:
            program = self._combined_program(tuple(lane.index for lane in missed))
            if program is None:
                return False
            variables = _flat_variables(missed, record)
        try:
            if program.execute(variables) is not True:
                return False
        except Exception:
            return False
        for lane in missed:
            if lane.passing is not None:
                self._remember_pass(lane, record)
        return True

    def _remember_pass(self, lane: _Lane, record: Mapping[str, Any]) -> None:
        """Keep that ``lane`` passes ``record``'s values. At :data:`MEMO_SIZE` values the
        memo starts over, or is dropped for good when fewer than a quarter of its lookups
        found a value (they hardly repeat)."""
        passing = lane.passing
        if passing is None:
            return
        if len(passing) >= MEMO_SIZE:
            lookups = self._checked - lane.since
            if (lookups - lane.misses) * 4 < lookups:
                lane.passing = None
                return
            passing.clear()
            lane.misses, lane.since = 0, self._checked
        if lane.one is not None:
            value = record.get(lane.one, _MISSING)
            kind = type(value)
            if kind in _KEYABLE or (kind is float and value and not math.isnan(value)):
                passing[value] = kind
            return
        key = lane.check._key(record, lane.check.fields or ())
        if key is not None:
            passing[key] = True

    def _combined_program(self, indexes: tuple[int, ...]) -> Any:
        """The pass tests of the lanes at ``indexes`` joined with ``&&``, compiled once
        (None when it does not compile, or when too many combinations were asked for)."""
        program = self._combined.get(indexes)
        if program is not None or indexes in self._combined:
            return program
        if len(self._combined) >= _MOST_COMBINED or self._lanes is None:
            return None
        lanes = self._lanes
        text = " && ".join(_grouped(str(lanes[index].check.pass_test)) for index in indexes)
        try:
            program = self._compile(text)
        except ValueError:
            program = None
        self._combined[indexes] = program
        return program

    def _whole_context(self, record: Mapping[str, Any]) -> Any:
        message = {str(key): _cel_value(value) for key, value in record.items()}
        variables: dict[str, Any] = {"message": message}
        if self._needs_now:
            variables["now"] = dt.datetime.now(tz=dt.UTC)
        return self._context(variables)
