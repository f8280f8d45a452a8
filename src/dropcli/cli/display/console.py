"""The Rich console every command prints through."""

from rich.console import Console


def console(stderr: bool = False) -> Console:
    """A Rich console on stdout (or stderr) that keeps plain lines whole in logs and pipes."""
    # soft_wrap: a plain line in a CI log stays one line, whatever the width.
    console = Console(highlight=False, soft_wrap=True, stderr=stderr)
    if not console.is_terminal:
        console.width = 160  # room for the tables instead of Rich's 80 columns
    return console


def columns_that_fit(fixed: list[int], optional: list[int], width: int) -> int:
    """How many of the `optional` columns, taken in order, fit beside the `fixed` ones in a boxed
    table at most `width` wide (the widths given are the columns' text, unpadded)."""
    shown = len(optional)
    while shown > 0 and _table_width(fixed + optional[:shown]) > width:
        shown -= 1
    return shown


def _table_width(column_widths: list[int]) -> int:
    """A boxed table's width: each column padded by a space each side, a rule between and around."""
    return sum(column_widths) + 3 * len(column_widths) + 1
