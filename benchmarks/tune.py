"""Search strategies replayed on a table of learning curves (`make bench-tune`).

The table (benchmarks/tune-curves/curves.csv; how it was made: benchmarks/tune-curves/plan.yaml)
holds a few hundred random configurations of a space close to the best-any search's, each trained
to its last epoch once, with its validation accuracy after every epoch. A strategy (a sampler and
a pruner, through Optuna itself and dropcli's own pruner and sampler settings) searches that space:
each value it asks for is answered by the nearest configuration of the table (Gower's distance over
all keys, the learning rate on a log scale), whose curve is reported epoch by
epoch to the pruner exactly as tune's trials report theirs, until the pruner stops it or its last
epoch ends it. Each strategy runs with --seeds different seeds within a budget of epochs.

Printed: the anytime table (the best final validation accuracy found against the epochs spent,
median and 90 % band over seeds) and, for each strategy, the epochs it needs to reach a fixed
target (the 95th percentile of the table's final accuracies), as a ratio to random search
without pruning, with a bootstrap interval over the seeds. --figure draws the anytime curves.
"""

import argparse
import concurrent.futures
import csv
import math
import random
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy
import optuna

from dropcli.config import load_config
from dropcli.experiments import tune_pruning, tune_sampling
from dropcli.experiments.tune_pruning import Pruning

HERE = Path(__file__).parent
TABLE = HERE / "tune-curves" / "curves.csv"
PLAN = HERE / "tune-curves" / "plan.yaml"
FLOATS = ("model.dropout_input", "model.dropout_1", "model.dropout_2", "optim.lr")
CATEGORIES = (
    "model.hidden",
    "optim.momentum_final",
    "optim.weight_decay",
    "optim.schedule",
    "data.augment.flip",
    "data.augment.shift",
)


@dataclass(frozen=True)
class Strategy:
    name: str
    sampler: str  # random, tpe (dropcli's: multivariate, start-up scaled to the pruner), tpe-optuna (Optuna's defaults)
    pruner: str
    grace: float | None  # None: dropcli's default; 1: judged from the first epoch (tune before grace existed)
    reduction: int = 3  # asha and hyperband (tune's --reduction)
    startup: int | None = None  # TPE's random start-up trials; None: as tune chooses them


STRATEGIES = (
    Strategy("random, no pruner", "random", "none", None),
    Strategy("random + asha, grace", "random", "asha", None),
    Strategy("random + asha, no grace", "random", "asha", 1),
    Strategy("tpe, no pruner", "tpe", "none", None),
    Strategy("tpe + median, grace", "tpe", "median", None),
    Strategy("tpe + median, no grace", "tpe", "median", 1),
    Strategy("tpe + asha, grace", "tpe", "asha", None),
    Strategy("tpe + asha, no grace", "tpe", "asha", 1),
    Strategy("tpe + hyperband, grace", "tpe", "hyperband", None),
    Strategy("tpe + hyperband, no grace", "tpe", "hyperband", 1),
    Strategy("optuna's tpe + asha, no grace (tune before)", "tpe-optuna", "asha", 1),
)


DEFAULT = "tpe + asha, grace"  # what dropcli tune does without --sampler and --pruner
BANDED = ("random, no pruner", DEFAULT)


@dataclass(frozen=True)
class Table:
    rows: list[dict]
    curves: list[list[float | None]]  # validation accuracy after epoch 1..E; None after a divergence
    epochs: int
    space: dict  # key -> ("float", low, high, log) or ("categorical", choices)
    floats: numpy.ndarray = None  # (rows, real keys) scaled to [0, 1], for nearest()
    categories: numpy.ndarray = None  # (rows, categorical keys) as text


def read_table(path: Path) -> Table:
    with open(path) as handle:
        records = list(csv.DictReader(handle))
    epochs = sum(1 for key in records[0] if key.startswith("val_"))
    rows = [{**{k: float(r[k]) for k in FLOATS}, **{k: r[k] for k in CATEGORIES}} for r in records]
    curves = [[float(r[f"val_{e}"]) if r[f"val_{e}"] else None for e in range(1, epochs + 1)] for r in records]
    space = {k: ("float", min(r[k] for r in rows), max(r[k] for r in rows), k == "optim.lr") for k in FLOATS}
    space.update({k: ("categorical", sorted({r[k] for r in rows})) for k in CATEGORIES})
    table = Table(rows, curves, epochs, space)
    floats = numpy.array([[_scaled(table, k, r[k]) for k in FLOATS] for r in rows])
    categories = numpy.array([[r[k] for k in CATEGORIES] for r in rows])
    return Table(rows, curves, epochs, space, floats, categories)


