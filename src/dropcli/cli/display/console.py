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
