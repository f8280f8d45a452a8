"""dropcli under torchrun: this worker's rank, device and CPU threads, and the collectives.

torchrun (c10d rendezvous) starts the processes and hands each its RANK, WORLD_SIZE,
LOCAL_RANK and MASTER_ADDR/PORT; here they join one process group: gloo for objects and CPU
tensors, NCCL for CUDA tensors where there is CUDA. Nothing else in dropcli imports
torch.distributed.
"""

import contextlib
import datetime
import gc
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from dropcli.errors import DropcliError, first_line
from dropcli.parallel.workers import Workers
from dropcli.runtime import resolve_device

# How long a collective waits for the other workers. A worker that dies is normally seen at
# once (its connections close, and torchrun stops the job); this bounds the rest.
TIMEOUT = datetime.timedelta(seconds=float(os.environ.get("DROPCLI_DIST_TIMEOUT", 1800)))


class WorkerLost(DropcliError):
    exit_code = 1


class Ranks(Workers):
    """This process as one of torchrun's workers."""

    def __init__(self):
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))

    def device(self, spec: str) -> torch.device:
        device = resolve_device(spec)
        if device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())  # one GPU per local worker
        return device

    def gather(self, obj: Any) -> list[Any]:
        gathered = [None] * self.world_size
        with _collective("gather results"):
            dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        with _collective("share the plan"):
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        with _collective("add up the metrics"):
            dist.all_reduce(tensor)
        return tensor


@contextlib.contextmanager
def start() -> Iterator[Ranks]:
    """Join torchrun's process group for the block; each worker takes its share of the CPU."""
    workers = Ranks()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers.local_world_size))
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(workers.local_rank % torch.cuda.device_count())
    try:
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    except (RuntimeError, ValueError) as error:
        raise DropcliError(
            f"cannot join the torchrun job ({first_line(error)}); check --rdzv-endpoint and that every node runs the same command"
        ) from None
    try:
        yield workers
        # Leave together: a worker that tore its process group down while another still used it
        # could abort at exit ("terminate called without an active exception", seen with gloo).
        # Not after an error: a worker that died would leave the others waiting at the barrier.
        with _collective("leave the job together"):
            dist.barrier()
    finally:
        # DDP's reducer holds the process group and sits in reference cycles: collect it now, so
        # that gloo's threads stop while the interpreter is whole. Left to interpreter shutdown,
        # a worker sometimes aborted at exit ("terminate called without an active exception",
        # seen on a busy 2-core machine after a run had finished and saved everything).
        gc.collect()
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    try:
        yield
    except (RuntimeError, dist.DistBackendError) as error:
        raise WorkerLost(
            f"could not {what}: another worker of this torchrun job stopped or cannot be reached ({first_line(error)}); "
            "what finished is kept: run the same command again to continue"
        ) from None
