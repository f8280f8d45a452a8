"""Studies kept in a file: `sweep --plan study.yaml` is the same sweep as its flags."""

import json

import pytest

from conftest import trained_files
from dropcli.experiments import sweep_plan

STUDY = """\
# exercise 1, kept in git
config:
  train: {epochs: 1}
  data: {train_limit: 300, test_limit: 100}
grid:
  model.dropout_1: [0, 0.5]
seeds: 2
"""


def test_a_plan_runs_the_same_sweep_as_its_flags(in_tmp, invoke, fake_data):
    (in_tmp / "study.yaml").write_text(STUDY)
    common = ["--data-dir", fake_data, "--device", "cpu", "-q"]
    assert invoke("sweep", "--plan", "study.yaml", *common, "--run-dir", "by-plan").exit_code == 0
    flags = [
        "--set",
        "train.epochs=1",
        "--set",
        "data.train_limit=300",
        "--set",
        "data.test_limit=100",
        "--grid",
        "model.dropout_1=0,0.5",
        "--seeds",
        "2",
    ]
    result = invoke("sweep", *flags, *common, "--run-dir", "by-flags")
    assert result.exit_code == 0, result.output
    plan, by_flags = (json.loads((in_tmp / name / "plan.json").read_text()) for name in ("by-plan", "by-flags"))
    assert plan == by_flags and plan["seeds"] == 2 and plan["grids"] == [["model.dropout_1", [0.0, 0.5]]]
    cells = [json.loads((in_tmp / name / "results.json").read_text())["cells"] for name in ("by-plan", "by-flags")]
    assert [(c["runs"], c["test_acc"]) for c in cells[0]] == [(c["runs"], c["test_acc"]) for c in cells[1]]
    # The flags continue the plan's experiment: the same plan, nothing left to train.
    trained = trained_files(in_tmp / "by-plan")
    again = invoke("sweep", *flags, *common, "--run-dir", "by-plan")
    assert again.exit_code == 0, again.output
    assert trained_files(in_tmp / "by-plan") == trained


def test_flags_override_the_plan(tmp_path):
    plan = tmp_path / "study.yaml"
    plan.write_text("config: smoke\ngrid:\n  model.dropout_1: [0, 0.5]\n  optim.lr: '0.01:1:log'\nseeds: 3\nsample: 4\n")
    planned = sweep_plan.resolve(plan, None, ["train.epochs=1"], {}, [], None, None)
    assert planned.config.name == "smoke" and planned.config.train.epochs == 1
    assert (planned.seeds, planned.sample) == (3, 4)
    assert planned.grids[1].span == (0.01, 1.0, True)
    planned = sweep_plan.resolve(plan, None, [], {}, ["model.dropout_1=0.2,0.8", "model.dropout_2=0,0.3"], 1, 2)
    assert [(g.key, g.values) for g in planned.grids] == [
        ("model.dropout_1", (0.2, 0.8)),
        ("optim.lr", ()),
        ("model.dropout_2", (0, 0.3)),
    ]
    assert (planned.seeds, planned.sample) == (1, 2)


def test_a_plan_names_its_config_beside_it(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nseed: 7\n")
    plan = tmp_path / "study.yaml"
    plan.write_text("config: base.yaml\ngrid:\n  model.kind: [scratch, builtin]\n")
    planned = sweep_plan.resolve(plan, None, [], {}, [], None, None)
    assert (planned.config.name, planned.config.seed, planned.seeds, planned.sample) == ("base", 7, 1, None)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "config: smoke\ngrids:\n  model.dropout_1: [0]\n",
            "unknown key 'grids' in a study file; its keys are config, grid, seeds, sample",
        ),
        ("grid:\n  model.dropout_1: [0, 0.5]\nseeds: 0\n", "seeds must be a whole number of at least 1, got 0"),
        ("grid:\n  model.dropot_1: [0, 0.5]\n", "unknown key 'model.dropot_1'"),
        ("grid:\n  seed: [0, 1]\n", "seeds are not a grid"),
        ("grid: [0, 1]\n", "grid must map config keys to a list of values or a range"),
        ("config: smoke\n", "sweep needs grids"),
    ],
)
def test_a_bad_plan_is_one_line_before_training(in_tmp, invoke, fake_data, text, message):
    (in_tmp / "study.yaml").write_text(text)
    result = invoke("sweep", "--plan", "study.yaml", "--data-dir", fake_data, "--device", "cpu")
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (in_tmp / "runs").exists()


def test_a_missing_plan_is_named(in_tmp, invoke):
    result = invoke("sweep", "--plan", "nowhere.yaml")
    assert result.exit_code == 2 and "--plan nowhere.yaml: no such file" in result.stderr


def test_config_cp_copies_a_shipped_config_with_its_comments(in_tmp, invoke):
    from dropcli.config import load_config
    from dropcli.config.shipped import shipped_configs

    result = invoke("config", "cp", "long", "mine.yaml")
    assert result.exit_code == 0 and result.stdout.strip() == "wrote mine.yaml"
    assert (in_tmp / "mine.yaml").read_text() == shipped_configs()["long"].read_text()
    assert (in_tmp / "mine.yaml").read_text().startswith("# Exercise 2")
    assert load_config(in_tmp / "mine.yaml") == load_config("long")
    (in_tmp / "mine.yaml").write_text("name: edited\n")
    result = invoke("config", "cp", "smoke", "mine.yaml")
    assert result.exit_code == 2 and "mine.yaml exists; choose another file, or add --force" in result.stderr
    assert (in_tmp / "mine.yaml").read_text() == "name: edited\n"
    assert invoke("config", "cp", "smoke", "mine.yaml", "--force").exit_code == 0
    assert (in_tmp / "mine.yaml").read_text() == shipped_configs()["smoke"].read_text()
    (in_tmp / "configs").mkdir()
    assert invoke("config", "cp", "best", "configs").exit_code == 0 and (in_tmp / "configs" / "best.yaml").is_file()
    result = invoke("config", "cp", "nope", "x.yaml")
    assert result.exit_code == 2 and "no shipped config named 'nope'" in result.stderr and not (in_tmp / "x.yaml").exists()
    result = invoke("config", "cp", "smoke", "no/dir/x.yaml")
    assert result.exit_code == 2 and "no directory no/dir" in result.stderr
