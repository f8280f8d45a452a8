"""Shifted test sets made on the fly from the test images: rotation, translation, Gaussian noise,
and corruptions in the spirit of MNIST-C (Mu & Gilmer 2019), each at an intensity.

`--shift FAMILY=START:STOP:STEP` (STOP included) or `--shift FAMILY=V1,V2,...`:

- rotate: degrees, counter-clockwise about the image centre, bilinear, zero (black) outside;
- translate: pixels to the right, bilinear, zero outside;
- noise: standard deviation of Gaussian noise added to the [0, 1] pixel intensities, which are
  then clipped to [0, 1]; the same noise for every method and run (a fixed seed per value);
- blur: the standard deviation, in pixels, of a Gaussian blur (kernel to 3 sigma, black outside);
- contrast: how much contrast is taken away, 0 to 1: each image becomes its mean plus (1 - v)
  times its difference from the mean (1: a flat grey image);
- elastic: the largest displacement, in pixels, of an elastic deformation (Simard et al. 2003):
  a random field per image, smoothed by a Gaussian of ELASTIC_SIGMA pixels, scaled so that its
  largest displacement is v, applied by bilinear resampling (black outside);
- speckle: the standard deviation of multiplicative noise, x + x * v * N(0, 1), clipped to [0, 1]
  (black stays black).
The random corruptions are drawn with fixed seeds: the same images for every method and run.

Each shifted set is made on the device from the (n, 784) test tensor in one batched operation.
Rotation by 0 (or translation by 0, noise 0) returns the images exactly as they were.
"""

import math
from dataclasses import dataclass

import torch

from dropcli.errors import DropcliError

SIDE = 28
# family: (unit, lowest, highest) of its values
FAMILIES = {
    "rotate": ("degrees", -360.0, 360.0),
    "translate": ("pixels", -28.0, 28.0),
    "noise": ("std", 0.0, 10.0),
    "blur": ("pixels (sigma)", 0.0, 10.0),
    "contrast": ("of the contrast taken away", 0.0, 1.0),
    "elastic": ("pixels (largest displacement)", 0.0, 14.0),
    "speckle": ("std", 0.0, 10.0),
}
NOISE_SEED = 20190606  # fixed: every method and run sees the same noisy images
ELASTIC_SIGMA = 3.0  # pixels: the smoothness of the elastic fields
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
    if shift.family in ("noise", "speckle"):
        generator = torch.Generator(device=X.device).manual_seed(NOISE_SEED + (shift.family == "speckle"))
        noise = torch.randn(X.shape, generator=generator, device=X.device, dtype=X.dtype)
        return (X + shift.value * noise * (X if shift.family == "speckle" else 1)).clamp_(0, 1)
    if shift.family in CORRUPTIONS:
        return CORRUPTIONS[shift.family](X, shift.value)
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


def _gaussian_kernel(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()  # (2 radius + 1,)


def _smooth(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (n, channels, 28, 28), separable, zero outside."""
    kernel = _gaussian_kernel(sigma, images.device, images.dtype)
    channels, radius = images.shape[1], len(kernel) // 2
    across = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    down = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    images = torch.nn.functional.conv2d(images, across, padding=(0, radius), groups=channels)
    return torch.nn.functional.conv2d(images, down, padding=(radius, 0), groups=channels)


def _blur(X: torch.Tensor, sigma: float) -> torch.Tensor:
    return _smooth(X.view(-1, 1, SIDE, SIDE), sigma).reshape(len(X), -1)


def _contrast(X: torch.Tensor, taken: float) -> torch.Tensor:
    mean = X.mean(dim=1, keepdim=True)  # (n, 1): each image's own grey level
    return mean + (1 - taken) * (X - mean)


def _elastic(X: torch.Tensor, largest: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(NOISE_SEED + 2)
    field = torch.rand(len(X), 2, SIDE, SIDE, generator=generator, dtype=torch.float64) * 2 - 1
    field = _smooth(field, ELASTIC_SIGMA)  # (n, 2, 28, 28): smooth displacements in pixels, up to scale
    field = field * (largest / field.flatten(1).abs().amax(dim=1).clamp_min(1e-12))[:, None, None, None]
    # grid_sample reads each output pixel at (x, y) in [-1, 1] (align_corners: the pixel centres).
    index = torch.linspace(-1, 1, SIDE, dtype=torch.float64)
    y, x = torch.meshgrid(index, index, indexing="ij")
    grid = torch.stack([x + field[:, 0] * 2 / (SIDE - 1), y + field[:, 1] * 2 / (SIDE - 1)], dim=3)  # (n, 28, 28, 2)
    images = X.view(-1, 1, SIDE, SIDE)
    moved = torch.nn.functional.grid_sample(
        images, grid.to(device=X.device, dtype=X.dtype), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return moved.reshape(len(X), -1)


CORRUPTIONS = {"blur": _blur, "contrast": _contrast, "elastic": _elastic}
