"""The Rich console every command prints through."""

from rich.console import Console


def console(stderr: bool = False) -> Console:
    """A Rich console on stdout (or stderr) that keeps plain lines whole in logs and pipes and
    wraps them between words in a terminal."""
    console = Console(highlight=False, stderr=stderr)
    # In a log or a pipe a plain line stays one line, whatever the width; in a terminal Rich
    # wraps prose between words (the terminal's own wrap would cut a word or a number).
    console.soft_wrap = not console.is_terminal
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
