"""Text other people wrote (descriptors, schema docs, consumer registrations, records), made
safe to show in a terminal.

rich reads ``[...]`` in a plain string as markup: ``amount [cents]`` lost its word and
``[/x]`` raised ``MarkupError``. And a control character (ESC, a bidi override) in a stored
field would reach the reader's terminal. Every table cell and tree label that shows such text
goes through :func:`cell`.
"""

from __future__ import annotations

import os

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["NamesTable", "cell", "fold_cells", "output_console", "visible"]

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


#: The width tables printed to a pipe or a file are laid out in: wide enough that no cell
#: folds (a CI log, ``> file``, ``| grep``); on a terminal, the terminal's own width.
PIPED_WIDTH = 1_000


def output_console() -> Console:
    """The console a command prints its tables to. Piped, rich lays them out in 80 columns,
    where a `mesh products consumers` row lost its last columns without a mark (h58)."""
    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS"):  # a width the user chose is kept
        return console
    return Console(width=PIPED_WIDTH)


def fold_cells(table: Table) -> Table:
    """``table`` with every cell shown whole: what does not fit its column folds onto further
    lines instead of ending in ``…`` (cut to fit 80 columns, two products looked the same,
    ``orders.order-…``)."""
    for column in table.columns:
        column.overflow = "fold"
    return table


#: The widest a names column is kept on one line: a longer name folds, whole.
WHOLE_NAME_WIDTH = 48
#: What a names column leaves each other column at least (less when its cells are narrower);
#: rich folds their cells to fit.
OTHER_COLUMN_ROOM = 10


class NamesTable:
    """A table whose column ``names`` (the first by default) holds names (products, consumer
    groups) that stay on one line where the console leaves room, every cell shown whole
    (:func:`fold_cells`).

    rich lays a table out by shrinking its widest columns first, so a name folded while a
    reason column kept its room; and a names column given a minimum width made rich crop the
    columns after it off the table (h58: `registered` gone at 80 columns, without a mark).
    Here the names column's width is fixed when the table is drawn: its longest name's (up to
    :data:`WHOLE_NAME_WIDTH`) where that leaves the other columns :data:`OTHER_COLUMN_ROOM`
    each; rich then folds their cells to fit, and crops nothing.
    """

    def __init__(
        self, *headers: str, names: int = 0, title: str | None = None, show_header: bool = True
    ) -> None:
        self.table = fold_cells(Table(*headers, title=title, show_header=show_header))
        self.names = names
        self._rows: list[tuple[Text, ...]] = []

    def add_row(self, *cells: Text | str) -> None:
        row = tuple(c if isinstance(c, Text) else Text(c) for c in cells)
        self._rows.append(row)
        self.table.add_row(*row)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = self.table.columns
        names = columns[self.names]
        names.width = None
        longest = max((row[self.names].cell_len for row in self._rows), default=0)
        longest = max(longest, len(str(names.header)))
        # each column's padding (1 + 1) and the vertical lines around and between them
        frame = 3 * len(columns) + 1
        others = sum(  # what each other column keeps at least: its widest cell, up to 10
            min(
                max([len(str(column.header)), *(row[i].cell_len for row in self._rows)]),
                OTHER_COLUMN_ROOM,
            )
            for i, column in enumerate(columns)
            if i != self.names
        )
        room = min(longest, WHOLE_NAME_WIDTH, options.max_width - frame - others)
        if room >= min(longest, 12):  # else rich folds every column, this one too
            names.width = room
        yield self.table

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.table)
