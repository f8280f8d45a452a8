"""Out-of-distribution detection: tell the test images of the training data set from another set's.

`evaluate --ood SOURCE` (repeatable) scores other images with each method and asks how well an
uncertainty score separates them from the in-distribution test images. A source is
- another IDX data set's test images: a directory holding t10k-images-idx3-ubyte[.gz], or the
  name of one dropcli knows (mnist, kmnist);
- `heldout`: the test images of the classes the runs were not trained on (data.classes), the
  open-set benchmark that needs no other data set;
- a far-OOD sanity set made on the spot, as many images as the in-distribution test set, the
  same for every method and run (a fixed seed): `noise` (every pixel uniform in [0, 1]),
  `constant` (each image one uniform grey level) or `inverted` (1 - the in-distribution test images).
Out-of-distribution is the positive class; a higher score means "more likely out". Scores:
- max probability: 1 - max_c p_c (the baseline of Hendrycks & Gimpel 2017);
- entropy: the predictive entropy of the averaged probabilities;
- mutual information: entropy of the mean minus the mean entropy of the passes (or members), the
  epistemic part (Gal 2016; Depeweg et al. 2018); only where there are several passes or members.
Measures (ties count half, as in the rank formula):
- AUROC: the chance that a random out-of-distribution image scores above a random in-distribution
  one (Mann-Whitney U / (n_in n_out));
- AUPR: average precision with out-of-distribution as positive, a threshold per distinct score;
- FPR@95: the fraction of in-distribution images flagged at the highest threshold that flags at
  least 95 % of the out-of-distribution ones (everything scoring at or above it is flagged; lower
  is better).
All take weights, so bootstrap.weights gives their intervals.
"""

from pathlib import Path

import torch

from dropcli.errors import DropcliError

SCORES = ("max probability", "entropy", "mutual information")
MEASURES = ("auroc", "aupr", "fpr95")
IMAGES_FILE = "t10k-images-idx3-ubyte"
HELD_OUT = "heldout"
SYNTHETIC = ("noise", "constant", "inverted")
SYNTHETIC_SEED = 20261206  # fixed: every method and run sees the same made-up images
RECALL = 0.95  # FPR@95's true positive rate


def check_sources(sources: tuple[str, ...], classes: tuple[int, ...] | None) -> None:
    """Refuse, before any work, a source named twice or held-out classes the runs do not have."""
    repeated = [source for index, source in enumerate(sources) if source in sources[:index]]
    if repeated:
        raise DropcliError(f"--ood {repeated[0]} is named twice; name each source once")
    if HELD_OUT in sources and (classes is None or len(classes) == 10):
        raise DropcliError(
            f"--ood {HELD_OUT}: the runs were trained on every class (data.classes); train on some, "
            "e.g. --set data.classes=[0,1,2,3,4,5], to hold the others out"
        )


def outside_images(source: str, raw, config, inside: torch.Tensor) -> tuple[str, torch.Tensor]:
    """What `source` names, as (its label, (n, 784) images in [0, 1] on `inside`'s device): `raw`
    and `config` are the runs' data set as read and their DataConfig, `inside` the scored test images."""
    from dropcli import data

    if source == HELD_OUT:
        images, _ = data.of_classes(*raw["test"], config.classes, keep=False)
        images = images[: config.test_limit]
        return f"held-out classes {sorted(set(range(10)) - set(config.classes))}", images.reshape(len(images), -1).to(
            inside.device
        ).float().div_(255)
    if source in SYNTHETIC:
        generator = torch.Generator().manual_seed(SYNTHETIC_SEED)
        n = len(inside)
        made = {
            "noise": lambda: torch.rand(n, inside.shape[1], generator=generator),
            "constant": lambda: torch.rand(n, 1, generator=generator).expand(n, inside.shape[1]).contiguous(),
            "inverted": lambda: 1 - inside.cpu(),
        }[source]()
        return source, made.to(device=inside.device, dtype=inside.dtype)
    path, images = read_images(source)
    return str(path), images.to(inside.device)


