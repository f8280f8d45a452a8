"""Evaluate a saved checkpoint: loss, accuracy, per-class accuracy and the confusion matrix."""

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dropcli import runs
from dropcli.config import Config
from dropcli.data import SPLIT_SIZES, Splits, dataset
from dropcli.errors import DropcliError
from dropcli.model.mlp import N_CLASSES
from dropcli.runs import checkpoints
from dropcli.runtime import autocast, duration_text
from dropcli.training.epoch import evaluate


@dataclass(frozen=True)
class Evaluation:
    split: str
    epoch: int
    precision: str  # the run's train.precision: fp32, or bf16 autocast as in training
    loss: float
    accuracy: float
    class_names: tuple[str, ...]
    per_class_accuracy: list[float]
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    images: int = 0  # how many images were scored
    file_images: int = 0  # how many the split's file holds (train and val share the training file)
    mc_samples: int = 0
    mc_loss: float | None = None  # Monte Carlo dropout: noise left on, predictions averaged
    mc_accuracy: float | None = None


# Monte Carlo dropout longer than this (estimated from a timed probe) is refused: K in the
# tens to hundreds is what the method needs, and a typo such as 100000 would run for hours.
MC_TIME_LIMIT_S = 3600.0


def load_target(target: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint `target` names (a .pt file, or a run directory's last.pt) and its contents;
    the error says what to do instead: evaluate best.pt when it is fine, or that the run saved none."""
    if not target.is_dir():
        return target, checkpoints.load(target)
    last, best = target / runs.LAST_CHECKPOINT, target / runs.BEST_CHECKPOINT
    if not last.is_file() and not best.is_file():
        raise DropcliError(f"{target}: nothing to evaluate, {_why_no_checkpoint(target)}")
    try:
        return last, checkpoints.load(last)
    except DropcliError as error:
        if not best.is_file():
            raise DropcliError(f"{error}; the run has no best.pt (no validation split): train it again") from None
        try:
            checkpoints.load(best)
        except DropcliError:
            raise DropcliError(f"{error}; {best} cannot be read either: train the run again") from None
        raise DropcliError(f"{error}; {best} is fine: dropcli evaluate {best}") from None


def _why_no_checkpoint(run_dir: Path) -> str:
    try:
        summary = runs.read_summary(run_dir / runs.SUMMARY_FILE)
    except DropcliError:
        summary = {}
    if summary.get("status") == "diverged":
        return f"the run diverged before saving any checkpoint ({summary.get('reason')})"
    if (run_dir / runs.CONFIG_FILE).is_file():
        return "no checkpoint: no epoch of this run finished"
    return f"not a run directory (no config.yaml or checkpoints/){runs.runs_inside(run_dir)}"


def evaluate_model(model: torch.nn.Module, config: Config, epoch: int, data: Splits, split: str) -> Evaluation:
    """Score a run's model (trained for `epoch` epochs, on data's device) on one split, in eval
    mode. (Monte Carlo dropout is scored by study.py, which fills in the mc_ fields.)"""
    subset = getattr(data, split)
    if subset is None:
        raise DropcliError(f"this run has no {split} split (data.val_split is 0); use --split test or --split train")
    # The same function and precision training used, so the numbers match what it reported.
    precision = config.train.precision
    loss, accuracy = evaluate(model, subset, precision=precision)
    confusion = confusion_matrix(model, subset.X, subset.y, precision=precision)
    per_class = (confusion.diag() / confusion.sum(dim=1).clamp(min=1)).tolist()
    file_images = SPLIT_SIZES["test" if split == "test" else "train"]
    return Evaluation(
        split,
        epoch,
        precision,
        loss,
        accuracy,
        dataset(config.data.name).class_names,
        per_class,
        confusion.tolist(),
        len(subset),
        file_images,
    )


def check_mc_time(
    model: torch.nn.Module, X: torch.Tensor, samples: int, precision: str, repeats: int = 1, fitting: int = 0
) -> float:
    """Seconds `repeats` Monte Carlo scorings of `X` with `samples` passes should take, plus
    `fitting` more image-passes (temperature fitting on validation), from a timed probe of the
    batched forward the real scoring repeats (the same shape, so per-call costs count for any K and
    model kind); DropcliError if that is over MC_TIME_LIMIT_S."""
    from dropcli.uncertainty.methods import ROWS_PER_PASS, has_weight_noise, mc_probabilities, stacked_shape

    if has_weight_noise(model):  # one pass over X per sample, ROWS_PER_PASS rows at a time
        rows, copies = min(len(X), ROWS_PER_PASS), 2
        calls = samples / copies * len(X) / rows
    else:
        rows, copies = stacked_shape(len(X), samples)
        calls = math.ceil(len(X) / rows) * math.ceil(samples / copies)
    mc_probabilities(model, X[:rows], 1, precision)  # the first call pays one-off set-up costs
    timings = []
    for _ in range(3):  # the median of three: one probe on a busy machine can be off several times
        started = time.perf_counter()
        mc_probabilities(model, X[:rows], copies, precision)
        if X.device.type == "cuda":
            torch.cuda.synchronize(X.device)
        timings.append(time.perf_counter() - started)
    per_call = sorted(timings)[1]
    estimate = per_call * (calls * repeats + fitting / (rows * copies))
    if estimate > MC_TIME_LIMIT_S:
        per_pass = per_call * calls / samples  # one pass over all of X
        fits = max(1, int(MC_TIME_LIMIT_S / (estimate / samples)))
        also = f" (and {fitting:,} image-passes to fit temperatures on validation)" if fitting else ""
        raise DropcliError(
            f"--mc-samples {samples}: {samples:,} passes over {len(X):,} image{'s' * (len(X) != 1)}{f' × {repeats} (runs × shifts)' if repeats > 1 else ''}{also} "
            f"would take about {duration_text(estimate)} here ({per_pass:.3g} s a pass on {X.device}); at most about {fits:,} fit in "
            f"{duration_text(MC_TIME_LIMIT_S)}: use fewer (tens to hundreds are usual)"
        )
    return estimate


@torch.no_grad()
def confusion_matrix(
    model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096, precision: str = "fp32"
) -> torch.Tensor:
    """(10, 10) counts of (true class, predicted class)."""
    model.eval()
    counts = torch.zeros(N_CLASSES**2, dtype=torch.int64, device=X.device)
    for start in range(0, len(y), batch_size):
        with autocast(X.device, precision):
            predicted = model(X[start : start + batch_size]).argmax(dim=1)
        counts += torch.bincount(y[start : start + batch_size] * N_CLASSES + predicted, minlength=counts.numel())
    return counts.view(N_CLASSES, N_CLASSES).cpu()
