"""Dropout from scratch: a custom autograd op, the function around it, and a module.

Forward keeps each element with probability 1 - p and scales the survivors by 1 / (1 - p), so
the expected output equals the input. Backward sends the gradient through the same mask.
`mask_mode` says how the mask is drawn and kept for backward (`draw_keep`):

- "bool": a torch.bool mask, 1 byte per element, drawn as `uniform > p` (the chapter's way);
- "bits": the same mask packed 8 to a byte, for memory-bound runs;
- "bernoulli": the mask `bernoulli_(1 - p)` draws, which is how `F.dropout` draws its mask on
  the CPU, so under the same seed the two agree bit for bit there;
- "int16": a mask from 16-bit random numbers, four from each 64-bit random word, with p rounded
  to a multiple of 2**-16: the cheapest to draw (torch's CPU generator is serial, and the other
  modes spend one or two 32-bit draws on every element).
"""

import functools
import math
import numbers

import torch
from torch import nn

from dropcli.config.vocabulary import MASK_MODES, one_of


def dropout(
    x: torch.Tensor,
    p: float,
    training: bool = True,
    *,
    generator: torch.Generator | None = None,
    mask_mode: str = "bool",
) -> torch.Tensor:
    """Zero each element of `x` with probability `p` and scale the rest by 1 / (1 - p).

    In eval mode (`training=False`) or with p == 0 this returns `x` itself; with p == 1 it
    returns zeros (and a zero gradient), never NaN.
    """
    _check_arguments(p, mask_mode)
    if not training or p == 0:
        return x
    if p == 1:
        # No survivors. where() and not x * 0, which is NaN for an inf input; its gradient is 0.
        return torch.where(torch.zeros_like(x, dtype=torch.bool), x, 0.0)
    return DropoutFunction.apply(x, float(p), generator, mask_mode)


def check_probability(p: object) -> None:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout probability p must be a number between 0 and 1, got p={p!r}")


def _check_arguments(p: object, mask_mode: str) -> None:
    check_probability(p)
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {one_of(MASK_MODES)}, got {mask_mode!r}")


class Dropout(nn.Module):
    """`nn.Dropout`'s behaviour on dropcli's op: active in train mode, the identity in eval."""

    def __init__(self, p: float = 0.5, *, mask_mode: str = "bool", generator: torch.Generator | None = None):
        super().__init__()
        _check_arguments(p, mask_mode)
        self.p = float(p)
        self.mask_mode = mask_mode
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, generator=self.generator, mask_mode=self.mask_mode)

    def extra_repr(self) -> str:
        return f"p={self.p}, mask_mode={self.mask_mode!r}"


class DropoutFunction(torch.autograd.Function):
    """The op itself, for 0 < p < 1. Call it through `dropout()`, which handles eval mode,
    p == 0 and p == 1."""

    @staticmethod
    def forward(ctx, x, p, generator, mask_mode):
        ctx.p = p
        ctx.mask_mode = mask_mode
        ctx.shape = x.shape
        keep = draw_keep(x, p, mask_mode, generator)
        ctx.save_for_backward(pack_bits(keep) if mask_mode == "bits" else keep)
        # x * keep is x or 0 exactly, so each survivor is x * scale rounded once, as in F.dropout.
        return x.mul(keep).mul_(_scale(p, x))

    @staticmethod
    def backward(ctx, grad):
        (saved,) = ctx.saved_tensors
        keep = unpack_bits(saved, ctx.shape) if ctx.mask_mode == "bits" else saved
        # Plain differentiable ops, so double backward works.
        return grad.mul(keep).mul_(_scale(ctx.p, grad)), None, None, None


