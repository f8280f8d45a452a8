"""The processes a command runs on: this one alone, or torchrun's workers."""

import contextlib
from collections.abc import Iterator

from dropcli.parallel.workers import ONE_PROCESS, Workers, launched_by_torchrun


@contextlib.contextmanager
def start() -> Iterator[Workers]:
    """The processes this command runs on: this one, or torchrun's workers when torchrun started it."""
    if not launched_by_torchrun():
        yield ONE_PROCESS
        return
    from dropcli.parallel import torchrun  # imports torch.distributed: only under torchrun

    with torchrun.start() as workers:
        yield workers
