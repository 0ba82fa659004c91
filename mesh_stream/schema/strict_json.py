"""Strict JSON decoding, shared by the registry's request bodies and every schema text.

Python's ``json`` accepts what JSON does not: the literals ``NaN``, ``Infinity`` and
``-Infinity``, and numbers beyond a 64-bit float (``1e999`` becomes ``inf``). A schema
holding one would be stored, then served as ``Infinity`` (not JSON) or ``null`` (another
schema), so :func:`loads` refuses them with :class:`NonFiniteNumberError`, naming the JSON
path of the first one (``fields[0].default``) and the literal as written. :func:`non_finite`
finds the same in an already-decoded document.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["NonFiniteNumberError", "json_path", "loads", "non_finite"]

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
    """The JSON document in ``text``, refusing non-finite numbers (:class:`NonFiniteNumberError`).

    Otherwise as :func:`json.loads`: :class:`json.JSONDecodeError` for text that is not
    JSON, :class:`ValueError` for an integer of more than ``max_int_digits`` digits (or
    Python's own 4300), :class:`RecursionError` for absurd nesting.
    """
    refused: list[_Refused] = []

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
        return int(literal)

    document = json.loads(text, parse_constant=constant, parse_float=number, parse_int=integer)
    if refused:
        found = non_finite(document)
        if found is not None:  # always, unless a hook's value was dropped (a repeated key)
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
