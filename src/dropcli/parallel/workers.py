"""The processes a command is spread over: this one alone, or torchrun's workers.

`Workers` is one process, where every collective is the identity. torchrun.py gives the same
interface over torch.distributed; `dropcli.parallel.start()` imports it only when torchrun
started this process, so the single-process path never imports torch.distributed.
"""

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from dropcli.errors import DropcliError
from dropcli.runtime import resolve_device

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    """torchrun (torch.distributed.run) sets these for every worker it starts."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


class Workers:
    """One process: rank 0 of 1."""

    rank = 0
    world_size = 1
    local_rank = 0
    local_world_size = 1

    @property
    def is_primary(self) -> bool:
        """The worker that prints, and writes the files of the whole job."""
        return self.rank == 0

    def device(self, spec: str) -> torch.device:
        """The device a config's `device` means for this worker."""
        return resolve_device(spec)

    def gather(self, obj: Any) -> list[Any]:
        """Every worker's `obj`, in rank order, on every worker."""
        return [obj]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every worker."""
        return obj

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of `tensor` over workers, in place."""
        return tensor

    def agree(self, error: DropcliError | None) -> None:
        """Raise on every worker the first error any worker met, so none waits for the others in vain."""
        met = [
            (rank, found)
            for rank, found in enumerate(self.gather(None if error is None else (str(error), error.exit_code)))
            if found
        ]
        if met:
            rank, (message, exit_code) = met[0]
            where = "" if self.world_size == 1 or rank == self.rank else f"worker {rank}: "
            raise DropcliError(where + message, exit_code)

    def agreed(self, work: Callable[[], T]) -> T:
        """`work()` done by every worker; a DropcliError on any worker is raised on all of them."""
        try:
            result, error = work(), None
        except DropcliError as found:
            result, error = None, found
        self.agree(error)
        return result

    def on_primary(self, work: Callable[[], T]) -> T:
        """`work()` done by rank 0 alone, its result handed to every worker; an error stops them all."""
        return self.broadcast(self.agreed(work if self.is_primary else lambda: None))


ONE_PROCESS = Workers()


def launch_command() -> str:
    """How this command was started, for a "continue with" hint: `dropcli`, or the torchrun launch."""
    if not launched_by_torchrun():
        return "dropcli"
    world, local = os.environ["WORLD_SIZE"], os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])
    if world == local:  # one node: the launch can be written out whole
        return f"torchrun --standalone --nproc-per-node {local} -m dropcli"
    return "torchrun (the same launch options, on every node) -m dropcli"
