"""Text other people wrote (descriptors, schema docs, consumer registrations, records), made
safe to show in a terminal.

rich reads ``[...]`` in a plain string as markup: ``amount [cents]`` lost its word and
``[/x]`` raised ``MarkupError``. And a control character (ESC, a bidi override) in a stored
field would reach the reader's terminal. Every table cell and tree label that shows such text
goes through :func:`cell`.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

__all__ = ["cell", "visible", "whole_names"]

#: Kept as they are: a description may span lines.
_LAYOUT = frozenset("\n\t")


def visible(value: object) -> str:
    """``value`` as text whose unprintable characters are written as escapes (``\\x1b``)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c in _LAYOUT else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def cell(value: object, style: str = "") -> Text:
    """A table cell or tree label showing ``value`` literally: no markup, no control codes."""
    return Text(visible(value), style=style)


#: The widest a name column asks to be: a longer name folds onto more lines, whole, so the
#: other columns keep room (a 65-character name at 80 columns emptied them all).
WHOLE_NAME_WIDTH = 48


def whole_names(table: Table, column: int, names: Iterable[str]) -> None:
    """Show ``column``'s names (products, consumer groups) whole: cut to fit 80 columns, two
    products (or a processor's three groups) looked the same (``orders.order-…``). The
    column asks for its longest name's width, up to :data:`WHOLE_NAME_WIDTH`; a name wider
    than that folds onto further lines rather than losing its end."""
    longest = max((len(name) for name in names), default=0)
    table.columns[column].min_width = min(longest, WHOLE_NAME_WIDTH)
    table.columns[column].overflow = "fold"
