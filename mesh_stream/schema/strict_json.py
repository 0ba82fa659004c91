"""Strict JSON decoding, shared by the registry's request bodies and every schema text.

Python's ``json`` accepts what JSON does not: the literals ``NaN``, ``Infinity`` and
``-Infinity``, and numbers beyond a 64-bit float (``1e999`` becomes ``inf``). A schema
holding one would be stored, then served as ``Infinity`` (not JSON) or ``null`` (another
schema), so :func:`loads` refuses them with :class:`NonFiniteNumberError`, naming the JSON
path of the first one (``fields[0].default``) and the literal as written. :func:`non_finite`
finds the same in an already-decoded document.

It also keeps the last of two equal keys in an object silently (``{"type": "record", "type":
"enum"}`` is an enum), which hides a mistake as YAML's repeated keys do: :func:`loads` refuses
one with :class:`DuplicateKeyError`, a :class:`json.JSONDecodeError` at the second key, so
every reader that names a bad JSON text's line names this one's.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DuplicateKeyError", "NonFiniteNumberError", "json_path", "loads", "non_finite"]

Loc = tuple[str | int, ...]


class NonFiniteNumberError(ValueError):
    """A number JSON cannot carry: ``literal`` as written, at ``loc`` (its JSON path).

    ``str()`` is the reason alone (``NaN is not JSON``); :attr:`path` renders ``loc``,
    :attr:`located` is path, reason and fix.
    """

    def __init__(self, literal: str, loc: Loc) -> None:
        self.literal = literal
        self.loc = loc
        if literal in ("NaN", "Infinity", "-Infinity"):
            reason = f"{literal} is not JSON"
        else:
            reason = f"number {literal[:20]} is out of range for a 64-bit float"
        super().__init__(reason)

    @property
    def path(self) -> str:
        return json_path(self.loc)

    @property
    def located(self) -> str:
        """The path, the reason and the fix, for a schema's refusal."""
        return (
            f"{self.path}: {self}; JSON numbers are finite 64-bit floats (NaN and infinities "
            f"have no JSON form): write a finite number"
        )


class DuplicateKeyError(json.JSONDecodeError):
    """An object gives ``key`` twice: ``pos`` (``lineno``, ``colno``) is the second one, ``loc``
    the object's JSON path, ``first_line`` the line of the first. ``msg`` says all but the
    second one's line, which readers put in front as for any JSON error."""

    key: str = ""
    loc: Loc = ()
    first_line: int = 0


def _duplicate_key(text: str, key: str, loc: Loc, pos: int, first: int) -> DuplicateKeyError:
    first_line = text.count("\n", 0, first) + 1
    shown = json.dumps(key if len(key) <= 60 else f"{key[:59]}…", ensure_ascii=False)
    inside = f" in {json_path(loc)}" if loc else ""
    error = DuplicateKeyError(
        f"key {shown} given twice{inside} (first on line {first_line}); keep one", text, pos
    )
    error.key, error.loc, error.first_line = key, loc, first_line
    return error


# A JSON text's tokens: strings, punctuation, and the rest (numbers, literals) between them.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', re.DOTALL)


def _first_duplicate_key(text: str) -> DuplicateKeyError | None:
    """The second occurrence, in document order, of a key its object already has; ``text``
    is JSON the decoder read (so a token scan suffices). Iterative: no nesting exhausts it.

    Each open container is a list on the stack: ``[keys seen (dict key -> offset), current
    key, expecting a key]`` for an object, ``[None, index]`` for an array.
    """
    stack: list[list[Any]] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        top = stack[-1] if stack else None
        if token in ("{", "["):
            stack.append([{}, None, True] if token == "{" else [None, 0])
        elif token in ("}", "]"):
            stack.pop()
        elif top is None:
            continue
        elif token == ",":
            if top[0] is None:
                top[1] += 1
            else:
                top[2] = True
        elif token == ":":
            top[2] = False
        elif top[0] is not None and top[2] and token.startswith('"'):
            key = json.loads(token)
            if key in top[0]:
                loc = tuple(frame[1] for frame in stack[:-1])
                return _duplicate_key(text, key, loc, match.start(), top[0][key])
            top[0][key], top[1] = match.start(), key
    return None


