"""Run directories written by dropcli before model.hidden/model.dropout became lists still work.

tests/fixtures/run-v2 was made by that version (784-4-3-10, keys hidden_1, hidden_2, dropout_1,
dropout_2, momentum 0.5, two epochs) on the stand-in data of conftest.py:

    dropcli train -c configs/smoke.yaml --data-dir DIR --device cpu --set data.train_limit=512
      --set data.test_limit=256 --set train.epochs=2 --set model.hidden_1=4 --set model.hidden_2=3
      --set optim.momentum=0.5 --set optim.lr=0.5 --run-dir tests/fixtures/run-v2
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import mc_dropout_by_hand
from dropcli import runs
from dropcli.runs import checkpoints

FIXTURE = Path(__file__).parents[1] / "fixtures" / "run-v2"


@pytest.fixture
def old_run(in_tmp) -> Path:
    """A copy of the fixture: the tests resume and evaluate it, and must not change the original."""
    return Path(shutil.copytree(FIXTURE, in_tmp / "runs" / "old"))


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / runs.METRICS_FILE).read_text().splitlines()]


def test_the_fixture_is_in_the_old_format():
    # Not vacuous: the fixture really holds the old keys, and the old model's parameter names.
    model = yaml.safe_load((FIXTURE / runs.CONFIG_FILE).read_text())["model"]
    assert {"hidden_1", "hidden_2", "dropout_1", "dropout_2"} <= set(model) and "hidden" not in model
    assert list(checkpoints.load(FIXTURE / runs.LAST_CHECKPOINT)["model"]) == [
        "hidden_1.weight",
        "hidden_1.bias",
        "hidden_2.weight",
        "hidden_2.bias",
        "output.weight",
        "output.bias",
    ]


def test_an_old_run_resumes_exactly(old_run, invoke, fake_data, without_times, in_tmp):
    resumed = invoke("train", "--resume", old_run, "--data-dir", fake_data, "--set", "train.epochs=4", "-q")
    assert resumed.exit_code == 0, resumed.output
    # The same run trained in one go by today's dropcli, from the old config file.
    fresh = invoke(
        "train",
        "-c",
        FIXTURE / runs.CONFIG_FILE,
        "--data-dir",
        fake_data,
        "--set",
        "train.epochs=4",
        "--run-dir",
        in_tmp / "fresh",
        "-q",
    )
    assert fresh.exit_code == 0, fresh.output
    whole = without_times(metrics(in_tmp / "fresh"))
    assert len(whole) == 4 and without_times(metrics(old_run)) == whole
    # Today's net computes what the old one did: the first two epochs are the fixture's own.
    assert without_times(metrics(FIXTURE)) == whole[:2]
    saved = yaml.safe_load((old_run / runs.CONFIG_FILE).read_text())["model"]
    assert (saved["hidden"], saved["dropout"]) == ([4, 3], [0.5, 0.5]) and "hidden_1" not in saved
    # Its checkpoint's best epoch was chosen by test accuracy: not carried on (no validation split, no best).
    assert checkpoints.load(FIXTURE / runs.LAST_CHECKPOINT)["best"]["metric"] == "test_acc"
    assert json.loads((old_run / runs.SUMMARY_FILE).read_text())["best"] is None


def test_an_old_run_that_monitored_a_test_metric_still_lists_and_evaluates(old_run, invoke, fake_data, in_tmp):
    config = old_run / runs.CONFIG_FILE
    config.write_text(config.read_text().replace("monitor: auto", "monitor: test_acc"))
    assert "monitor: test_acc" in config.read_text()  # allowed when such runs were saved; refused today
    listed = json.loads(invoke("runs", in_tmp / "runs", "--json").stdout)
    assert [(record["run"], record["status"]) for record in listed] == [("old", "finished")]
    assert invoke("evaluate", old_run, "--data-dir", fake_data, "--json").exit_code == 0


def test_an_old_run_evaluates_as_it_reported(old_run, invoke, fake_data):
    result = invoke("evaluate", old_run, "--data-dir", fake_data, "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    final = json.loads((FIXTURE / runs.SUMMARY_FILE).read_text())["final"]
    assert scored["epoch"] == 2
    assert scored["accuracy"] == final["test_acc"] and scored["loss"] == pytest.approx(final["test_loss"], rel=1e-5)
    monte_carlo = invoke("evaluate", old_run, "--data-dir", fake_data, "--mc-samples", "2", "--json")
    assert monte_carlo.exit_code == 0 and json.loads(monte_carlo.stdout)["mc_accuracy"] is not None


def test_old_and_new_runs_list_filter_diff_and_plot_together(old_run, invoke, small_args, in_tmp):
    new = in_tmp / "runs" / "new"
    assert invoke("train", *small_args(epochs=1), "--set", "model.hidden=8x8x8", "--run-dir", new, "-q").exit_code == 0
    listed = json.loads(invoke("runs", "runs", "--json").stdout)
    assert {record["run"]: record["model.hidden"] for record in listed} == {"old": [4, 3], "new": [8, 8, 8]}
    # The old key names its place in today's list, in old and new runs alike.
    assert [r["run"] for r in json.loads(invoke("runs", "runs", "--where", "model.hidden_1=4", "--json").stdout)] == ["old"]
    assert [r["run"] for r in json.loads(invoke("runs", "runs", "--where", "model.hidden=8x8x8", "--json").stdout)] == ["new"]
    assert len(json.loads(invoke("runs", "runs", "--where", "model.dropout_2=0.5", "--json").stdout)) == 2
    table = invoke("runs", "runs").stdout
    assert "4x3" in table and "8x8x8" in table
    diff = invoke("runs", "--diff", old_run, new)
    assert diff.exit_code == 0 and "model.hidden" in diff.stdout and "4x3" in diff.stdout
    scored = invoke("evaluate", new, "--mc-samples", "3", "--json")  # Monte Carlo dropout at depth 3
    assert scored.exit_code == 0
    accuracy, nll = mc_dropout_by_hand(new, passes=3)
    assert json.loads(scored.stdout)["mc_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert json.loads(scored.stdout)["mc_loss"] == pytest.approx(nll, rel=1e-5)
    plotted = invoke("plot", old_run, new, "-o", in_tmp / "both.png")
    assert plotted.exit_code == 0 and (in_tmp / "both.png").stat().st_size > 10_000
