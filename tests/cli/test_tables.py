"""Tables and text a user copies from: whole paths, no Python None/True, labels that say which
train accuracy, the trial counter, whole descriptions, one-line paths."""

import io
from pathlib import Path

from rich.console import Console

from dropcli.cli.display import report, runs_tables
from dropcli.cli.display.epoch_table import EpochTable, epoch_cells
from dropcli.config import load_config
from dropcli.runs import RunInfo
from dropcli.training.records import EpochMetrics, RunResult


def rendered(*parts, width: int = 60) -> str:
    console = Console(file=io.StringIO(), width=width, soft_wrap=False)
    console.print(*parts)
    return console.file.getvalue()


def info(path: str, **settings) -> RunInfo:
    return RunInfo(
        Path("runs") / path,
        "smoke",
        "scratch",
        2,
        2,
        0.61,
        0.6,
        "finished",
        settings,
        {"epoch": 2, "test_acc": 0.6, "val_acc": None, "train_acc": 0.5},
    )


def runs_table(infos, keys, width):
    console = Console(file=io.StringIO(), width=width, soft_wrap=False)
    return rendered(runs_tables.runs_table(infos, Path("runs"), keys, console), width=width)


def test_runs_table_keeps_whole_paths_and_prints_no_python_values():
    long_name = "compare-smoke-20261129-221910/kind=scratch_seed0"
    infos = [
        info(long_name, **{"data.train_limit": None, "metrics.activation_stats": True}),
        info("b", **{"data.train_limit": 600, "metrics.activation_stats": False}),
    ]
    text = runs_table(infos, ["data.train_limit", "metrics.activation_stats"], width=120)
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert long_name in cells  # folded over lines, never cut
    assert "…" not in text and "None" not in text and "True" not in text and "False" not in text
    assert " yes " in text and " no " in text and " - " in text


def test_runs_table_fits_80_and_100_columns_without_breaking_a_number_or_word():
    keys = ["model.hidden", "model.dropout", "data.train_limit", "optim.lr", "metrics.activation_stats"]

    def settings(n: int) -> dict:
        return {
            "model.hidden": [1024] * (n + 1),
            "model.dropout": [0.5] * (n + 1),
            "data.train_limit": 2000 * n,
            "optim.lr": 0.0638612345 * (n + 1),
            "metrics.activation_stats": n == 1,
        }

    infos = [info(f"sweep-long-name-20261205-081709/trial_{n}", **settings(n)) for n in range(3)]
    for width in (80, 100):
        text = runs_table(infos, keys, width)
        lines = text.splitlines()
        assert max(map(len, lines)) <= width
        assert "runs under runs/sweep-long-name-20261205-081709" in text  # the shared directory once, in the title
        rows = [line for line in lines if line.startswith("│") and "0.6000" in line]
        assert len(rows) == 3 and all(f"trial_{n} " in row and "finished" in row for n, row in enumerate(rows))
        assert "1024x1024x1024" in rows[2] and "0.5,0.5,0.5" in rows[2]  # whole, on one line
        # Columns that hold one value in every row go before any that tell the runs apart.
        caption = " ".join(text.split()).partition("left out for width:")[2]
        assert "model (scratch in every row)" in caption and "epochs (2/2 in every row)" in caption
        assert "model.hidden" not in caption
    assert " 0.06386 " in runs_table(infos, keys, 100)  # a tuned rate in 4 significant figures


def test_tune_table_fits_80_and_100_columns_without_breaking_a_number_or_word():
    from dropcli.cli.display.tune_view import top_table
    from dropcli.experiments.tune_results import Found, TrialRow

    values = {
        "model.hidden": "1024x1024x1024",
        "model.dropout_input": 0.2159,
        "model.dropout_1": 0.3367,
        "optim.lr": 0.06386,
        "optim.momentum_final": 0.95,
        "data.augment.shift": 1,
    }
    rows = [TrialRow(n, state, 0.8758, 9, values, f"trial-{n:04d}") for n, state in enumerate(["interrupted", "pruned"])]
    found = Found(rows, None, None, {"interrupted": 1, "pruned": 1}, None)
    for width in (80, 100, 200):
        text = rendered(top_table(found, 5, width), width=width)
        assert max(map(len, text.splitlines())) <= width
        body = [line for line in text.splitlines() if line.startswith("│")]
        assert len(body) == 2 and "interrupted" in body[0] and "0.8758" in body[0] and "trial-0000" in body[0]
        if width == 200:  # each key headed by its last part, values whole, nothing left out
            assert all(name in text for name in ("dropout_input", "momentum_final", "1024x1024x1024", "0.06386"))
            assert "left out for width" not in text
        else:
            assert "left out for width:" in text and "data.augment.shift" in text


def test_diff_names_the_reported_epoch_and_which_train_accuracy():
    first, second = info("a"), info("b")
    metrics = [("train_acc", 0.5, 0.4), ("val_acc", None, 0.7), ("epoch", 2, 3)]
    text = rendered(*runs_tables.diff_table(first, second, [("seed", 0, 1)], metrics), width=120)
    assert "train acc (dropout on)" in text and "reported epoch" in text
    assert "the last; with early stopping, the best" in text
    assert "None" not in text and " - " in text


