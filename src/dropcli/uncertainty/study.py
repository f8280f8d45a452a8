"""`evaluate`'s uncertainty study: each method (uncertainty.py) on each shifted test set (shifts.py).

One run, or a deep ensemble of runs that differ only in seed (ensembles.py). Every method's
probabilities are scored on the device (calibration.py) and, when asked, kept for --predictions.
"""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dropcli.errors import DropcliError
from dropcli.uncertainty import calibration, ensembles, methods, shifts
from dropcli.uncertainty.calibration import Scores
from dropcli.uncertainty.shifts import Shift

Progress = Callable[[float, int, float], None]  # (steps done, steps in all, estimated seconds); 0 first, before any work


@dataclass(frozen=True)
class Request:
    targets: list[Path]
    split: str = "test"
    mc_samples: int = 0  # 0: no MC dropout rows
    shifts: list[Shift] = field(default_factory=lambda: [shifts.NONE])
    temperature: bool = False
    keep_predictions: bool = False


@dataclass(frozen=True)
class Block:
    """One method's probabilities on one shifted set, for one run (member -1: the ensemble)."""

    method: str
    shift: Shift
    member: int
    probabilities: torch.Tensor  # (n, classes) on the CPU


@dataclass
class Study:
    members: list[ensembles.Member]
    split: str
    source: Path
    labels: torch.Tensor  # (n,) on the CPU
    mc_samples: int
    temperatures: list[float] | None
    methods: list[str]
    shifts: list[Shift]
    scores: dict[tuple[str, Shift], Scores] = field(default_factory=dict)  # single-model methods: mean over runs
    member_scores: dict[tuple[str, Shift], list[Scores]] = field(default_factory=dict)
    predictions: list[Block] = field(default_factory=list)


def run(request: Request, flags: dict[str, tuple[str, Any]], progress: Progress | None = None) -> tuple[Study, Any]:
    """The study `request` asks for, and the device and data it ran on (for evaluation.py's tables).

    Raises DropcliError before any work for a bad request (see `check`), or for Monte Carlo
    dropout estimated to take too long; `progress(done, total, estimated seconds)` hears each
    (run, shift) scored.
    """
    from dropcli import data, runs
    from dropcli.uncertainty import evaluation

    members = ensembles.load(request.targets, flags)
    check(request, members)
    first = members[0]
    device = next(first.model.parameters()).device
    # The data set the runs were trained on (the ensemble check makes it one), never the default.
    directory = data.for_run(first.config.data, runs.data_source(first.checkpoint))
    raw = data.read_raw(directory, first.config.data.name)
    dataset = data.prepare(directory, raw, first.config.data, first.config.seed, device)
    subset = getattr(dataset, request.split)
    steps = len(members) * len(request.shifts)
    estimate = 0.0
    if request.mc_samples:
        estimate = evaluation.check_mc_time(first.model, subset.X, request.mc_samples, first.config.train.precision, steps)
    temperatures = _temperatures(members, directory, raw, device) if request.temperature else None
    study = Study(
        members,
        request.split,
        directory,
        subset.y.cpu(),
        request.mc_samples,
        temperatures,
        _methods(request, len(members)),
        list(request.shifts),
    )
    if progress is not None:
        progress(0, steps, estimate)  # before the work: what it will take
    for number, shift in enumerate(request.shifts):
        tick = _ticker(progress, number * len(members), steps, estimate)
        _score_shift(study, shifts.apply(subset.X, shift), subset.y, shift, request.keep_predictions, tick)
        if progress is not None:
            progress((number + 1) * len(members), steps, estimate)
    return study, (device, dataset)


def _ticker(progress: Progress | None, before: int, steps: int, estimate: float) -> Callable[[int, float], None] | None:
    """tick(member, fraction of its Monte Carlo passes done) as progress in steps, at most ten times a second."""
    if progress is None:
        return None
    last = time.monotonic()

    def tick(member: int, fraction: float) -> None:
        nonlocal last
        if time.monotonic() - last >= 0.1:
            last = time.monotonic()
            progress(before + member + fraction, steps, estimate)

    return tick


def check(request: Request, members: list[ensembles.Member]) -> None:
    """Refuse what the study cannot do for these runs."""
    if len(members) > 1 and request.split != "test":
        raise DropcliError(
            f"--split {request.split}: an ensemble is scored on the test split (each run's validation split differs with its seed)"
        )
    if request.split == "val" and members[0].config.data.val_split == 0:
        raise DropcliError("this run has no val split (data.val_split is 0); use --split test or --split train")
    if request.temperature:
        for member in members:
            if member.config.data.val_split == 0:
                raise DropcliError(
                    f"--temperature fits T on the run's validation split, and {member.checkpoint} has none (data.val_split is 0); "
                    "train with --set data.val_split=0.1, or leave out --temperature"
                )


def _methods(request: Request, runs: int) -> list[str]:
    names = [methods.DETERMINISTIC]
    names += [methods.TEMPERATURE] if request.temperature else []
    names += [methods.MC_DROPOUT] if request.mc_samples else []
    names += [methods.ENSEMBLE] if runs > 1 else []
    names += [methods.ENSEMBLE_MC] if runs > 1 and request.mc_samples else []
    return names


