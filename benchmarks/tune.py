"""Compute that search needs: tune with pruning against random search without it (`make bench-tune`).

Both search the same space with the same budget of trials on a slice of the real Fashion-MNIST
(validation split only): `dropcli tune` with its TPE sampler and ASHA pruner, and random search
with no pruner (each trial trained to its last epoch, as `sweep --sample` does). Compute is
counted in epochs trained. For each, the table gives the best validation accuracy, the epochs in
all, and the epochs trained until the best so far first reached the target: the lower of the
two bests, so both reach it. The issue's target: pruning reaches it with at most a third of the
epochs of random search.
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
    "model.hidden=64,256x256,512x512",
]


def search(name: str, options: list[str], args, scratch: Path) -> list:
    """Run one search into its own directory and return its Optuna trials, in order."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    directory = scratch / name
    command = [sys.executable, "-m", "dropcli", "tune", "--device", "cpu", "--trials", str(args.trials), *SPACE, *options]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train-limit", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        searches = {
            "tune: TPE + ASHA pruner": search("pruned", ["--pruner", "asha", "--sampler", "tpe"], args, Path(scratch)),
            "random search, no pruner": search("random", ["--pruner", "none", "--sampler", "random"], args, Path(scratch)),
        }
    bests = {name: max((t.value for t in trials if t.state.name == "COMPLETE"), default=0.0) for name, trials in searches.items()}
    target = min(bests.values())
    reached = {name: epochs_to_reach(trials, target) for name, trials in searches.items()}
    title = (
        f"{args.trials} trials of up to {args.epochs} epochs, Fashion-MNIST train_limit {args.train_limit} (val_split 0.2), "
        f"{os.cpu_count()} cores; target: val acc {target:.4f}"
    )
    table = Table(title=title, header_style="bold")
    for column in ("search", "best val acc", "pruned", "epochs in all", "epochs to the target"):
        table.add_column(column, justify="left" if column == "search" else "right")
    for name, trials in searches.items():
        pruned = sum(t.state.name == "PRUNED" for t in trials)
        total = sum(t.user_attrs.get("epochs") or 0 for t in trials)
        table.add_row(name, f"{bests[name]:.4f}", str(pruned), str(total), str(reached[name]))
    console = Console(width=140)
    console.print(table)
    pruned_epochs, random_epochs = reached.values()
    ratio = pruned_epochs / random_epochs
    verdict = "met" if ratio <= 1 / 3 else "NOT met"
    console.print(f"pruning reached the target with {ratio:.2f} of random search's epochs (target: at most 1/3): {verdict}")


if __name__ == "__main__":
    main()