def test_experiment_tables_say_train_accuracy_in_eval_mode():
    from dropcli.experiments import Cell, Stat

    cell = Cell({"model.kind": "scratch"}, 1, *(Stat(0.5, None),) * 3, None, *(Stat(0.5, None),) * 4, ["r"], {})
    for table in (report.compare_table([cell]), *report.sweep_tables([cell], ["model.kind"])):
        assert "train acc (eval)" in rendered(table, width=200)


def metrics(val: bool, stats: bool) -> EpochMetrics:
    activations = {f"noise_{i}.{k}": 0.1025 for i in (1, 2) for k in ("var_before", "var_after", "zeros")} if stats else None
    return EpochMetrics(1, 0.5, 0.8, 0.4, 0.85, 0.41 if val else None, 0.84 if val else None, 1.2, 1e3, activations, 0.1)


def test_live_table_shows_validation_columns_and_whole_statistics():
    config = load_config(None, ["data.val_split=0.1", "metrics.activation_stats=true"])
    live = EpochTable(config, width=200)
    headers = [str(column.header).replace("\n", " ") for column in live.table.columns]
    assert "val loss" in headers and "val acc" in headers and "train acc (dropout on)" in headers
    live.add(metrics(val=True, stats=True))
    assert len(epoch_cells(metrics(val=True, stats=True))) == len(headers)
    text = rendered(live.table, width=200)
    assert "…" not in text and "0.84" in text and "→0.102" in text and "left out" not in text
    plain = EpochTable(load_config(None, []), width=200)
    assert "val acc" not in [str(column.header) for column in plain.table.columns]
    assert len(epoch_cells(metrics(val=False, stats=False))) == len(plain.table.columns)


def test_live_table_fits_80_columns_by_leaving_columns_out_never_breaking_a_number():
    config = load_config(None, ["data.val_split=0.1", "metrics.activation_stats=true"])
    for width in (80, 100):
        live = EpochTable(config, width)
        live.add(metrics(val=True, stats=True))
        text = rendered(live.table, width=width)
        assert max(map(len, text.splitlines())) <= width
        row = next(line for line in text.splitlines() if line.strip().startswith("1 "))
        for number in ("0.8000", "0.8400", "0.8500"):  # train, val and test accuracy, whole
            assert number in row
        caption = " ".join(text.split()).partition("left out for width:")[2]
        assert "zeros 1" in caption and "acc" not in caption  # accuracies are never left out


def test_summary_path_stays_on_one_line_in_a_narrow_terminal():
    console = Console(file=io.StringIO(), width=40)
    summary = {
        "status": "finished",
        "model": "scratch",
        "final": {"test_acc": 0.6, "test_loss": 1.0},
        "epochs": 2,
        "seconds": 1.0,
        "seconds_per_epoch": 0.5,
        "samples_per_s": 1000.0,
        "device": "cpu",
    }
    run_dir = Path("runs/smoke-scratch-20261129-221910-a-long-name")
    report.Reporter(console, quiet=True).run_finished(RunResult(run_dir, [], summary))
    lines = console.file.getvalue().splitlines()
    assert f"run saved to {run_dir}" in lines
    assert all(len(line) <= 40 for line in lines if "run saved" not in line)  # the sentence wraps between words
    assert "after 2 epochs" in " ".join(lines)


def test_trial_line_counts_and_estimates():
    assert report.trial_line(1, 4, None) == "trial 1 of 4"
    assert report.trial_line(3, 4, 90.0) == "trial 3 of 4 (about 90 s left)"
    assert report.trial_line(2, 40, 600.0) == "trial 2 of 40 (about 10 min left)"


def test_sweep_prints_trial_k_of_n_with_an_estimate(in_tmp, invoke, small_args):
    result = invoke("sweep", *small_args(epochs=1, train=300, test=100), "--grid", "model.dropout_1=0,0.5", "--seeds", "2")
    assert result.exit_code == 0, result.output
    assert "trial 1 of 4\n" in result.stdout
    assert "trial 4 of 4 (about " in result.stdout and " left)" in result.stdout


def test_config_list_shows_each_configs_summary_line_whole(invoke):
    result = invoke("config", "list")
    lines = result.stdout.splitlines()
    assert any("long" in line and "Exercise 2: with and without dropout over many epochs." in line for line in lines)
    assert "/configs/" not in result.stdout  # paths only with --paths


def test_config_list_paths_adds_each_file(invoke):
    from dropcli.config.shipped import shipped_configs

    rows = [line.split("│") for line in invoke("config", "list", "--paths").stdout.splitlines()]
    files = "".join(row[3].strip() for row in rows if len(row) == 5)  # a long path folds over rows
    for path in shipped_configs().values():
        assert str(path) in files


def test_a_config_that_is_not_a_regular_file_is_named_so(invoke):
    result = invoke("config", "show", "-c", "/dev/null")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: config file /dev/null is not a regular file (a device, pipe or socket) (pass an existing YAML file, e.g. configs/default.yaml)"
    )
