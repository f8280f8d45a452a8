"""The Rich console every command prints through."""

from rich.console import Console


def console(stderr: bool = False) -> Console:
    """A Rich console on stdout (or stderr) that keeps plain lines whole in logs and pipes."""
    # soft_wrap: a plain line in a CI log stays one line, whatever the width.
    console = Console(highlight=False, soft_wrap=True, stderr=stderr)
    if not console.is_terminal:
        console.width = 160  # room for the tables instead of Rich's 80 columns
    return console