def _decoded(text: str | bytes) -> str:
    """``text`` as a str, decoded as :func:`json.loads` would (to say where a problem is)."""
    return text if isinstance(text, str) else text.decode(json.detect_encoding(text))


class _TooLongError(Exception):
    """An integer of more digits than Python converts (its ``int_max_str_digits``)."""

    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


class _Refused:
    """What the decoder's hooks put in place of a number JSON cannot carry."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def json_path(loc: Loc, root: str = "(top level)") -> str:
    """``("fields", 0, "default")`` as ``fields[0].default``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or root


def loads(text: str | bytes, *, max_int_digits: int | None = None) -> Any:
    """The JSON document in ``text``, refusing a key given twice in an object
    (:class:`DuplicateKeyError`) and non-finite numbers (:class:`NonFiniteNumberError`).

    Otherwise as :func:`json.loads`: :class:`json.JSONDecodeError` for text that is not
    JSON and for an integer of more digits than Python reads (4300), :class:`ValueError`
    for one of more than ``max_int_digits``, :class:`RecursionError` for absurd nesting.
    """
    refused: list[_Refused] = []
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        document = dict(items)
        repeated = repeated or len(document) != len(items)
        return document

    def constant(literal: str) -> _Refused:
        refused.append(_Refused(literal))
        return refused[-1]

    def number(literal: str) -> float | _Refused:
        value = float(literal)
        return value if math.isfinite(value) else constant(literal)

    def integer(literal: str) -> int:
        digits = len(literal.lstrip("-"))
        if max_int_digits is not None and digits > max_int_digits:
            raise ValueError(
                f"a number of {digits} digits, more than the {max_int_digits} a registry "
                f"request may have"
            )
        if 0 < python_digits < digits:
            raise _TooLongError(digits)
        return int(literal)

    python_digits = sys.get_int_max_str_digits()
    try:
        document = json.loads(
            text,
            object_pairs_hook=pairs,
            parse_constant=constant,
            parse_float=number,
            parse_int=integer,
        )
    except _TooLongError as long:  # said where, as a text that is not JSON is
        decoded = _decoded(text)
        at = re.search(rf"(?:^|(?<=[\[:,\s]))-?\d{{{python_digits + 1},}}", decoded)
        raise json.JSONDecodeError(
            f"a number of {long.digits} digits, more than the {python_digits} Python reads",
            decoded,
            at.start() if at is not None else 0,
        ) from None
    if repeated:  # rare: only then is the text scanned again for where
        decoded = _decoded(text)
        duplicate = _first_duplicate_key(decoded)
        if duplicate is not None:
            raise duplicate
    if refused:
        found = non_finite(document)
        if found is not None:  # always: no hook's value was dropped (no key is repeated)
            raise NonFiniteNumberError(*found)
    return document


def non_finite(document: Any) -> tuple[str, Loc] | None:
    """``(literal, loc)`` of the first number JSON cannot carry in ``document`` (NaN,
    ±infinity, as :func:`loads` would have been given them), in document order; None if none.

    Iterative, so a deeply nested document cannot exhaust the stack here.
    """
    stack: list[tuple[Any, Loc]] = [(document, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, _Refused):
            return node.literal, loc
        if isinstance(node, float) and not math.isfinite(node):
            return ("NaN" if math.isnan(node) else "Infinity" if node > 0 else "-Infinity"), loc
        if isinstance(node, Mapping):
            items = [
                (value, (*loc, key if isinstance(key, str) else str(key)))
                for key, value in node.items()
            ]
            stack.extend(reversed(items))
        elif isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
            stack.extend(reversed([(item, (*loc, i)) for i, item in enumerate(node)]))
    return None