def nearest(table: Table, params: dict) -> int:
    """The table's configuration closest to the values asked for, by Gower's distance: every key
    adds 0 to 1, a categorical one 1 where it differs, a real one the difference of the values
    scaled to [0, 1] (the learning rate on a log scale). Matching the categorical keys first would
    leave the real ones (the learning rate, the rates) no say: the space has 432 categorical
    combinations, about one row of the table each."""
    mismatches = (table.categories != numpy.array([str(params[key]) for key in CATEGORIES])).sum(axis=1)
    point = numpy.array([_scaled(table, key, params[key]) for key in FLOATS])
    distance = mismatches + numpy.abs(table.floats - point).sum(axis=1)
    return int(numpy.argmin(distance))


def _scaled(table: Table, key: str, value: float) -> float:
    _, low, high, log = table.space[key]
    if log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def ask(trial, table: Table) -> dict:
    params = {}
    for key, kind in table.space.items():
        if kind[0] == "float":
            params[key] = trial.suggest_float(key, kind[1], kind[2], log=kind[3])
        else:
            params[key] = trial.suggest_categorical(key, kind[1])
    return params


def sampler_of(strategy: Strategy, seed: int, pruning: Pruning, config, table: Table, trials: int):
    if strategy.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy.sampler == "tpe-optuna":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    startup = strategy.startup
    if startup is None:
        startup = tune_sampling.startup_trials(strategy.pruner, pruning, config, table.epochs, trials)
    return tune_sampling.tpe(optuna, seed, startup)


def replay(table: Table, strategy: Strategy, seed: int, budget: int, config) -> list[tuple[int, float]]:
    """One search within `budget` epochs: (epochs spent, best final val acc so far) after each trial."""
    pruning = Pruning(grace=strategy.grace, reduction=strategy.reduction)
    pruner = tune_pruning.pruner(optuna, strategy.pruner, pruning, config, table.epochs)
    expected_trials = budget // table.epochs * 3
    sampler = sampler_of(strategy, seed, pruning, config, table, expected_trials)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner, study_name=f"replay-{seed}")
    spent, best, history = 0, 0.0, []
    while spent < budget:
        trial = study.ask()
        curve = table.curves[nearest(table, ask(trial, table))]
        state, value = optuna.trial.TrialState.COMPLETE, None
        for epoch, accuracy in enumerate(curve, start=1):
            spent += 1
            if accuracy is None:  # diverged: failed, as tune records it
                state = optuna.trial.TrialState.FAIL
                break
            trial.report(accuracy, epoch)
            if epoch < table.epochs and trial.should_prune():  # never at the last epoch, as tune
                state = optuna.trial.TrialState.PRUNED
                break
            value = accuracy
        study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
        if state == optuna.trial.TrialState.COMPLETE:
            best = max(best, value)
        history.append((spent, best))
    return history


def best_at(history: list[tuple[int, float]], epochs: int) -> float:
    found = 0.0
    for spent, best in history:
        if spent > epochs:
            break
        found = best
    return found


def epochs_to(history: list[tuple[int, float]], target: float) -> float:
    """Epochs spent when a complete trial first reached `target`; infinity within the budget if never."""
    return next((spent for spent, best in history if best >= target), math.inf)


