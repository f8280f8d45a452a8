"""What tune shows as it goes: the trials bar left in its final state, and a pruned trial's line."""

import io
from pathlib import Path

from rich.console import Console

from dropcli.cli.display.tune_view import TuneView
from dropcli.config import load_config
from dropcli.experiments.tune_search import Progress
from dropcli.training.records import RunResult


def terminal(width: int = 100) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


def last_frame(console: Console) -> str:
    """What the terminal shows at the end: the text after the live display's last redraw."""
    return console.file.getvalue().rsplit("\x1b[2K", 1)[-1]


def test_the_trials_bar_ends_full_when_the_study_ends():
    console = terminal()
    with TuneView(console) as view:
        view.trial_begins(Progress(2, 2, 1, 0.81, 0, 0, remaining_seconds=1.0))
        assert "about 1 s left" in view.bar.tasks[0].fields["status"]
        view.search_ended(None)
    shown = last_frame(console)
    assert "2/2" in shown and "all trials done" in shown and "left" not in shown


def test_a_timeout_leaves_the_bar_where_it_stopped_and_says_so():
    console = terminal()
    with TuneView(console) as view:
        view.trial_begins(Progress(2, 5, 1, 0.81, 0, 0, remaining_seconds=9.0))
        view.search_ended("timeout")
    shown = last_frame(console)
    assert "1/5" in shown and "stopped by --timeout" in shown and "left" not in shown


def test_a_trial_pruned_at_its_last_epoch_says_of_how_many():
    console = Console(file=io.StringIO(), width=100)
    view = TuneView(console)
    view.number = 3
    view.run_started(load_config(None, ["train.epochs=2"]), Path("trial-0003"))
    summary = {"status": "pruned", "epochs": 2, "final": {"val_acc": 0.5}}
    view.run_finished(RunResult(Path("trial-0003"), [], summary))
    assert console.file.getvalue().strip() == "trial #3 pruned after epoch 2 of 2: val acc 0.5000"