def _temperatures(members, directory, raw, device) -> list[float]:
    from dropcli import data

    temperatures = []
    for member in members:
        # Each run's own validation split: it depends on the run's seed.
        val = data.prepare(directory, raw, member.config.data, member.config.seed, device).val
        temperatures.append(methods.fit_temperature(methods.logits(member.model, val.X, member.config.train.precision), val.y))
    return temperatures


def _score_shift(study: Study, X: torch.Tensor, y: torch.Tensor, shift: Shift, keep: bool, tick=None) -> None:
    sums: dict[str, torch.Tensor] = {}
    for index, member in enumerate(study.members):
        precision = member.config.train.precision
        z = methods.logits(member.model, X, precision)
        outputs = {methods.DETERMINISTIC: methods.scaled(z)}
        if study.temperatures is not None:
            outputs[methods.TEMPERATURE] = methods.scaled(z, study.temperatures[index])
        if study.mc_samples:
            torch.manual_seed(member.config.seed)  # the same masks for every shift: repeatable
            done = functools.partial(tick, index) if tick is not None else None
            outputs[methods.MC_DROPOUT] = methods.mc_probabilities(member.model, X, study.mc_samples, precision, done)
        for method, p in outputs.items():
            _add(study, method, shift, index, p, y, keep)
        for method, ensemble_method in ((methods.DETERMINISTIC, methods.ENSEMBLE), (methods.MC_DROPOUT, methods.ENSEMBLE_MC)):
            if method in outputs:
                sums[ensemble_method] = outputs[method] + sums.get(ensemble_method, 0)
    if len(study.members) > 1:
        for method, total in sums.items():
            _add(study, method, shift, -1, total / len(study.members), y, keep)
    for method in study.methods:
        study.scores[method, shift] = calibration.mean(study.member_scores[method, shift])


def _add(study: Study, method: str, shift: Shift, member: int, p: torch.Tensor, y: torch.Tensor, keep: bool) -> None:
    study.member_scores.setdefault((method, shift), []).append(calibration.score(p, y))
    if keep:
        study.predictions.append(Block(method, shift, member, p.cpu()))


def to_json(study: Study) -> dict[str, Any]:
    """Everything the study measured, as plain JSON values."""
    return {
        "checkpoints": [str(m.checkpoint) for m in study.members],
        "seeds": [m.config.seed for m in study.members],
        "epochs": study.members[0].epoch,
        "data": str(study.source),
        "split": study.split,
        "examples": len(study.labels),
        "mc_samples": study.mc_samples,
        "temperatures": study.temperatures,
        "methods": study.methods,
        "shifts": [{"family": s.family, "value": s.value} for s in study.shifts],
        "results": [
            {
                "method": method,
                "shift": {"family": shift.family, "value": shift.value},
                **_scores_json(study.scores[method, shift]),
                "per_run": [_scores_json(s, bins=False) for s in study.member_scores[method, shift]]
                if len(study.member_scores[method, shift]) > 1
                else None,
            }
            for shift in study.shifts
            for method in study.methods
        ],
    }


def _scores_json(scores: Scores, bins: bool = True) -> dict[str, Any]:
    out = {metric: getattr(scores, metric) for metric in calibration.METRICS}
    out["selective_accuracy"] = {f"{c:g}": value for c, value in scores.selective.items()}
    if bins:
        out["bins"] = [vars(b) for b in scores.bins]
    return out


@dataclass
class Outcome:
    study: Study
    evaluation: Any  # evaluation.Evaluation of the one run on its unshifted split; None otherwise
    written: list[Path]


def evaluate(
    request: Request,
    flags: dict[str, tuple[str, Any]],
    draw: Callable[[Study], list[Path]] | None = None,
    predictions: Path | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """`dropcli evaluate`: the study, the per-class tables of a single unshifted run, and the files
    asked for (the figures `draw` writes, `predictions`). Bad input is refused before anything is
    written; the caller checks the figures' path before it calls."""
    import dataclasses

    from dropcli.uncertainty import evaluation
    from dropcli.uncertainty import predictions as predictions_file

    if predictions is not None:
        predictions_file.check_path(predictions)
    request = dataclasses.replace(request, keep_predictions=predictions is not None)
    result, (_, dataset) = run(request, flags, progress)
    single = None
    if len(result.members) == 1 and request.shifts == [shifts.NONE]:
        member = result.members[0]
        single = evaluation.evaluate_model(member.model, member.config, member.epoch, dataset, request.split)
        if request.mc_samples:
            mc = result.scores[methods.MC_DROPOUT, shifts.NONE]
            single = dataclasses.replace(single, mc_samples=request.mc_samples, mc_loss=mc.nll, mc_accuracy=mc.accuracy)
    written = draw(result) if draw is not None else []
    if predictions is not None:
        predictions_file.write(predictions, result)
        written.append(predictions)
    return Outcome(result, single, written)