def bootstrap_ratio(strategy: list[float], baseline: list[float], draws: int, rng: random.Random) -> tuple[float, float, float]:
    """Median epochs to the target, strategy over baseline, and its 90 % bootstrap interval over seeds."""
    ratio = statistics.median(strategy) / statistics.median(baseline)
    ratios = sorted(
        statistics.median(rng.choices(strategy, k=len(strategy))) / statistics.median(rng.choices(baseline, k=len(baseline)))
        for _ in range(draws)
    )
    return ratio, ratios[int(0.05 * draws)], ratios[int(0.95 * draws) - 1]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--budget", type=int, default=40, help="the budget, in full trainings' epochs (default 40 trainings)")
    parser.add_argument("--only", nargs="*", help="names of strategies to run (default: all)")
    parser.add_argument("--figure", type=Path, help="draw the anytime curves (PNG)")
    parser.add_argument("--jobs", type=int, default=2, help="processes replaying at once")
    parser.add_argument("--reduction", type=int, default=3, help="asha's and hyperband's reduction factor (default 3, as tune)")
    parser.add_argument("--startup", type=int, help="TPE's random start-up trials (default: as tune chooses them)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    table = read_table(args.table)
    config = load_config(base=_plan_config())
    finals = [c[-1] for c in table.curves if c[-1] is not None]
    target = quantile(finals, 0.95)
    budget = args.budget * table.epochs
    strategies = [
        replace(s, reduction=args.reduction, startup=args.startup) for s in STRATEGIES if not args.only or s.name in args.only
    ]
    print(
        f"table: {len(table.rows)} curves of {table.epochs} epochs ({args.table}); target: val acc {target:.4f} "
        f"(95th percentile of the final ones; best {max(finals):.4f}); budget {budget} epochs; {args.seeds} seeds each"
    )
    print(f"default grace here: epoch {tune_pruning.grace_epochs(Pruning(), config, table.epochs)}")
    started = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        futures = {
            s.name: [pool.submit(replay, table, s, seed, budget, config) for seed in range(args.seeds)] for s in strategies
        }
        histories = {name: [future.result() for future in runs] for name, runs in futures.items()}
    print(f"replayed in {time.perf_counter() - started:.0f} s with {args.jobs} processes", file=sys.stderr)
    report(histories, target, budget, table.epochs)
    if args.figure:
        draw(histories, budget, target, args.figure)


def _plan_config() -> dict:
    import yaml

    return yaml.safe_load(PLAN.read_text())["config"]


def report(histories: dict, target: float, budget: int, epochs: int) -> None:
    marks = [budget * k // 8 for k in (1, 2, 4, 8)]
    print("\nbest final val acc found after N epochs: median [5th, 95th percentile] over seeds")
    print(f"{'strategy':46}" + "".join(f"{m:>24}" for m in marks))
    for name, runs in histories.items():
        cells = []
        for mark in marks:
            found = [best_at(h, mark) for h in runs]
            cells.append(f"{statistics.median(found):.4f} [{quantile(found, 0.05):.4f}, {quantile(found, 0.95):.4f}]")
        print(f"{name:46}" + "".join(f"{c:>24}" for c in cells))
    baseline = [epochs_to(h, target) for h in histories["random, no pruner"]] if "random, no pruner" in histories else None
    print(
        f"\nepochs to reach val acc {target:.4f}: median, share of seeds that reached it, ratio to random search without pruning [90 % bootstrap]"
    )
    rng = random.Random(0)
    for name, runs in histories.items():
        needed = [epochs_to(h, target) for h in runs]
        reached = sum(math.isfinite(n) for n in needed) / len(needed)
        median = statistics.median(needed)
        line = f"{name:46} {median:>8}  reached {reached:4.0%}"
        if baseline is not None and math.isfinite(statistics.median(baseline)):
            ratio, low, high = bootstrap_ratio(needed, baseline, 2000, rng)
            line += f"  ratio {ratio:.2f} [{low:.2f}, {high:.2f}]"
            if name == DEFAULT:
                verdict = ratio <= 0.5 and high < 1
                goal = f"goal for the default ({DEFAULT}): ratio <= 0.5 with the interval's upper end below 1: {'met' if verdict else 'NOT met'}"
        print(line)
    if baseline is not None and DEFAULT in histories and math.isfinite(statistics.median(baseline)):
        print(goal)


def draw(histories: dict, budget: int, target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = list(range(0, budget + 1, max(1, budget // 100)))
    figure, axes = plt.subplots(figsize=(11, 5.5))
    colours = plt.get_cmap("tab20").colors[::2] + ("black",)  # eleven strategies, eleven colours
    for (name, runs), colour in zip(histories.items(), colours):
        found = [[best_at(h, x) for h in runs] for x in grid]
        median = [statistics.median(f) for f in found]
        line = axes.plot(grid, median, label=name, color=colour, linestyle="--" if "no grace" in name else "-")[0]
        if name in BANDED:  # bands for two only: eleven would hide one another
            low, high = [quantile(f, 0.05) for f in found], [quantile(f, 0.95) for f in found]
            axes.fill_between(grid, low, high, alpha=0.12, color=line.get_color())
    axes.axhline(target, color="black", linewidth=0.8, linestyle=":", label=f"target {target:.4f}")
    bottom = min(statistics.median([best_at(h, budget // 8) for h in runs]) for runs in histories.values())
    axes.set_ylim(bottom - 0.01, target + 0.015)
    axes.set_xlabel("epochs spent")
    axes.set_ylabel("best final validation accuracy found")
    axes.set_title(
        "Strategies replayed on the learning-curve table: median over seeds (5-95 % band: random, default)", fontsize=10
    )
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # beside the curves, not over them
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"figure saved to {path}")


if __name__ == "__main__":
    main()
