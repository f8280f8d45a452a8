"""Out-of-distribution detection: tell the test images of the training data set from another set's.

`evaluate --ood DIR_OR_NAME` reads the other set's test images (an IDX data set: a directory
holding t10k-images-idx3-ubyte[.gz], or the name of one dropcli knows, e.g. mnist, kmnist), scores
them with each method and asks how well an uncertainty score separates them from the in-
distribution test images. Out-of-distribution is the positive class; a higher score means "more
likely out". Scores:
- max probability: 1 - max_c p_c (the baseline of Hendrycks & Gimpel 2017);
- entropy: the predictive entropy of the averaged probabilities;
- mutual information: entropy of the mean minus the mean entropy of the passes (or members), the
  epistemic part (Gal 2016; Depeweg et al. 2018); only where there are several passes or members.
Measures (ties count half, as in the rank formula):
- AUROC: the chance that a random out-of-distribution image scores above a random in-distribution
  one (Mann-Whitney U / (n_in n_out));
- AUPR: average precision with out-of-distribution as positive, a threshold per distinct score.
Both take weights, so bootstrap.weights gives their intervals.
"""

from pathlib import Path

import torch

from dropcli.errors import DropcliError

SCORES = ("max probability", "entropy", "mutual information")
IMAGES_FILE = "t10k-images-idx3-ubyte"


def read_images(source: str | Path) -> tuple[Path, torch.Tensor]:
    """The file and its (n, 784) float images in [0, 1] that `source` names: a directory, or a
    data set name such as mnist (found where `dropcli data` looks for it)."""
    from dropcli import data

    directory = Path(source)
    if not directory.is_dir():
        if str(source) not in data.DATASETS:
            raise DropcliError(
                f"--ood {source}: not a directory, nor one of {', '.join(data.DATASETS)}; name a directory holding "
                f"{IMAGES_FILE}[.gz] (an IDX data set's test images)"
            )
        directory = data.find(None, str(source))
        if directory is None:
            remedy = (
                f"name a directory holding its {IMAGES_FILE}[.gz] instead (--ood DIR), "
                f"or run `dropcli data fetch --dataset {source}` on a machine with internet access"
            )
            raise DropcliError(f"--ood {source}: {data.not_found(None, str(source), remedy)}")
        folders = [directory, directory / data.DATASETS[str(source)].torchvision / "raw"]
    else:
        folders = [directory, *sorted(directory.glob("*/raw"))]
    path = next((f / name for f in folders for name in (IMAGES_FILE, f"{IMAGES_FILE}.gz") if (f / name).is_file()), None)
    if path is None:
        raise DropcliError(
            f"--ood {source}: no {IMAGES_FILE} or {IMAGES_FILE}.gz in {directory}; name an IDX data set's directory"
        )
    images = data.read_idx(path, data.IMAGES_MAGIC, None)
    if len(images) == 0:
        raise DropcliError(f"--ood {source}: {path} holds no images; name a data set whose test file holds some")
    return path, images.reshape(len(images), -1).float().div_(255)


def scores(p: torch.Tensor, expected_entropy: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Each score of `p` (n, classes), float64 (n,); mutual information needs the mean entropy of
    the passes or members (n,), else it is left out."""
    from dropcli.uncertainty.calibration import entropy_of

    p = p.double()
    out = {"max probability": 1 - p.max(dim=1).values, "entropy": entropy_of(p)}
    if expected_entropy is not None:
        # Rounding can leave a hair below 0 where all passes agree.
        out["mutual information"] = (out["entropy"] - expected_entropy.double()).clamp_min(0)
    return out


def _groups(inside: torch.Tensor, outside: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor):
    """Weights of in- and out-of-distribution examples per distinct score, scores ascending:
    (replicates, distinct) each."""
    values, group = torch.unique(torch.cat([inside, outside]), return_inverse=True)
    g_in, g_out = group[: len(inside)], group[len(inside) :]
    shape = (len(w_in), len(values))
    per_in = torch.zeros(shape, dtype=w_in.dtype, device=w_in.device).index_add_(1, g_in, w_in)
    per_out = torch.zeros(shape, dtype=w_out.dtype, device=w_out.device).index_add_(1, g_out, w_out)
    return per_in, per_out


def _weights(scores_: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    return torch.ones(1, len(scores_), dtype=torch.float64, device=scores_.device) if weights is None else weights.double()


def auroc(inside: torch.Tensor, outside: torch.Tensor, w_in=None, w_out=None) -> torch.Tensor:
    """(replicates,) AUROC of `outside` (n_out,) against `inside` (n_in,) scores; one value without weights."""
    per_in, per_out = _groups(inside.double(), outside.double(), _weights(inside, w_in), _weights(outside, w_out))
    below = per_in.cumsum(dim=1) - per_in  # in-distribution weight strictly below each score
    u = (per_out * (below + per_in / 2)).sum(dim=1)
    return u / (per_in.sum(dim=1) * per_out.sum(dim=1))


def aupr(inside: torch.Tensor, outside: torch.Tensor, w_in=None, w_out=None) -> torch.Tensor:
    """(replicates,) average precision, out-of-distribution positive: sum over thresholds of
    precision times the recall gained there."""
    per_in, per_out = _groups(inside.double(), outside.double(), _weights(inside, w_in), _weights(outside, w_out))
    # Thresholds from the highest score down: everything at or above a score is flagged.
    true = per_out.flip(1).cumsum(dim=1)
    false = per_in.flip(1).cumsum(dim=1)
    precision = true / (true + false).clamp_min(torch.finfo(true.dtype).tiny)
    return (precision * per_out.flip(1)).sum(dim=1) / per_out.sum(dim=1)
