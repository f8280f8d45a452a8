"""dropcli runs: the settings that tell runs apart, filters, sorting, JSON and CSV, and --diff."""

import csv
import io
import json

import pytest


@pytest.fixture
def some_runs(in_tmp, invoke, small_args):
    """A 2x2 sweep (dropout_1 x lr) and one plain run."""
    args = [
        "sweep",
        *small_args(epochs=1),
        "--grid",
        "model.dropout_1=0,0.5",
        "--grid",
        "optim.lr=0.05,0.2",
        "--run-dir",
        "runs/s",
        "-q",
    ]
    assert invoke(*args).exit_code == 0
    assert invoke("train", *small_args(epochs=1), "--model", "builtin", "--run-dir", "runs/plain", "-q").exit_code == 0
    return in_tmp / "runs"


def records(invoke, *args):
    result = invoke("runs", "runs", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_runs_show_the_settings_that_differ(some_runs, invoke):
    listed = records(invoke)
    assert len(listed) == 5
    assert {"model.kind", "model.dropout", "optim.lr"} <= set(listed[0]) and "optim.weight_decay" not in listed[0]
    table = invoke("runs", "runs").stdout
    assert "model.dropout" in table and "optim.lr" in table


def test_where_status_sort_and_top(some_runs, invoke):
    scratch = records(invoke, "--where", "model.kind=scratch", "--status", "finished")
    assert len(scratch) == 4 and all(r["status"] == "finished" for r in scratch)
    assert "model.kind" not in scratch[0]  # all the same now, so not a differing key
    fast = records(invoke, "--where", "optim.lr=0.2", "--where", "model.dropout_1=0.5")
    assert [(r["run"]) for r in fast] == ["s/dropout_1=0.5_lr=0.2_seed0"]
    ranked = records(invoke, "--sort", "test_acc")
    assert [r["test_acc"] for r in ranked] == sorted((r["test_acc"] for r in ranked), reverse=True)
    assert len(records(invoke, "--sort", "test_loss", "--top", "2")) == 2
    # A list sorts place by place, a word by its text: [0.0, 0.5] before [0.5, 0.5], builtin before scratch.
    assert [r["model.dropout"] for r in records(invoke, "--sort", "model.dropout")] == [[0.0, 0.5]] * 2 + [[0.5, 0.5]] * 3
    assert [r["model.kind"] for r in records(invoke, "--sort", "model.kind")] == ["builtin"] + ["scratch"] * 4
    result = invoke("runs", "runs", "--sort", "nonsense")
    assert result.exit_code == 2 and "not a metric" in result.stderr


def test_csv_has_a_row_per_run(some_runs, invoke):
    rows = list(csv.DictReader(io.StringIO(invoke("runs", "runs", "--csv").stdout)))
    assert len(rows) == 5 and {"run", "status", "test_acc", "optim.lr"} <= set(rows[0])


def test_diff_of_two_runs(some_runs, invoke):
    result = invoke("runs", "--diff", some_runs / "s" / "dropout_1=0.0_lr=0.05_seed0", some_runs / "plain")
    assert result.exit_code == 0, result.output
    assert "config keys that differ" in result.stdout and "model.kind" in result.stdout and "optim.lr" in result.stdout
    assert "test acc" in result.stdout and "reported epoch" in result.stdout and "None" not in result.stdout
    same = invoke("runs", "--diff", some_runs / "plain", some_runs / "plain")
    assert (
        same.exit_code == 0 and same.stdout.splitlines()[2] == "config keys that differ: none"
    )  # a line of its own, after A: and B:
    result = invoke("runs", "--diff", some_runs / "s", some_runs / "plain")
    assert result.exit_code == 2 and "not a run directory" in result.stderr
    result = invoke("runs", "--diff", some_runs / "plain", some_runs / "plain", "--json", "--where", "model.kind=scratch")
    assert result.exit_code == 2 and "--diff compares two runs and takes no --where, --json" in result.stderr
