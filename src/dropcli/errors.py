"""The one exception users see: a mistake in their input, or a fault, said in one line."""


class DropcliError(Exception):
    """A user-facing error. The message says what was wrong, where, and how to fix it."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
