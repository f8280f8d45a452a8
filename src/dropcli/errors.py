"""The one exception users see: a mistake in their input, or a fault, said in one line."""


class DropcliError(Exception):
    """A user-facing error. The message says what was wrong, where, and how to fix it."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def first_line(error: BaseException, limit: int | None = 200) -> str:
    """The first line of `error`'s message (its type's name if it has none), cut to `limit`
    characters (None: not cut): what a one-line message can quote of an exception from torch or the OS."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]
