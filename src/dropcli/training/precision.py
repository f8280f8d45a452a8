"""train.precision: the bf16 products a device offers, the refusal where it has none, and auto's choice.

bf16 matrix products are fast only where the hardware multiplies bf16 itself: on a CPU the
AVX512_BF16 or AMX-BF16 instructions (oneDNN runs torch's bf16 products on them), on a CUDA GPU
compute capability 8.0 or newer. Elsewhere torch emulates them, slower than fp32: bf16 is refused
there in one line rather than run slowly, and "auto" picks fp32. Where bf16 is offered, "auto"
times one training batch's matrix products at the run's own shapes in both precisions, in turns,
and takes bf16 only if it measured faster.
"""

import functools
import statistics
import time
from dataclasses import dataclass

import torch

from dropcli.config import Config
from dropcli.errors import DropcliError
from dropcli.model.mlp import IN_FEATURES, N_CLASSES

# The CPU flags (as /proc/cpuinfo spells them) that give oneDNN native bf16 products, and their names.
CPU_BF16_FLAGS = {"avx512_bf16": "AVX512_BF16", "amx_bf16": "AMX-BF16"}
# The vector flags a reader of the benchmarks wants to see, in the order printed.
CPU_SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
PROBE_ROUNDS = 3
PROBE_FLOP = 2e9  # about this much work a precision per round: a few ms on small nets, one batch on big ones


@dataclass(frozen=True)
class Offer:
    """Whether `device` multiplies bf16 natively, and what it has or lacks, in words."""

    bf16: bool
    what: str


@dataclass(frozen=True)
class Choice:
    """The precision a run asked for, the one it uses, and why."""

    asked: str
    used: str
    why: str


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The host CPU's feature flags from /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def shown_cpu_flags() -> str:
    """The vector and matrix flags of this CPU that matter for the products, e.g. "avx2 avx512f avx512_bf16"."""
    present = [flag for flag in CPU_SHOWN_FLAGS if flag in cpu_flags()]
    return " ".join(present) or "none of " + " ".join(CPU_SHOWN_FLAGS)


def bf16_offer(device: torch.device) -> Offer:
    """What `device` offers for bf16 matrix products."""
    if device.type == "cpu":
        present = [name for flag, name in CPU_BF16_FLAGS.items() if flag in cpu_flags()]
        if not present:
            return Offer(False, "no AVX512_BF16 or AMX-BF16 instructions (bf16 products would be emulated, slower than fp32)")
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return Offer(False, f"{' and '.join(present)}, but this torch build's oneDNN cannot use them")
        return Offer(True, f"{' and '.join(present)} (oneDNN's bf16 products)")
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major < 8:
            return Offer(False, f"compute capability {major}.{minor}: bf16 tensor cores need 8.0 (Ampere) or newer")
        return Offer(True, f"compute capability {major}.{minor} (bf16 tensor cores)")
    return Offer(False, f"no bf16 path in dropcli for {device.type} (only CPUs and CUDA GPUs)")


def check_precision(precision: str, device: torch.device) -> None:
    """Raise DropcliError if `precision` is bf16 and `device` would only emulate it."""
    if precision != "bf16":
        return
    offer = bf16_offer(device)
    if not offer.bf16:
        raise DropcliError(
            f"train.precision=bf16 would run slower than fp32 on {device}: {offer.what}; "
            "use train.precision=fp32, or auto (which picks fp32 here)"
        )


def choose_precision(config: Config, device: torch.device, resumed: str | None = None) -> Choice:
    """The precision a run trains in: train.precision itself unless it is "auto"; a resumed
    run's own (`resumed`, the precision its checkpoint was trained in), so it resumes exactly;
    else bf16 where `device` offers it and the products measured faster, fp32 otherwise."""
    asked = config.train.precision
    if asked != "auto":
        return Choice(asked, asked, "asked for")
    if resumed is not None:
        return Choice(asked, resumed, f"auto: {resumed}, as when the run started (a resumed run keeps its precision)")
    offer = bf16_offer(device)
    if not offer.bf16:
        return Choice(asked, "fp32", f"auto: {device} has {offer.what}")
    fp32_seconds, bf16_seconds = probe_products(layer_sizes(config), config.train.batch_size, str(device))
    speedup = fp32_seconds / bf16_seconds
    if speedup > 1:
        return Choice(
            asked, "bf16", f"auto: {device} has {offer.what}; this run's products measured {speedup:.2f}x faster in bf16"
        )
    return Choice(
        asked, "fp32", f"auto: {device} has {offer.what}, but this run's products measured no faster in bf16 ({speedup:.2f}x)"
    )


def layer_sizes(config: Config) -> tuple[int, ...]:
    """(784, hidden..., 10): the widths the products run between."""
    return (IN_FEATURES, *config.model.hidden, N_CLASSES)


@functools.lru_cache(maxsize=64)  # a tune or a sweep asks once per shape, not once per trial
def probe_products(sizes: tuple[int, ...], batch: int, device_name: str) -> tuple[float, float]:
    """Seconds of one training batch's matrix products between `sizes` (forward, input and
    weight gradients), in fp32 and in bf16: the median of PROBE_ROUNDS rounds taken in turns."""
    device = torch.device(device_name)
    steps = {dtype: training_products(sizes, batch, dtype, device) for dtype in (torch.float32, torch.bfloat16)}
    flop = 6 * batch * sum(n_in * n_out for n_in, n_out in zip(sizes, sizes[1:]))
    repeats = max(1, min(50, round(PROBE_FLOP / flop)))
    seconds: dict[torch.dtype, list[float]] = {dtype: [] for dtype in steps}
    for step in steps.values():
        step()  # warm-up: oneDNN picks and caches its kernels on first use
    for _ in range(PROBE_ROUNDS):
        for dtype, step in steps.items():
            started = time.perf_counter()
            for _ in range(repeats):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds[dtype].append((time.perf_counter() - started) / repeats)
    return statistics.median(seconds[torch.float32]), statistics.median(seconds[torch.bfloat16])


def training_products(sizes: tuple[int, ...], batch: int, dtype: torch.dtype, device: torch.device):
    """A function that runs one training batch's matrix products between `sizes` in `dtype`,
    as the fused step does: per layer the forward product, the weight gradient, and the input
    gradient of every layer but the first. Its tensors draw on a generator of their own, so
    probing leaves the run's random numbers alone."""
    generator = torch.Generator(device=device).manual_seed(0)

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=device).to(dtype)

    weights = [random(n_out, n_in) for n_in, n_out in zip(sizes, sizes[1:])]  # (out, in)
    inputs = [random(batch, n) for n in sizes[:-1]]  # (batch, in)
    grads = [random(batch, n) for n in sizes[1:]]  # (batch, out)

    def step() -> None:
        for A, W in zip(inputs, weights):
            torch.mm(A, W.t())
        for index in range(len(weights) - 1, -1, -1):
            if index > 0:
                torch.mm(grads[index], weights[index])
            torch.mm(grads[index].t(), inputs[index])

    return step