def draw_keep(
    like: torch.Tensor, p: float, mask_mode: str, generator: torch.Generator | None = None, dtype: torch.dtype = torch.bool
) -> torch.Tensor:
    """A fresh mask shaped like `like`: each element 1 (kept) with probability 1 - p, else 0,
    drawn the way `mask_mode` says, from `generator` (torch's default generator when None).

    `dtype` is the mask's: bool to keep it small, float32 to multiply with at full speed (the
    comparison writes it directly, which is faster than converting a bool mask afterwards).
    """
    shape, device = like.shape, like.device
    if mask_mode == "int16":
        threshold = round(p * 2**16) - 2**15
        if threshold >= 2**15:  # p rounds to 1
            return torch.zeros(shape, dtype=dtype, device=device)
        uniform = random_int16(like.numel(), device, generator).view(shape)
        return torch.ge(uniform, threshold, out=torch.empty(shape, dtype=dtype, device=device))
    if mask_mode == "bernoulli":
        keep = 1 - p  # one formula for both paths: the CPU's, tested bit for bit, is the GPU's too
        if device.type != "cpu":
            return torch.empty_like(like, dtype=dtype).bernoulli_(keep, generator=generator)
        # torch's CPU bernoulli_(q) keeps an element when the low 53 bits of one 64-bit random
        # word, read as a fraction, are below q, one element at a time in memory order. The same
        # words drawn by random_ (in the same layout) and compared at once give the same mask,
        # about three times faster.
        words = _random_bits(torch.empty_like(like, dtype=torch.int64), generator)
        return torch.lt(words.bitwise_and_(2**53 - 1), math.ceil(keep * 2**53), out=torch.empty_like(like, dtype=dtype))
    # Draw in float32 even for fp16/bf16 inputs: their coarse grid would bias the keep rate.
    noise = torch.empty(shape, dtype=torch.float32, device=device).uniform_(generator=generator)
    return torch.gt(noise, p, out=torch.empty(shape, dtype=dtype, device=device))


def _random_bits(words: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """`words` (int64) filled in place with random 64-bit words, every bit random."""
    return words.random_(-(2**63), None, generator=generator)


def random_int16(n: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """`n` random int16 numbers, each on [-2**15, 2**15), cut four from each of ceil(n / 4)
    random 64-bit words: no more words than that are drawn from `generator`."""
    words = _random_bits(torch.empty(math.ceil(n / 4), dtype=torch.int64, device=device), generator)
    return words.view(torch.int16)[:n]


@functools.lru_cache(maxsize=256)
def survivor_scale(p: float, dtype: torch.dtype) -> float:
    """1 / (1 - p) rounded to `dtype` the way `F.dropout` computes it, so results match exactly."""
    return torch.ones((), dtype=dtype).div_(1 - p).item()


def _scale(p: float, like: torch.Tensor) -> float | torch.Tensor:
    if torch.compiler.is_compiling():
        # .item() would split torch.compile's graph; a 0-dim tensor holds the same rounded value.
        return like.new_ones(()).div_(1 - p)
    return survivor_scale(p, like.dtype)


BITS = 8  # mask elements packed into each byte


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Pack a bool mask 8 elements to a byte: (packed_size(n),) uint8.

    Byte j holds elements j, j + m, ..., j + 7m of the flattened mask (zeros past its end),
    m = packed_size(n), as its bits 0 to 7, so packing and unpacking work on whole contiguous rows.
    """
    flat = mask.flatten()
    rows = torch.zeros(BITS, packed_size(flat.numel()), dtype=torch.uint8, device=mask.device)  # (8, m)
    rows.view(-1)[: flat.numel()] = flat.view(torch.uint8)
    return (rows * _bit_values(mask.device)).sum(0, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Invert `pack_bits`: a bool mask of `shape`."""
    rows = (packed & _bit_values(packed.device)).bool()  # (m,) against (8, 1): (8, m)
    return rows.flatten()[: math.prod(shape)].view(shape)


def packed_size(n: int) -> int:
    """Bytes that hold `n` mask elements packed: ceil(n / 8)."""
    return math.ceil(n / BITS)


def _bit_values(device: torch.device) -> torch.Tensor:
    """(8, 1) uint8: the value of bit k of a byte, 2**k, in row k."""
    return (2 ** torch.arange(BITS, dtype=torch.uint8, device=device))[:, None]


def saved_tensor_bytes(fn, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward while computing `fn(x)`: what each mask mode is about."""
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn(x)
    return sum(sizes)
