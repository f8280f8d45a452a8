"""Compute that search needs: tune with pruning against random search without it (`make bench-tune`).

Both search the same space with the same budget of trials on a slice of the real Fashion-MNIST
(validation split only; small, so that it runs in minutes on a shared 2-core machine): `dropcli tune` with its TPE sampler and ASHA pruner, and random search
with no pruner (each trial trained to its last epoch, as `sweep --sample` does). Compute is
counted in epochs trained. For each, the table gives the best validation accuracy, the epochs in
all, and the epochs trained until the best so far first reached the target: the lower of the
two bests, so both reach it. The issue's target: pruning reaches it with at most a third of the
epochs of random search. `--repeats R` runs both searches R times with seeds 0..R-1 (the seed
draws the values and initialises the nets) and compares the sums.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

SPACE = [
    "--space",
    "optim.lr=0.003:1:log",
    "--space",
    "model.dropout=0:0.8",
    "--space",
    "optim.momentum=0,0.5,0.9",
    "--space",
    "model.hidden=64,128x128,256x256",
]


def search(name: str, options: list[str], args, scratch: Path, seed: int) -> list:
    """Run one search into its own directory and return its Optuna trials, in order."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    directory = scratch / name
    command = [sys.executable, "-m", "dropcli", "tune", "--device", "cpu", "--seed", str(seed), "--trials", str(args.trials)]
    command += [*SPACE, *options]
    command += ["--set", f"train.epochs={args.epochs}", "--set", f"data.train_limit={args.train_limit}"]
    command += ["--set", "data.val_split=0.2", "--run-dir", str(directory), "-q"]
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
    """One repeat: both searches with this seed; a row per search and the epochs each took to the common target."""
    searches = {
        "tune: TPE + ASHA pruner": search(f"pruned-{seed}", ["--pruner", "asha", "--sampler", "tpe"], args, scratch, seed),
        "random search, no pruner": search(f"random-{seed}", ["--pruner", "none", "--sampler", "random"], args, scratch, seed),
    }
    bests = {name: max((t.value for t in trials if t.state.name == "COMPLETE"), default=0.0) for name, trials in searches.items()}
    target = min(bests.values())
    rows = []
    for name, trials in searches.items():
        pruned = sum(t.state.name == "PRUNED" for t in trials)
        total = sum(t.user_attrs.get("epochs") or 0 for t in trials)
        rows.append((seed, name, bests[name], target, pruned, total, epochs_to_reach(trials, target)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-limit", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [row for seed in range(args.repeats) for row in compare(args, Path(scratch), seed)]
    title = (
        f"{args.trials} trials of up to {args.epochs} epochs a search, Fashion-MNIST train_limit {args.train_limit} "
        f"(val_split 0.2), {os.cpu_count()} cores"
    )
    table = Table(title=title, header_style="bold")
    for column in ("seed", "search", "best val acc", "target", "pruned", "epochs in all", "epochs to the target"):
        table.add_column(column, justify="left" if column == "search" else "right")
    for seed, name, best, target, pruned, total, reached in rows:
        table.add_row(str(seed), name, f"{best:.4f}", f"{target:.4f}", str(pruned), str(total), str(reached))
    console = Console(width=140)
    console.print(table)
    pruned_epochs = sum(row[6] for row in rows if row[1].startswith("tune"))
    random_epochs = sum(row[6] for row in rows if not row[1].startswith("tune"))
    ratio = pruned_epochs / random_epochs
    verdict = "met" if ratio <= 1 / 3 else "NOT met"
    console.print(
        f"over {args.repeats} seeds, pruning reached each target with {pruned_epochs} epochs, random search with "
        f"{random_epochs}: {ratio:.2f} of them (target: at most 1/3): {verdict}"
    )


if __name__ == "__main__":
    main()
