"""Device choice, seeding and signals, each done once, here."""

import contextlib
import hashlib
import platform
import signal
import threading
from collections.abc import Iterator

import torch

from dropcli.errors import DropcliError


def resolve_device(spec: str) -> torch.device:
    """Turn "auto", "cpu", "cuda", "cuda:N" or "mps" into a device that exists here."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DropcliError(f"device '{spec}' was asked for but CUDA is not available here; use --device cpu or --device auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DropcliError(f"device '{spec}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not _mps_available():
        raise DropcliError(f"device '{spec}' was asked for but MPS is not available here; use --device cpu or --device auto")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return platform.processor() or platform.machine()
    return device.type


def check_memory(needed: int, device: torch.device, what: str) -> None:
    """Refuse, with the numbers, work that needs more memory than `device` has free."""
    available = available_memory(device)
    if available is not None and needed > available:
        raise DropcliError(
            f"{what} needs about {needed / 2**30:.1f} GiB but {device} has {available / 2**30:.1f} GiB free; make it smaller"
        )


def available_memory(device: torch.device) -> int | None:
    """Free bytes on `device`, where that can be known."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return None


def seed_everything(seed: int) -> None:
    """Seed every generator the model and the dropout masks draw from (CPU and all GPUs)."""
    torch.manual_seed(seed)


def derived_seed(seed: int, stream: str) -> int:
    """A seed for another random stream of the run (a worker's masks, the augmentation): its
    own numbers, the same from run to run."""
    digest = hashlib.sha256(f"dropcli {seed} {stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def count_text(count: int | str, noun: str) -> str:
    """ "1 epoch", "3 epochs"; a count given as text ("1-3") takes the plural."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def seeds_text(seeds: list[int]) -> str:
    """ "seed 3", "seeds 0-29" for a run of consecutive seeds, else "seeds 0, 2, 5", in number order."""
    seeds = sorted(set(seeds))
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    consecutive = seeds == list(range(seeds[0], seeds[-1] + 1))
    return f"seeds {seeds[0]}-{seeds[-1]}" if consecutive else f"seeds {', '.join(map(str, seeds))}"


def duration_text(seconds: float) -> str:
    """A time estimate as a person reads it: "90 s", "25 min", "3.5 h", "12 days"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


class Terminated(KeyboardInterrupt):
    """SIGTERM (what kill, systemd, Slurm and Kubernetes send), handled as Ctrl-C is."""


def signal_name(interrupt: BaseException) -> str:
    return "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C (SIGINT)"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated, a KeyboardInterrupt, instead of killing."""

    def terminate(signum, frame):
        raise Terminated()

    with _handlers({signal.SIGTERM: terminate}):
        yield


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on them as usual.

    For writes that must land together (a checkpoint and its metrics line): an interrupt
    between them would leave files that disagree.
    """
    pending: list[int] = []
    with _handlers(
        {
            signal.SIGINT: lambda signum, frame: pending.append(signum),
            signal.SIGTERM: lambda signum, frame: pending.append(signum),
        }
    ):
        yield
    if pending:
        signal.raise_signal(pending[0])  # now handled by the handler in force again


@contextlib.contextmanager
def _handlers(handlers: dict) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; elsewhere, leave signals alone
        return
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def autocast(device: torch.device, precision: str):
    """bf16 autocast for "bf16", nothing for "fp32" (runs resolve "auto" to one of them first)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
