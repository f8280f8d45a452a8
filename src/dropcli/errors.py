"""The one exception users see: a mistake in their input, said in one line."""


class DropcliError(Exception):
    """A user-facing error. The message says what was wrong, where, and how to fix it."""

    exit_code = 2