def read_images(source: str | Path) -> tuple[Path, torch.Tensor]:
    """The file and its (n, 784) float images in [0, 1] that `source` names: a directory, or a
    data set name such as mnist (found where `dropcli data` looks for it)."""
    from dropcli import data

    directory = Path(source)
    if not directory.is_dir():
        if str(source) not in data.DATASETS:
            raise DropcliError(
                f"--ood {source}: not a directory, nor one of {', '.join([*data.DATASETS, HELD_OUT, *SYNTHETIC])}; name a "
                f"directory holding {IMAGES_FILE}[.gz] (an IDX data set's test images)"
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


def measures(inside: torch.Tensor, outside: torch.Tensor, w_in=None, w_out=None) -> torch.Tensor:
    """(replicates, len(MEASURES)): AUROC, AUPR and FPR@95 of `outside` (n_out,) against `inside`
    (n_in,) scores, each example counted `w_in` (replicates, n_in) and `w_out` (replicates, n_out)
    times (once without weights), computed in the weights' dtype.

    One sort of the pooled scores serves the three: in ascending order, each distinct score's in-
    and out-of-distribution weight, and the weight at or below it (running sums, read at the last
    example of each run of equal scores). The threshold at a score flags everything at or above it.
    """
    w_in, w_out = _weights(inside, w_in), _weights(outside, w_out)
    replicates = max(len(w_in), len(w_out))
    pooled = torch.cat([inside, outside]).double()
    order = torch.sort(pooled, stable=True).indices
    w = torch.cat([w_in.expand(replicates, -1), w_out.expand(replicates, -1)], dim=1)[:, order]  # (replicates, n)
    per_out = w * (order >= len(inside))
    per_in = w.sub_(per_out)
    # In place where it can be: each (replicates, n) temporary costs as much as the arithmetic.
    up_to_in, up_to_out = per_in.cumsum(dim=1), per_out.cumsum(dim=1)  # weight at or below each
    counts = torch.unique_consecutive(pooled[order], return_counts=True)[1]
    if len(counts) < len(pooled):  # ties: one column per distinct score
        ends = counts.cumsum(0) - 1
        up_to_in, up_to_out = up_to_in[:, ends], up_to_out[:, ends]
        per_in, per_out = _steps(up_to_in), _steps(up_to_out)
    total_in, total_out = up_to_in[:, -1:].clone(), up_to_out[:, -1:].clone()  # (replicates, 1)
    # AUROC: each out-of-distribution copy against the in-distribution weight below it, ties half.
    auroc = (per_out * (up_to_in - per_in / 2)).sum(dim=1) / (total_in * total_out).squeeze(1)
    flagged_in = up_to_in.neg_().add_(total_in).add_(per_in)  # at or above each threshold
    flagged_out = up_to_out.neg_().add_(total_out).add_(per_out)
    precision = flagged_out / (flagged_out + flagged_in).clamp_min(torch.finfo(w.dtype).tiny)
    aupr = precision.mul_(per_out).sum(dim=1) / total_out.squeeze(1)
    # FPR@95: the highest threshold flagging at least RECALL of the out-of-distribution weight; the
    # lowest (index 0, argmax's answer where no other has reached it) always counts, as it must:
    # rounding can leave its share a hair below 1.
    reached = flagged_out.div_(total_out) >= RECALL - 1e-12
    last = (reached * torch.arange(reached.shape[1], device=reached.device)).argmax(dim=1, keepdim=True)
    fpr = (flagged_in.gather(1, last) / total_in).squeeze(1)
    return torch.stack([auroc, aupr, fpr], dim=1)


def _steps(running: torch.Tensor) -> torch.Tensor:
    """Each column's increment over the one before: running sums back to the amounts."""
    return torch.diff(running, dim=1, prepend=torch.zeros_like(running[:, :1]))


def _weights(scores_: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    return torch.ones(1, len(scores_), dtype=torch.float64, device=scores_.device) if weights is None else weights


def auroc(inside: torch.Tensor, outside: torch.Tensor, w_in=None, w_out=None) -> torch.Tensor:
    """(replicates,) AUROC of `outside` against `inside` (see `measures`); one value without weights."""
    return measures(inside, outside, w_in, w_out)[:, 0]


def aupr(inside: torch.Tensor, outside: torch.Tensor, w_in=None, w_out=None) -> torch.Tensor:
    """(replicates,) average precision, out-of-distribution positive: sum over thresholds of
    precision times the recall gained there (see `measures`)."""
    return measures(inside, outside, w_in, w_out)[:, 1]


def fpr_at_recall(inside: torch.Tensor, outside: torch.Tensor, w_in=None, w_out=None) -> torch.Tensor:
    """(replicates,) the false positive rate at the highest threshold (a distinct score) that flags
    at least RECALL of the out-of-distribution weight (see `measures`)."""
    return measures(inside, outside, w_in, w_out)[:, 2]
