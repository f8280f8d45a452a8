"""Data augmentation on whole batches, on the training device: random shifts and mirror images.

No per-sample Python and no DataLoader: each batch's shifts and flips are drawn at once from a
seeded generator of the run's own (saved in checkpoints, so resumed runs draw the same), and
applied by one gather.
"""

import torch

from dropcli.config import AugmentConfig
from dropcli.data import IMAGE_SIDE


def shift_and_flip(X: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """X (batch, 784) with each image shifted by up to `config.shift` pixels in each direction
    (zeros fill in) and, with `config.flip`, mirrored left-right with probability 0.5."""
    n, side, k = len(X), IMAGE_SIDE, config.shift
    # Drawn on the CPU generator and moved: the same numbers on every device.
    dy, dx = torch.randint(0, 2 * k + 1, (2, n), generator=generator).to(X.device)
    flips = torch.rand(n, generator=generator).to(X.device) < 0.5 if config.flip else None
    images = X.view(n, side, side)
    if k:
        padded = torch.nn.functional.pad(images, (k, k, k, k))  # (batch, side + 2k, side + 2k)
        steps = torch.arange(side, device=X.device)
        rows = (dy[:, None] + steps)[:, :, None]  # (batch, side, 1)
        columns = (dx[:, None] + steps)[:, None, :]  # (batch, 1, side)
        images = padded[torch.arange(n, device=X.device)[:, None, None], rows, columns]  # (batch, side, side)
    if flips is not None:
        images = torch.where(flips[:, None, None], images.flip(-1), images)
    return images.reshape(n, side * side)


def is_on(config: AugmentConfig) -> bool:
    return config.shift > 0 or config.flip
