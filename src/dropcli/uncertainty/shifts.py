"""Shifted test sets made on the fly from the test images: rotation, translation, Gaussian noise.

`--shift FAMILY=START:STOP:STEP` (STOP included) or `--shift FAMILY=V1,V2,...`:

- rotate: degrees, counter-clockwise about the image centre, bilinear, zero (black) outside;
- translate: pixels to the right, bilinear, zero outside;
- noise: standard deviation of Gaussian noise added to the [0, 1] pixel intensities, which are
  then clipped to [0, 1]; the same noise for every method and run (a fixed seed per value).

Each shifted set is made on the device from the (n, 784) test tensor in one batched operation.
Rotation by 0 (or translation by 0, noise 0) returns the images exactly as they were.
"""

import math
from dataclasses import dataclass

import torch

from dropcli.errors import DropcliError

SIDE = 28
# family: (unit, lowest, highest) of its values
FAMILIES = {"rotate": ("degrees", -360.0, 360.0), "translate": ("pixels", -28.0, 28.0), "noise": ("std", 0.0, 10.0)}
NOISE_SEED = 20190606  # fixed: every method and run sees the same noisy images
MAX_POINTS = 1000


@dataclass(frozen=True)
class Shift:
    family: str  # "none" for the test set as it is
    value: float

    @property
    def label(self) -> str:
        return "no shift" if self.family == "none" else f"{self.family}={self.value:g}"


NONE = Shift("none", 0.0)


def parse_all(texts: list[str]) -> list[Shift]:
    """The shifts of every --shift option, in order; the unshifted set alone when there are none."""
    points = [point for text in texts for point in parse(text)]
    repeated = [point.label for index, point in enumerate(points) if point in points[:index]]
    if repeated:
        raise DropcliError(f"--shift {repeated[0]} is named twice; name each value once")
    return points or [NONE]


def parse(text: str) -> list[Shift]:
    """The shifts of one --shift option, e.g. "rotate=0:180:15" (13 angles) or "noise=0,0.5,1"."""
    family, sep, values = text.partition("=")
    family = family.strip()
    if not sep or family not in FAMILIES:
        raise DropcliError(
            f"--shift {text}: expected FAMILY=START:STOP:STEP or FAMILY=V1,V2 with FAMILY one of {', '.join(FAMILIES)}"
        )
    numbers = [_number(text, part) for part in values.split(":" if ":" in values else ",")]
    points = _range(text, *numbers) if ":" in values else numbers
    unit, lowest, highest = FAMILIES[family]
    for value in points:
        if not lowest <= value <= highest:
            raise DropcliError(f"--shift {text}: {value:g} is out of range; {family} takes {lowest:g} to {highest:g} {unit}")
    if len(set(points)) != len(points):
        raise DropcliError(f"--shift {text}: a value is named twice; name each once")
    return [Shift(family, value) for value in points]


def _number(text: str, part: str) -> float:
    try:
        value = float(part)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DropcliError(f"--shift {text}: {part.strip()!r} is not a number; e.g. --shift rotate=0:180:15")
    return value


def _range(text: str, *numbers: float) -> list[float]:
    if len(numbers) != 3:
        raise DropcliError(f"--shift {text}: a range is START:STOP:STEP, e.g. rotate=0:180:15")
    start, stop, step = numbers
    if step <= 0 or stop < start:
        raise DropcliError(f"--shift {text}: a range needs STEP > 0 and STOP >= START")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_POINTS:
        raise DropcliError(f"--shift {text}: {count} values; use a larger STEP (at most {MAX_POINTS} values)")
    return [round(start + index * step, 10) for index in range(count)]


@torch.no_grad()
def apply(X: torch.Tensor, shift: Shift) -> torch.Tensor:
    """`X` (n, 784), images in [0, 1], shifted by `shift`; the same tensor when there is nothing to do."""
    if shift.family == "none" or shift.value == 0:
        return X
    if shift.family == "noise":
        generator = torch.Generator(device=X.device).manual_seed(NOISE_SEED)
        noise = torch.randn(X.shape, generator=generator, device=X.device, dtype=X.dtype)
        return (X + shift.value * noise).clamp_(0, 1)
    rows, columns = _source_grid(shift, X.device)
    return _resample(X, rows, columns)


def _source_grid(shift: Shift, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output pixel, the (row, column) it is read from, as float64 (784,) each."""
    index = torch.arange(SIDE, dtype=torch.float64, device=device)
    row, column = torch.meshgrid(index, index, indexing="ij")
    centre = (SIDE - 1) / 2
    if shift.family == "translate":
        return row.flatten(), (column - shift.value).flatten()
    angle = math.radians(shift.value)
    cos, sin = math.cos(angle), math.sin(angle)
    x, y = column - centre, centre - row  # y points up, so positive angles turn counter-clockwise
    source_x, source_y = cos * x + sin * y, -sin * x + cos * y  # the inverse rotation
    source = torch.stack([centre - source_y, source_x + centre]).flatten(1)  # (2, 784)
    # cos and sin of 90 degrees are not exact in floating point: snap to the pixel it meant.
    snapped = source.round()
    source = torch.where((source - snapped).abs() < 1e-9, snapped, source)
    return source[0], source[1]


def _resample(X: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of every image of `X` (n, 784) at the same (784,) source points; zero outside."""
    top, left = rows.floor(), columns.floor()
    down, right = rows - top, columns - left  # weights of the lower and right neighbours
    sources, weights = [], []
    for d_row, d_col, weight in (
        (0, 0, (1 - down) * (1 - right)),
        (0, 1, (1 - down) * right),
        (1, 0, down * (1 - right)),
        (1, 1, down * right),
    ):
        r, c = top + d_row, left + d_col
        inside = (r >= 0) & (r < SIDE) & (c >= 0) & (c < SIDE)
        sources.append((r.clamp(0, SIDE - 1) * SIDE + c.clamp(0, SIDE - 1)).long())  # (784,)
        weights.append(torch.where(inside, weight, 0))
    source, weight = torch.stack(sources, dim=1), torch.stack(weights, dim=1).to(X.dtype)  # (784, 4) each
    # One gather of the four neighbours of every pixel, then their weighted sum.
    neighbours = X.index_select(1, source.flatten()).view(len(X), SIDE * SIDE, 4)  # (n, 784, 4)
    return (neighbours * weight).sum(dim=2)
