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


def fake_study():
    """What uncertainty_tables reads of a study: nine methods, intervals, eleven coverages."""
    from types import SimpleNamespace

    from dropcli.uncertainty.calibration import METRICS

    methods = ["deterministic", "temperature", "mc dropout K=3", "mc dropout + temperature", "ensemble M=3 + mc dropout"]
    from dropcli.uncertainty.shifts import Shift

    shift = Shift("none", 0.0)
    coverages = [round(1 - i / 10, 1) for i in range(11)][:-1]
    scores = {
        (m, shift): SimpleNamespace(**{metric: 0.4812 + i for metric in METRICS}, selective={c: 0.4812 for c in coverages})
        for i, m in enumerate(methods)
    }
    interval = SimpleNamespace(half_width=0.0166)
    study = SimpleNamespace(
        methods=methods, scores=scores, passes={m: 3 for m in methods}, split="test", shifts=[shift], level=0.95
    )
    study.intervals = {key: [interval] * len(METRICS) for key in scores}
    return study, shift


def test_evaluate_tables_fit_80_and_100_columns_and_break_no_number_or_word():
    from dropcli.cli.display.uncertainty_tables import _methods_by_metric, _selective

    study, shift = fake_study()
    for width in (80, 100):
        for table in (_methods_by_metric(study, shift), _selective(study, shift)):
            text = rendered(table, width=width)
            assert max(map(len, text.splitlines())) <= width
            assert "…" not in text and "accu-" not in text and "racy" not in text.replace("accuracy", "")
            body = [line for line in text.splitlines() if line.startswith("│")]
            numbers = [word for line in body for word in line.replace("│", " ").split() if word[:1].isdigit() or word[:1] == "±"]
            assert all(len(n) in (6, 7) for n in numbers if n[0] != "(" and "." in n), numbers  # 0.4812, ±0.0166: whole
        assert "100%" in rendered(_selective(study, shift), width=width)  # all examples: never left out
    assert "left out for width:" in " ".join(rendered(_selective(study, shift), width=80).split())


def test_predict_keeps_each_class_with_its_probability_at_80_and_100_columns():
    from dropcli.cli.display.report import prediction_table
    from dropcli.data import CLASS_NAMES
    from dropcli.uncertainty.predict import Prediction

    probabilities = [0.127, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.122, 0.108, 0.433]
    predictions = [Prediction(f"pictures/shoe-{n}.png", probabilities, 9 - n, 2.2931 - n, CLASS_NAMES) for n in range(2)]
    for width in (80, 100):
        text = rendered(prediction_table(predictions, 4, Path("runs/x/checkpoints/last.pt")), width=width)
        assert max(map(len, text.splitlines())) <= width
        for pair in ("Ankle boot 0.433", "T-shirt/top 0.127", "Sneaker 0.122", "Bag 0.108"):
            assert pair in text  # a class and its probability on one line
        assert "pictures/shoe-1.png" in text and " 2.293 " in text and " 1.293 " in text
        assert "at most 2.30" in " ".join(text.split()) and "entropy (nats" not in text


def test_tune_progress_keeps_elapsed_time_and_status_words_whole_at_80_and_100_columns():
    for width in (80, 100):
        view = TuneView(terminal(width))
        with view:
            view.trial_begins(Progress(5, 6, 4, 0.8812, 3, 2, remaining_seconds=61.0))
            view.run_started(load_config(None, ["train.epochs=20"]), Path("x"))
            shown = rendered(view.bar.get_renderable(), width=width)
        assert max(map(len, shown.splitlines())) <= width and "…" not in shown
        assert shown.count("0:00:0") == 2 and "4/6" in shown and "0/20" in shown
        assert "about 61 s left" in " ".join(shown.split())  # the status wraps between words


def test_evaluation_tables_fit_80_columns_with_a_full_test_set():
    from types import SimpleNamespace

    from dropcli.cli.display.report import evaluation_tables
    from dropcli.data import CLASS_NAMES

    confusion = [[1000 if i == j else 0 for j in range(10)] for i in range(10)]
    result = SimpleNamespace(
        epoch=2, split="test", precision="fp32", loss=0.3, accuracy=0.8812, images=10_000, file_images=10_000,
        class_names=CLASS_NAMES, per_class_accuracy=[0.8812] * 10, confusion=confusion, mc_samples=0,
    )  # fmt: skip
    for width in (80, 100):
        text = rendered(*evaluation_tables(result, Path("runs/x/checkpoints/last.pt")), width=width)
        assert max(map(len, text.splitlines())) <= width and "…" not in text
        rows = [line for line in text.splitlines() if line.count("1000") == 1]
        assert len(rows) == 10  # every count whole
        assert "0 T-shirt/top" in text and "9 Ankle boot" in text


def test_compare_and_sweep_keep_mean_and_std_on_one_line_at_80_and_100_columns():
    from dropcli.cli.display import report
    from dropcli.experiments import Cell, Stat

    def cell(kind: str, rate: float, n: int) -> Cell:
        stat = Stat(0.8812 - n / 100, 0.0034)
        return Cell(
            {"model.kind": kind, "model.dropout_1": rate}, 3, stat, stat, stat, None, stat, Stat(0.0144, 0.0058 + n),
            Stat(12.25, 0.5), Stat(48213.0, 1234.0), ["r"], {},
        )  # fmt: skip

    cells = [cell("scratch", 0.5, 0), cell("builtin", 0.2, 1)]
    for width in (80, 100):
        for table in (report.compare_table(cells), *report.sweep_tables(cells, ["model.dropout_1"])):
            text = rendered(table, width=width)
            assert max(map(len, text.splitlines())) <= width and "…" not in text
            rows = [line for line in text.splitlines() if line.startswith("│")]
            assert len(rows) == 2 and "0.8812 ± 0.0034" in rows[0] and "0.8712 ± 0.0034" in rows[1]
            assert "+0.0144 ± 0.0058" in rows[0] or "gap" in text.partition("left out")[2]
        compared = " ".join(rendered(report.compare_table(cells), width=width).split())
        assert "scratch" in compared and "builtin" in compared
        left_out = compared.partition("left out for width:")[2]
        if width == 80:  # timings are the first left out, then constant columns, each named
            assert "seeds (3 in every row)" in left_out and "s/epoch" in left_out and "samples/s" in left_out
        assert "test acc" not in left_out
