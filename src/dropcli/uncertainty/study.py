"""`evaluate`'s uncertainty study: each method (lineup.py, methods.py) on each shifted test set
(shifts.py), and optionally against another data set's images (ood.py).

One run, or several that differ only in seed (ensembles.py): single-model rows are the mean over
the runs, ensemble rows the mean over disjoint ensembles of M runs. Every method's probabilities
are scored on the device (calibration.py), with bootstrap intervals over the test examples
(bootstrap.py) and the spread over runs; when asked, they are kept for --predictions. This
module returns data; the CLI prints and draws it.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dropcli.errors import DropcliError
from dropcli.runtime import count_text
from dropcli.uncertainty import bootstrap, calibration, ensembles, methods, shifts
from dropcli.uncertainty import lineup as lineup_module
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
    mc_sweep: tuple[int, ...] = ()  # MC dropout at each K too, rows named by K
    ensemble_sizes: tuple[int, ...] = ()  # ensembles of each size M, disjoint groups of the runs
    last_layer: bool = False  # also MC dropout with only the last noise layer on
    bootstrap: int = 0  # replicates for the intervals; 0: none
    level: float = 0.95  # the intervals' coverage
    ood: str | tuple[str, ...] | None = None  # out-of-distribution sets: directories, data set names, heldout, noise, ...


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
    scores: dict[tuple[str, Shift], Scores] = field(default_factory=dict)  # mean over runs (or ensembles)
    member_scores: dict[tuple[str, Shift], list[Scores]] = field(default_factory=dict)  # per run (or ensemble)
    predictions: list[Block] = field(default_factory=list)
    passes: dict[str, int] = field(default_factory=dict)  # forward passes per example of each method
    # compute.py: multiply-adds and measured seconds per test example, runs trained, per method
    multiply_adds: dict[str, int] = field(default_factory=dict)
    seconds_per_example: dict[str, float] = field(default_factory=dict)
    runs_trained: dict[str, int] = field(default_factory=dict)
    level: float = 0.95
    replicates: int = 0
    # (method, shift) -> per metric (calibration.METRICS order): bootstrap interval; std over runs or ensembles
    intervals: dict[tuple[str, Shift], list[bootstrap.Interval]] = field(default_factory=dict)
    spread: dict[tuple[str, Shift], list[float]] = field(default_factory=dict)
    # (method, shift) -> (replicates, metrics): paired across methods and shifts (not in --json)
    bootstrap_values: dict[tuple[str, Shift], torch.Tensor] = field(default_factory=dict)
    # (method, shift) -> per calibration.THRESHOLDS: interval of the accuracy above it (None: no replicate keeps any)
    threshold_intervals: dict[tuple[str, Shift], list[bootstrap.Interval | None]] = field(default_factory=dict)
    # (method, shift) -> per calibration.COVERAGES: interval of the selective accuracy
    selective_intervals: dict[tuple[str, Shift], list[bootstrap.Interval]] = field(default_factory=dict)
    # (method, shift) -> (units, replicates, 3): each run's (or ensemble's) values, for seeds.py (not in --json)
    unit_values: dict[tuple[str, Shift], torch.Tensor] = field(default_factory=dict)
    ood_sources: list[str] = field(default_factory=list)  # each out-of-distribution set's label, in order
    ood: dict[tuple[str, str, str], Any] = field(default_factory=dict)  # (set, method, score) -> detection.Detection
    notes: list[str] = field(default_factory=list)
    fitted: dict | None = None  # lineup.fit_temperatures' temperatures (not in --json)


def run(request: Request, flags: dict[str, tuple[str, Any]], progress: Progress | None = None, fitted=None) -> tuple[Study, Any]:
    """The study `request` asks for, and the device and data it ran on (for evaluation.py's tables);
    `fitted`, an earlier study's `fitted` on the same runs, is used instead of fitting again.
    Raises DropcliError before any work for a bad request (see `check`), or for Monte Carlo
    dropout estimated to take too long; `progress(done, total, estimated seconds)` hears each
    (run, shift) scored.
    """
    from dropcli import data, runs
    from dropcli.uncertainty import compute, detection, evaluation
    from dropcli.uncertainty import ood as ood_module

    members = ensembles.load(request.targets, flags)
    check(request, members)
    sources = ood_sources(request)
    ood_module.check_sources(sources, members[0].config.data.classes)
    # Another data set's files are read (and refused) before any work.
    read = {s: ood_module.read_images(s) for s in sources if s != ood_module.HELD_OUT and s not in ood_module.SYNTHETIC}
    first = members[0]
    device = next(first.model.parameters()).device
    # The data set the runs were trained on (the ensemble check makes it one), never the default.
    directory = data.for_run(first.config.data, runs.data_source(first.checkpoint))
    raw = data.read_raw(directory, first.config.data.name)
    dataset = data.prepare(directory, raw, first.config.data, first.config.seed, device)
    subset = getattr(dataset, request.split)
    vals = (
        [data.prepare(directory, raw, m.config.data, m.config.seed, device).val for m in members] if request.temperature else []
    )
    study, lineup = _plan(request, members, directory, subset.y.cpu(), vals)
    study.multiply_adds, study.runs_trained = compute.multiply_adds(lineup, first.model), compute.runs_trained(lineup)
    steps = len(members) * len(request.shifts)
    estimate = 0.0
    if lineup.mc_samples:
        passes = lineup.mc_samples[-1] * (2 if lineup.last_layer else 1)
        fitting = 0 if fitted else lineup.mc_samples[-1] * sum(len(val.y) for val in vals)  # fit_temperatures' MC passes
        estimate = evaluation.check_mc_time(first.model, subset.X, passes, first.config.train.precision, steps, fitting)
    if progress is not None:
        progress(0, steps, estimate)  # before the work: what it will take
    if request.temperature:
        study.fitted = fitted or lineup_module.fit_temperatures(lineup, members, vals, _shared(vals))
        study.temperatures = [t["temperature"] for t in study.fitted["members"]]
    weights = bootstrap.weights(len(subset.y), request.bootstrap, device) if request.bootstrap else None
    for number, shift in enumerate(request.shifts):
        tick = _ticker(progress, number * len(members), steps, estimate)
        outputs, per_member = lineup_module.all_outputs(lineup, members, shifts.apply(subset.X, shift), study.fitted, tick)
        _score_shift(study, outputs, subset.y, shift, weights)
        if request.keep_predictions:
            _keep(study, outputs, shift)
        if progress is not None:
            progress((number + 1) * len(members), steps, estimate)
    study.seconds_per_example = compute.seconds_per_example(lineup, members, subset.X)
    if sources:
        inside, _ = lineup_module.all_outputs(lineup, members, subset.X, study.fitted)
        for source in sources:
            label, images = (
                (str(read[source][0]), read[source][1].to(device))
                if source in read
                else ood_module.outside_images(source, raw, first.config.data, subset.X)
            )
            study.ood_sources.append(label)
            detection.detect(study, lineup, inside, label, images, study.fitted, request.bootstrap)
    return study, (device, dataset)


def ood_sources(request: Request) -> tuple[str, ...]:
    """The out-of-distribution sets `request.ood` names, in order (one name or several)."""
    return (request.ood,) if isinstance(request.ood, str) else tuple(request.ood or ())


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


def _plan(request: Request, members, directory: Path, labels: torch.Tensor, vals) -> tuple[Study, lineup_module.Lineup]:
    noisy = bool(methods.stochastic_modules(members[0].model))
    ks = [*([request.mc_samples] if request.mc_samples else []), *request.mc_sweep] if noisy else []
    sizes = [*request.ensemble_sizes] if request.ensemble_sizes else ([len(members)] if len(members) > 1 else [])
    lineup = lineup_module.plan(
        ks,
        sizes,
        request.temperature,
        request.last_layer and noisy,
        bool(request.mc_sweep),
        bool(request.ensemble_sizes),
        _shared(vals),
    )
    study = Study(members, request.split, directory, labels, max(ks, default=0), None, lineup.names, list(request.shifts))
    study.passes, study.level, study.replicates = lineup.passes, request.level, request.bootstrap
    if not noisy and (request.mc_samples or request.mc_sweep or request.last_layer):
        study.notes.append(f"no MC dropout rows: {members[0].config.model.kind} nets have no noise layer to leave on")
    if request.temperature and len(members) > 1 and not _shared(vals):
        study.notes.append("no temperature-scaled ensembles: the runs hold out different validation splits (set data.val_seed)")
    for m in request.ensemble_sizes:  # sizes asked for: the default ensemble is all the runs
        count, left = divmod(len(members), m)
        if count < 3 or left:
            spare = (
                f"; the last {left} runs are in none, so these rows and the single-model rows average different runs"
                if left
                else ""
            )
            study.notes.append(f"ensembles of {m}: {count} disjoint of {len(members)} runs{' (no spread)' * (count == 1)}{spare}")
    if len(members) > 1 and request.split == "test" and not _shared(vals) and vals:
        study.notes.append("the runs trained on different subsets (each held out its own validation split)")
    study.notes += _left_out_of_ensembles(lineup, len(members))
    return study, lineup


def _left_out_of_ensembles(lineup: lineup_module.Lineup, runs: int) -> list[str]:
    """Where M does not divide the runs, the last runs are in no ensemble of M, while the
    single-model rows average them all: said, so the rows are read as what they are."""
    notes = []
    for m in lineup.ensemble_sizes:
        left = runs % m
        if left:
            name = lineup_module.ensemble_name(lineup, m)
            notes.append(
                f"{name}: {count_text(runs // m, 'disjoint ensemble')} of {m} runs, so the last "
                f"{count_text(left, 'run')} of {runs} {'is' if left == 1 else 'are'} in none"
            )
    return notes


def _shared(vals) -> bool:
    return bool(vals) and all(torch.equal(v.y, vals[0].y) and torch.equal(v.X, vals[0].X) for v in vals[1:])


def replicates_needed(level: float) -> int:
    """The fewest replicates whose percentile interval at `level` has a replicate beyond each
    end: (1 - level) / 2 of them at least one. Fewer, and an end is the extreme replicate (one
    replicate gives a zero-width interval that need not hold its estimate)."""
    return math.ceil(2 / (1 - level) - 1e-9)


def check(request: Request, members: list[ensembles.Member]) -> None:
    """Refuse what the study cannot do for these runs."""
    if request.bootstrap and request.bootstrap < replicates_needed(request.level):
        raise DropcliError(
            f"--bootstrap {request.bootstrap}: a {request.level:.0%} interval needs at least {replicates_needed(request.level)} "
            f"resamples (one beyond each end), e.g. --bootstrap 1000; or --bootstrap 0 for no intervals"
        )
    if len(members) > 1 and request.split != "test":
        raise DropcliError(
            f"--split {request.split}: an ensemble is scored on the test split (each run's validation split differs with its seed)"
        )
    if request.split == "val" and members[0].config.data.val_split == 0:
        raise DropcliError("this run has no val split (data.val_split is 0); use --split test or --split train")
    if request.temperature and request.split == "val":
        raise DropcliError(
            "--temperature fits T on the validation split, so --split val would score T on the examples it was fitted to; "
            "use --split test, or leave out --temperature"
        )
    if request.temperature:
        for member in members:
            if member.config.data.val_split == 0:
                raise DropcliError(
                    f"--temperature fits T on the run's validation split, and {member.checkpoint} has none (data.val_split is 0); "
                    "train with --set data.val_split=0.1, or leave out --temperature"
                )
    too_big = [m for m in request.ensemble_sizes if m > len(members)]
    if too_big:
        raise DropcliError(
            f"--ensemble-sizes {too_big[0]}: only {len(members)} runs were given; name at least {too_big[0]} runs, or a smaller size"
        )


def _score_shift(study: Study, outputs, y: torch.Tensor, shift: Shift, weights: torch.Tensor | None) -> None:
    for method in study.methods:
        parts = outputs[method]
        scored = [calibration.score(p, y) for p, _ in parts]
        study.member_scores[method, shift] = scored
        study.scores[method, shift] = calibration.mean(scored)
        if len(scored) > 1:
            values = torch.tensor([[getattr(s, metric) for metric in calibration.METRICS] for s in scored], dtype=torch.float64)
            study.spread[method, shift] = values.std(dim=0).tolist()
        if weights is not None:
            examples = [bootstrap.per_example(p, y) for p, _ in parts]
            values = bootstrap.replicates(examples, weights)
            study.unit_values[method, shift] = bootstrap.unit_values(examples, weights)
            study.bootstrap_values[method, shift] = values.cpu()
            study.intervals[method, shift] = bootstrap.intervals(values, study.level)
            above = bootstrap.threshold_accuracies(examples, weights)
            study.threshold_intervals[method, shift] = bootstrap.nan_intervals(above, study.level)
            selective = bootstrap.selective_accuracies(examples, weights)
            study.selective_intervals[method, shift] = bootstrap.intervals(selective, study.level)


def _keep(study: Study, outputs, shift: Shift) -> None:
    for method in study.methods:
        # Single-model rows: one block per run; an ensemble row: its first ensemble, as run -1.
        single = not method.startswith(methods.ENSEMBLE)
        for index, (p, _) in enumerate(outputs[method] if single else outputs[method][:1]):
            study.predictions.append(Block(method, shift, index if single else -1, p.cpu()))


def to_json(study: Study) -> dict[str, Any]:
    """Everything the study measured, as plain JSON values."""
    from dropcli.uncertainty import compute, detection

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
        "forward_passes": study.passes,
        "compute": {
            "multiply_adds_per_example": study.multiply_adds,
            "seconds_per_example": study.seconds_per_example,
            "runs_trained": study.runs_trained,
            "training": compute.training(study.members),
        },
        "bootstrap": {"replicates": study.replicates, "level": study.level} if study.replicates else None,
        "notes": study.notes,
        "shifts": [{"family": s.family, "value": s.value} for s in study.shifts],
        "results": [
            {
                "method": method,
                "forward_passes": study.passes[method],
                "multiply_adds": study.multiply_adds.get(method),
                "shift": {"family": shift.family, "value": shift.value},
                **_scores_json(study.scores[method, shift]),
                "interval": _by_metric([[i.low, i.high] for i in study.intervals[method, shift]])
                if (method, shift) in study.intervals
                else None,
                "spread": _by_metric(study.spread[method, shift]) if (method, shift) in study.spread else None,
                "per_run": [_scores_json(s, bins=False) for s in study.member_scores[method, shift]]
                if len(study.member_scores[method, shift]) > 1
                else None,
            }
            for shift in study.shifts
            for method in study.methods
        ],
        "ood": {
            "data": study.ood_sources,
            "results": [
                {"data": source, "method": method, "score": score, **detection.to_json(d)}
                for (source, method, score), d in study.ood.items()
            ],
        }
        if study.ood_sources
        else None,
    }


def _by_metric(values: list) -> dict[str, Any]:
    return dict(zip(calibration.METRICS, values))


def _scores_json(scores: Scores, bins: bool = True) -> dict[str, Any]:
    out = {metric: getattr(scores, metric) for metric in calibration.METRICS}
    out["selective_accuracy"] = {f"{c:g}": value for c, value in scores.selective.items()}
    out["accuracy_above_confidence"] = {f"{t:g}": {"accuracy": a, "fraction": f} for t, (a, f) in scores.thresholds.items()}
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
    predictions: Path | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """`dropcli evaluate`: the study, the per-class tables of a single unshifted run, and the
    predictions file asked for (the CLI draws the figures). Bad input is refused before anything is written."""
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
        name = f"{methods.MC_DROPOUT} K={request.mc_samples}" if request.mc_sweep else methods.MC_DROPOUT
        if request.mc_samples and (name, shifts.NONE) in result.scores:
            mc = result.scores[name, shifts.NONE]
            single = dataclasses.replace(single, mc_samples=request.mc_samples, mc_loss=mc.nll, mc_accuracy=mc.accuracy)
    written = []
    if predictions is not None:
        predictions_file.write(predictions, result)
        written.append(predictions)
    return Outcome(result, single, written)
