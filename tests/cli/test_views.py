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


def rendered(*parts, width: int) -> str:
    """Each part printed on its own, as the commands print them."""
    console = Console(file=io.StringIO(), width=width, soft_wrap=False)
    for part in parts:
        console.print(part)
    return console.file.getvalue()


def run_info(path: str, **settings):
    from dropcli.runs import RunInfo

    final = {"epoch": 2, "test_acc": 0.6, "val_acc": None, "train_acc": 0.5}
    return RunInfo(Path("runs") / path, "smoke", "scratch", 2, 2, 0.61, 0.6, "finished", settings, final)


def test_diff_shows_4_significant_figures_unless_that_hides_a_difference():
    from dropcli.cli.display.runs_tables import diff_table

    first = run_info("sweep-long-name-20261205-081709/trial_0")
    second = run_info("sweep-long-name-20261205-081709/trial_1")
    rows = [("optim.lr", 0.06362676068454798, 0.06913406503799589), ("optim.momentum", 0.90000001, 0.9000000002)]
    for width in (80, 100):
        text = rendered(*diff_table(first, second, rows, [("test_acc", 0.8812, 0.8799)]), width=width)
        assert max(map(len, text.splitlines())) <= width
        assert text.splitlines()[0] == f"A: {first.path}"  # each run named whole, on a line of its own
        assert " 0.06363 " in text and " 0.06913 " in text and "0.0636267" not in text
        assert "0.90000001 " in text and "0.9000000002" in text  # the same in 4 figures: shown whole
        assert "acc-" not in text and "0.8812" in text


def test_where_finds_a_setting_by_the_value_the_table_shows():
    from dropcli.runs import catalog

    infos = [run_info("a", **{"optim.lr": 0.0638612345}), run_info("b", **{"optim.lr": 0.1})]
    assert [i.path.name for i in catalog.where(infos, ["optim.lr=0.06386"], None)] == ["a"]
    assert [i.path.name for i in catalog.where(infos, ["optim.lr=0.0638612345"], None)] == ["a"]
    assert catalog.where(infos, ["optim.lr=0.0639"], None) == []  # not what the table shows
