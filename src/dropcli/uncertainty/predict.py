"""Class probabilities of a saved model for image files or test-set images (`dropcli predict`).

The model was trained on Fashion-MNIST: 28 x 28 grey images of one garment, centred, light on a
black background, pixels scaled to [0, 1]. An image file is made like that: converted to grey,
padded to a square with its border colour, resized to 28 x 28 and, with `invert`, inverted
(a dark garment photographed on a white background). Reading image files needs Pillow.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dropcli import data
from dropcli.config import Config
from dropcli.data import dataset
from dropcli.errors import DropcliError
from dropcli.runs import checkpoints
from dropcli.uncertainty.calibration import entropy_of
from dropcli.uncertainty.evaluation import check_mc_time
from dropcli.uncertainty.methods import logits, mc_probabilities, stochastic_modules

SIDE = 28  # Fashion-MNIST's images are 28 x 28


@dataclass(frozen=True)
class Prediction:
    """One image's class probabilities: `top(k)` the most probable, `entropy` with Monte Carlo dropout."""

    source: str  # the image file, or "test image N"
    probabilities: list[float]  # one per class, in class_names order
    true_class: int | None  # known for a test-set image
    entropy: float | None  # with Monte Carlo dropout: the predictive entropy, in nats
    class_names: tuple[str, ...]  # the run's data set's (data.name)

    @property
    def true_name(self) -> str | None:
        return None if self.true_class is None else self.class_names[self.true_class]

    def top(self, k: int) -> list[tuple[str, float]]:
        """The k most probable classes, most probable first, as (name, probability)."""
        order = sorted(range(len(self.probabilities)), key=lambda i: -self.probabilities[i])
        return [(self.class_names[i], self.probabilities[i]) for i in order[:k]]


# Pillow keeps a 16-bit grey PNG as I;16 (or I), 0 to 65535; convert("L") would clip it at 255
# rather than scale it, so such a copy of a picture would read brighter than its 8-bit original.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def image_tensor(path: Path, invert: bool = False) -> torch.Tensor:
    """A PNG or JPEG file as the model's input: (784,) floats in [0, 1], as Fashion-MNIST's,
    whatever the file's bit depth (white is 1 in 8-bit and 16-bit files alike)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DropcliError("reading image files needs Pillow: pip install 'dropcli[images]' (or pip install pillow)") from None
    try:
        with Image.open(path) as opened:
            white = 65535.0 if opened.mode in SIXTEEN_BIT_MODES else 255.0
            grey = (opened if opened.mode in SIXTEEN_BIT_MODES else opened.convert("L")).convert("F")
    except FileNotFoundError:
        raise DropcliError(f"image {path} not found") from None
    except (UnidentifiedImageError, OSError) as error:
        raise DropcliError(f"{path}: not an image Pillow can read ({error}); give a PNG or JPEG file") from None
    square = _padded_square(grey)
    # Mode F holds 32-bit floats; resizing there keeps the precision of a 16-bit file.
    pixels = torch.frombuffer(bytearray(square.resize((SIDE, SIDE), Image.Resampling.LANCZOS).tobytes()), dtype=torch.float32)
    X = pixels.div(white).clamp_(0, 1)  # (784,); Lanczos overshoots a little at sharp edges
    return 1 - X if invert else X


def light_background(X: torch.Tensor) -> bool:
    """Whether an image as the model sees it, (784,) in [0, 1], has a light border: the model
    expects a light garment on black, so such an image most likely needs (or does not need) --invert."""
    image = X.reshape(SIDE, SIDE)
    border = torch.cat([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])  # (108,)
    return float(border.mean()) > 0.5


def _padded_square(image):
    """The image centred on a square of its border's mean colour, so resizing keeps its shape."""
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    pixels = image.load()
    border = [pixels[x, y] for x in range(width) for y in (0, height - 1)] + [
        pixels[x, y] for x in (0, width - 1) for y in range(height)
    ]
    side = max(width, height)
    square = Image.new(image.mode, (side, side), sum(border) / len(border))
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def images_of_test_set(config: Config, indices: list[int], recorded: Path | None = None) -> tuple[torch.Tensor, list[int]]:
    """Images of the whole test set of the run's data set (config.data.name; `recorded`: where the
    run found it) by index: (n, 784) floats and their labels."""
    images, labels = data.read_raw(data.for_run(config.data, recorded), config.data.name)["test"]
    for index in indices:
        if not 0 <= index < len(labels):
            raise DropcliError(f"--index {index}: the test set's images are numbered 0 to {len(labels) - 1}")
    chosen = torch.tensor(indices, dtype=torch.int64)
    return images[chosen].reshape(len(indices), -1).float().div_(255), labels[chosen].tolist()


def inputs(
    config: Config, images: list[Path], indices: list[int], invert: bool, recorded: Path | None = None
) -> tuple[torch.Tensor, list[str], list[int | None]]:
    """What `dropcli predict` scores: the image files, then the test-set images `indices`, as
    (X (n, 784), a name for each, the true class where known)."""
    rows = [image_tensor(image, invert) for image in images]
    test_X, labels = images_of_test_set(config, indices, recorded) if indices else (torch.empty(0, SIDE**2), [])
    X = torch.cat([torch.stack(rows) if rows else torch.empty(0, SIDE**2), test_X])
    sources = [str(image) for image in images] + [f"test image {i}" for i in indices]
    return X, sources, [None] * len(images) + labels


def predict(
    config: Config,
    payload: dict[str, Any],
    X: torch.Tensor,
    device: torch.device,
    sources: list[str],
    true_classes: list[int | None],
    mc_samples: int = 0,
) -> list[Prediction]:
    """The checkpoint's class probabilities for each row of X (n, 784), in eval mode; with
    `mc_samples` > 0, the mean softmax of that many passes with the noise layers on (seeded with
    the run's seed) and its entropy."""
    model = checkpoints.load_model(payload, device)
    X = X.to(device)
    if mc_samples > 0:
        if not stochastic_modules(model):
            raise DropcliError(
                f"--mc-samples {mc_samples}: this run's net (model.kind {config.model.kind}) has no dropout or noise layer "
                "to leave on, so every pass would be the same; leave out --mc-samples"
            )
        check_mc_time(model, X, mc_samples, config.train.precision)  # an impossible K is refused, not run out of memory
        torch.manual_seed(config.seed)
        probabilities = mc_probabilities(model, X, mc_samples, config.train.precision)  # (n, 10)
    else:
        probabilities = torch.softmax(logits(model, X, config.train.precision), dim=1)  # (n, 10)
    rows, names = probabilities.cpu().tolist(), dataset(config.data.name).class_names
    entropies = entropy_of(probabilities.double()).tolist() if mc_samples > 0 else [None] * len(rows)
    return [
        Prediction(source, row, true, entropy, names)
        for source, row, true, entropy in zip(sources, rows, true_classes, entropies)
    ]
