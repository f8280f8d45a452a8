"""Compute that search needs: tune with pruning against random search without it (`make bench-tune`).

On one space and one budget of epochs per trial, on a slice of the real Fashion-MNIST (a
validation split only; small, so that it runs in minutes on a shared 2-core machine):

- random search with no pruner trains N trials to their last epoch (as `sweep --sample` would);
  its best validation accuracy is the target, and the epochs it trained until it first reached
  it are its cost;
- `dropcli tune` (TPE, and a pruner) searches the same space, up to 3N trials; its cost is the
  epochs it trained, pruned trials included, until a finished trial first reached the target.

Each search is repeated with seeds 0..R-1 (`--repeats`; the seed draws the values and
initialises the nets) and the costs are summed. The issue's target: pruning reaches the same
validation accuracy with at most a third of the epochs.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

# A first search's space: wide ranges, as one sets them before knowing where the good values are.
SPACE_TEXTS = ["optim.lr=0.0001:3:log", "model.dropout=0:0.9", "optim.momentum=0,0.5,0.9,0.99", "model.hidden=64,256x256,1024"]


def search(name: str, options: list[str], count: int, args, scratch: Path, seed: int) -> list:
    """Run one search into its own directory and return its Optuna trials, in order."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    directory = scratch / name
    command = [sys.executable, "-m", "dropcli", "tune", "--device", "cpu", "--seed", str(seed), "--trials", str(count)]
    command += [part for text in args.space or SPACE_TEXTS for part in ("--space", text)] + options
    command += ["--set", f"train.epochs={args.epochs}", "--set", f"data.train_limit={args.train_limit}"]
    command += ["--set", "data.val_split=0.3", "--run-dir", str(directory), "-q"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    storage = JournalStorage(JournalFileBackend(str(directory / "study.journal")))
    return optuna.load_study(study_name="default", storage=storage).get_trials(deepcopy=False)


def epochs_to_reach(trials: list, target: float) -> int | None:
    """Epochs trained, trial by trial, until a finished trial's validation accuracy reached `target`."""
    spent = 0
    for trial in trials:
        spent += trial.user_attrs.get("epochs") or 0
        if trial.state.name == "COMPLETE" and trial.value >= target:
            return spent
    return None


def compare(args, scratch: Path, seed: int) -> list[tuple]:
    """One repeat: random search, then tune until it reaches random search's best (or runs out of trials)."""
    random = search(f"random-{seed}", ["--pruner", "none", "--sampler", "random"], args.trials, args, scratch, seed)
    target = max(t.value for t in random if t.state.name == "COMPLETE")
    options = ["--pruner", args.pruner, "--sampler", "tpe"]
    tuned = search(f"pruned-{seed}", options, args.trials * args.pruned_factor, args, scratch, seed)
    rows = []
    for name, trials in ((f"tune: TPE + {args.pruner}", tuned), ("random search, no pruner", random)):
        best = max((t.value for t in trials if t.state.name == "COMPLETE"), default=0.0)
        pruned = sum(t.state.name == "PRUNED" for t in trials)
        total = sum(t.user_attrs.get("epochs") or 0 for t in trials)
        rows.append((seed, name, len(trials), best, target, pruned, total, epochs_to_reach(trials, target)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--trials", type=int, default=24, help="random search's trials; tune may take --pruned-factor times as many"
    )
    parser.add_argument("--pruned-factor", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--train-limit", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pruner", default="asha", help="tune's pruner: asha, hyperband or median")
    parser.add_argument("--space", action="append", metavar="KEY=...", help="instead of the default space; repeatable")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [row for seed in range(args.repeats) for row in compare(args, Path(scratch), seed)]
    title = (
        f"up to {args.epochs} epochs a trial, Fashion-MNIST train_limit {args.train_limit} (val_split 0.3), "
        f"{os.cpu_count()} cores; target: random search's best"
    )
    table = Table(title=title, header_style="bold")
    for column in ("seed", "search", "trials", "best val acc", "target", "pruned", "epochs in all", "epochs to the target"):
        table.add_column(column, justify="left" if column == "search" else "right")
    for seed, name, count, best, target, pruned, total, reached in rows:
        shown = "not reached" if reached is None else str(reached)
        table.add_row(str(seed), name, str(count), f"{best:.4f}", f"{target:.4f}", str(pruned), str(total), shown)
    console = Console(width=160)
    console.print(table)
    # A search that never reached the target is charged every epoch it trained (and fails the target).
    tuned = [row[7] if row[7] is not None else row[6] for row in rows if row[1].startswith("tune")]
    random = [row[7] for row in rows if not row[1].startswith("tune")]
    ratio = sum(tuned) / sum(random)
    verdict = "met" if ratio <= 1 / 3 and None not in [row[7] for row in rows] else "NOT met"
    console.print(
        f"over {args.repeats} seeds, tune reached random search's best with {sum(tuned)} epochs, random search with "
        f"{sum(random)}: {ratio:.2f} of them (target: at most 1/3): {verdict}"
    )


if __name__ == "__main__":
    main()
