"""Evaluate a saved checkpoint: loss, accuracy, per-class accuracy and the confusion matrix."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dropcli import checkpoints, runs
from dropcli.config import Config
from dropcli.data import CLASS_NAMES, FashionMNIST
from dropcli.dropout import Dropout
from dropcli.errors import DropcliError
from dropcli.models import DropConnectLinear
from dropcli.noise import GaussianNoise
from dropcli.train import autocast, evaluate, new_state


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
    mc_samples: int = 0
    mc_loss: float | None = None  # Monte Carlo dropout: noise left on, predictions averaged
    mc_accuracy: float | None = None


# Monte Carlo dropout longer than this (estimated from one timed pass) is refused: K in the
# tens to hundreds is what the method needs, and a typo such as 100000 would run for hours.
MC_TIME_LIMIT_S = 3600.0


def load_target(target: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint `target` names (a .pt file, or a run directory's last.pt) and its contents;
    the error says what to do instead: evaluate best.pt when it is fine, or that the run saved none."""
    if not target.is_dir():
        return target, checkpoints.load(target)
    last, best = target / "checkpoints" / "last.pt", target / "checkpoints" / "best.pt"
    if not last.is_file() and not best.is_file():
        raise DropcliError(f"{target}: {_why_no_checkpoint(target)}; nothing to evaluate")
    try:
        return last, checkpoints.load(last)
    except DropcliError as error:
        try:
            checkpoints.load(best)
        except DropcliError:
            raise DropcliError(f"{error}; {best} cannot be read either: train the run again") from None
        raise DropcliError(f"{error}; {best} is fine: dropcli evaluate {best}") from None


def _why_no_checkpoint(run_dir: Path) -> str:
    try:
        summary = runs.read_summary(run_dir / "summary.json")
    except DropcliError:
        summary = {}
    if summary.get("status") == "diverged":
        return f"the run diverged before saving any checkpoint ({summary.get('reason')})"
    if (run_dir / "config.yaml").is_file():
        return "no checkpoint: no epoch of this run finished"
    return "not a run directory (no config.yaml or checkpoints/)"


def evaluate_checkpoint(
    config: Config, payload: dict[str, Any], data: FashionMNIST, device: torch.device, split: str, mc_samples: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> Evaluation:  # fmt: skip
    """Rebuild the checkpoint's model on `device` and score it on one split, in eval mode.

    With `mc_samples` > 0, also score Monte Carlo dropout: the noise layers stay on and the
    softmax of that many stochastic passes is averaged (seeded with the run's seed). One pass
    is timed first: an estimate over MC_TIME_LIMIT_S is refused; `progress(done, total, estimated seconds)` is
    told as the passes go.
    """
    subset = getattr(data, split)
    if subset is None:
        raise DropcliError(f"this run has no {split} split (data.val_split is 0); use --split test or --split train")
    state = new_state(config, device)
    checkpoints.restore(state, payload)
    estimate = _check_mc_time(state.model, subset, mc_samples, device, config.train.precision) if mc_samples else 0.0
    # The same function and precision training used, so the numbers match what it reported.
    precision = config.train.precision
    loss, accuracy = evaluate(state.model, subset, precision=precision)
    confusion = confusion_matrix(state.model, subset.X, subset.y, precision=precision)
    per_class = (confusion.diag() / confusion.sum(dim=1).clamp(min=1)).tolist()
    mc_loss, mc_accuracy = None, None
    if mc_samples > 0:
        torch.manual_seed(config.seed)
        with autocast(device, precision):
            report = (lambda done, total: progress(done, total, estimate)) if progress else None
            mc_loss, mc_accuracy = monte_carlo_dropout(state.model, subset.X, subset.y, mc_samples, progress=report)
    return Evaluation(
        split, payload["epoch"], precision, loss, accuracy, CLASS_NAMES, per_class, confusion.tolist(), mc_samples, mc_loss,
        mc_accuracy,
    )  # fmt: skip


def _check_mc_time(model: torch.nn.Module, subset, samples: int, device: torch.device, precision: str) -> float:
    """Seconds `samples` Monte Carlo passes over `subset` should take, from one timed pass;
    DropcliError if that is over MC_TIME_LIMIT_S."""
    probe = min(samples, 4)  # a few passes in one call, as the real run makes them
    with autocast(device, precision):
        monte_carlo_dropout(model, subset.X, subset.y, 1)  # the first call pays one-off set-up costs
        started = time.perf_counter()
        monte_carlo_dropout(model, subset.X, subset.y, probe)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        one = (time.perf_counter() - started) / probe
    estimate = one * samples
    if estimate > MC_TIME_LIMIT_S:
        fits = max(1, int(MC_TIME_LIMIT_S / one))
        raise DropcliError(
            f"--mc-samples {samples}: {samples:,} passes over {len(subset):,} images would take about {_duration(estimate)} "
            f"here ({one:.3g} s a pass on {device}); at most about {fits:,} fit in {_duration(MC_TIME_LIMIT_S)}: use fewer "
            "(tens to hundreds are usual)"
        )
    return estimate


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


@torch.no_grad()
def monte_carlo_dropout(
    model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, samples: int, batch_size: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[float, float]:  # fmt: skip
    """(loss, accuracy) of the mean softmax over `samples` passes with the noise layers on;
    `progress(done, total)` after each pass over each batch."""
    model.eval()
    for module in model.modules():
        # The layers that inject noise: the two noise slots and DropConnect's hidden layers.
        if isinstance(module, (Dropout, torch.nn.Dropout, GaussianNoise, DropConnectLinear)):
            module.train()
    loss_sum, correct = 0.0, 0
    starts = range(0, len(y), batch_size)
    for batch, start in enumerate(starts):
        X_batch, y_batch = X[start : start + batch_size], y[start : start + batch_size]
        total: Any = 0
        for sample in range(samples):
            total = total + torch.softmax(model(X_batch), dim=1)  # (batch, 10)
            if progress is not None:
                progress(batch * samples + sample + 1, len(starts) * samples)
        probabilities = total / samples
        loss_sum += float(F.nll_loss(probabilities.clamp_min(1e-12).log(), y_batch, reduction="sum"))
        correct += int((probabilities.argmax(dim=1) == y_batch).sum())
    model.eval()
    return loss_sum / len(y), correct / len(y)


@torch.no_grad()
def confusion_matrix(
    model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096, precision: str = "fp32"
) -> torch.Tensor:
    """(10, 10) counts of (true class, predicted class)."""
    model.eval()
    counts = torch.zeros(len(CLASS_NAMES) ** 2, dtype=torch.int64, device=X.device)
    for start in range(0, len(y), batch_size):
        with autocast(X.device, precision):
            predicted = model(X[start : start + batch_size]).argmax(dim=1)
        counts += torch.bincount(y[start : start + batch_size] * len(CLASS_NAMES) + predicted, minlength=counts.numel())
    return counts.view(len(CLASS_NAMES), len(CLASS_NAMES)).cpu()
