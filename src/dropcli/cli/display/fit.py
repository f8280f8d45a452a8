"""Every table fitted to the terminal one way: no number, name or word is ever cut or folded.

A table is described as columns of finished text (`Column`); `Fitted` builds the Rich table at
the width it is printed at. Each column is exactly as wide as its widest cell, and a header of
several words is broken between them, never inside a word. Where the columns do not fit, whole
columns are left out in a stated order: timings first, then columns that hold one value in
every row, then the rest from the right; the columns a row is known by (`keep`) never. The
caption names what was left out. Only a path (`fold`) may fold over lines, and only when it
alone is wider than the room left. Numbers shown in these tables use 4 significant figures
(`number`); --json and --csv keep full precision.
"""

from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

FOLD_MIN_WIDTH = 12  # a path folds, down to this


@dataclass
class Column:
    header: str
    cells: list[str]
    justify: str = "right"
    keep: bool = False  # never left out: what a row is known by, and the headline number
    timing: bool = False  # left out first: it varies from machine to machine anyway
    fold: bool = False  # a path: may fold over lines where it alone does not fit
    style: str | None = None
    name: str | None = None  # what the caption calls it when left out (default: the header)
    prose: bool = False  # a sentence (a status): wraps between words, so its longest word counts

    @property
    def constant(self) -> bool:
        return len(self.cells) > 1 and len(set(self.cells)) == 1

    def cells_width(self) -> int:
        parts = (
            [word for cell in self.cells for word in cell.split()]
            if self.prose
            else [line for cell in self.cells for line in cell.split("\n")]
        )
        return max(map(cell_len, parts), default=0)

    def header_lines(self, compact: bool = True) -> list[str]:
        """The header on one line, or `compact`: broken between words to no wider than its cells
        (or its longest word)."""
        words = self.header.split()
        if not compact:
            return [" ".join(words)]
        room = max(self.cells_width(), *(cell_len(word) for word in words)) if words else 0
        lines: list[str] = []
        for word in words:
            if lines and cell_len(lines[-1]) + 1 + cell_len(word) <= room:
                lines[-1] += " " + word
            else:
                lines.append(word)
        return lines

    def width(self, compact: bool = True) -> int:
        return max(self.cells_width(), *(cell_len(line) for line in self.header_lines(compact) or [""]))


@dataclass
class Fitted:
    """A table that fits the width it is printed at (see the module's docstring)."""

    columns: list[Column]
    title: str | None = None
    caption: str | None = None  # said first in the caption, before what was left out
    left_out_hint: str = "widen the terminal to see them"
    table_options: dict = field(default_factory=dict)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.table(options.max_width))

    def shown(self, width: int) -> tuple[list[Column], bool]:
        """The columns that fit `width`, in their order, and whether their headers must break
        between words to fit; a path is left whole while columns can go."""
        if _table_width([c.width(compact=False) for c in self.columns]) <= width:
            return list(self.columns), False
        shown = list(self.columns)
        for column in self._leaving_order():
            if _table_width([c.width() for c in shown]) <= width:
                break
            shown.remove(column)
        return shown, True

    def _leaving_order(self) -> list[Column]:
        optional = [c for c in reversed(self.columns) if not c.keep]
        timings = [c for c in optional if c.timing]
        constant = [c for c in optional if c.constant and not c.timing]
        return timings + constant + [c for c in optional if c not in timings and c not in constant]

    def table(self, width: int) -> Table:
        shown, compact = self.shown(width)
        left_out = [c for c in self.columns if c not in shown]
        table = Table(title=self.title, caption=self._caption(left_out), header_style="bold", **self.table_options)
        room = width - _table_width([c.width(compact) for c in shown if not c.fold]) - 3 * sum(c.fold for c in shown)
        for column in shown:
            header = Text("\n".join(column.header_lines(compact)))
            if column.fold and column.width(compact) > room:
                table.add_column(header, justify=column.justify, overflow="fold", width=max(room, FOLD_MIN_WIDTH))
            else:
                table.add_column(
                    header, justify=column.justify, no_wrap=not column.prose, min_width=column.width(compact), style=column.style
                )
        for row in zip(*(column.cells for column in shown)):
            table.add_row(*(Text(cell) for cell in row))
        return table

    def _caption(self, left_out: list[Column]) -> str | None:
        parts = [self.caption] if self.caption else []
        if left_out:
            names = [f"{_name(c)} ({c.cells[0]} in every row)" if c.constant else _name(c) for c in left_out]
            parts.append(f"left out for width: {', '.join(names)}; {self.left_out_hint}")
        return "; ".join(parts) or None


def _name(column: Column) -> str:
    return column.name or " ".join(column.header.split())


def _table_width(column_widths: list[int]) -> int:
    """A boxed table's width: each column padded by a space each side, a rule between and around."""
    return sum(column_widths) + 3 * len(column_widths) + 1


def number(value: float, signed: bool = False) -> str:
    """A float in 4 significant figures, as tables, --diff and legends show it (0.06386, 1024, 2.5e-05)."""
    return f"{value:{'+' if signed else ''}.4g}"
