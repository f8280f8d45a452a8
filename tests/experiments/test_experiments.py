"""Experiments (compare and sweep): every grid key takes effect, failed trials don't stop the
rest, and an interrupted experiment continues where it stopped."""

import json
import signal
import subprocess

import pytest
import torch
import yaml

from conftest import held_dropcli, only, trained_files, wait_for_file
from dropcli import runs

STAT_TIMES = ("seconds_per_epoch", "samples_per_s")


def read_json(path):
    return json.loads(path.read_text())


def cells_without_times(experiment_dir):
    """results.json's cells less their timing statistics, which differ between any two runs."""
    cells = read_json(experiment_dir / "results.json")["cells"]
    return [{k: v for k, v in cell.items() if k not in STAT_TIMES} for cell in cells]


def trial_config(experiment_dir, name):
    return yaml.safe_load((experiment_dir / name / runs.CONFIG_FILE).read_text())


@pytest.mark.system
def test_an_interrupted_compare_continues_and_ends_as_an_uninterrupted_one(in_tmp, invoke, small_args):
    args = ["compare", "scratch", "builtin", "--seeds", "2", *small_args(3, train=3000, test=500), "-q"]
    assert invoke(*args, "--run-dir", in_tmp / "whole").exit_code == 0
    killed = in_tmp / "killed"
    # Killed in the second trial: the child waits after that trial's first epoch until it is.
    held = in_tmp / "held"
    process = subprocess.Popen(
        [*held_dropcli(held, 1, not_run="kind=scratch_seed0"), *args, "--run-dir", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = killed / "kind=scratch_seed0" / runs.SUMMARY_FILE
    wait_for_file(held, process)
    assert first.exists()  # the first trial finished before the second began
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "results.json").exists(), "the comparison ended before it could be killed"
    finished_at = first.stat().st_mtime_ns
    result = invoke(*args, "--run-dir", killed)
    assert result.exit_code == 0, result.output
    assert first.stat().st_mtime_ns == finished_at  # the finished trial was not trained again
    assert cells_without_times(killed) == cells_without_times(in_tmp / "whole")


@pytest.mark.parametrize(
    "grid, check",
    [
        ("model.dropout_1=0,0.3", lambda s, c: c["model"]["dropout"][0] in (0, 0.3)),
        ("model.hidden=16x16,24x8x8", lambda s, c: c["model"]["hidden"] in ([16, 16], [24, 8, 8])),
        ("optim.lr=0.05,0.2", lambda s, c: c["optim"]["lr"] in (0.05, 0.2)),
        ("train.epochs=1,2", lambda s, c: s["epochs"] == c["train"]["epochs"]),
        ("data.train_limit=300,500", lambda s, c: s["data"]["train"] == c["data"]["train_limit"]),
        ("data.val_split=0,0.5", lambda s, c: s["data"]["val"] == int(600 * c["data"]["val_split"])),
        ("device=cpu,auto", lambda s, c: s["device"] == "cpu"),
    ],
    ids=["model", "model-hidden", "optim", "train", "data-limit", "data-val-split", "device"],
)
def test_every_kind_of_grid_key_takes_effect(in_tmp, invoke, small_args, grid, check):
    result = invoke("sweep", *small_args(epochs=1), "--grid", grid, "--run-dir", "s", "-q")
    assert result.exit_code == 0, result.output
    cells = read_json(in_tmp / "s" / "results.json")["cells"]
    key = grid.split("=")[0]
    assert len(cells) == 2 and cells[0]["values"][key] != cells[1]["values"][key]
    for cell in cells:
        name = only(cell["runs"])
        config, summary = trial_config(in_tmp / "s", name), read_json(in_tmp / "s" / name / runs.SUMMARY_FILE)
        assert check(summary, config), (cell, summary)


def test_a_trial_has_the_numbers_it_would_have_alone(in_tmp, invoke, small_args, without_times):
    # The validation split is drawn with the seed: the second seed's trial must use its own.
    options = [*small_args(), "--set", "data.val_split=0.2"]
    assert invoke("sweep", *options, "--grid", "model.dropout_1=0.5", "--seeds", "2", "--run-dir", "s", "-q").exit_code == 0
    assert invoke("train", *options, "--seed", "1", "--run-dir", "alone", "-q").exit_code == 0
    swept = (in_tmp / "s" / "dropout_1=0.5_seed1" / runs.METRICS_FILE).read_text().splitlines()
    alone = (in_tmp / "alone" / runs.METRICS_FILE).read_text().splitlines()
    assert without_times(map(json.loads, swept)) == without_times(map(json.loads, alone))


def test_seed_is_not_a_grid_key(in_tmp, invoke, small_args):
    result = invoke("sweep", *small_args(), "--grid", "seed=0,1,2")
    assert result.exit_code == 2 and "use --seeds N" in result.stderr
    assert not (in_tmp / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_is_refused_before_training(in_tmp, invoke, small_args):
    result = invoke("sweep", *small_args(), "--grid", "device=cpu,cuda")
    assert result.exit_code == 2 and "device 'cuda' was asked for but CUDA is not available" in result.stderr
    assert not (in_tmp / "runs").exists()


@pytest.mark.parametrize(
    "command, message",
    [
        (["sweep", "--grid", "model.dropout_1=0.5,0.5,.5"], "--grid model.dropout_1 names 0.5 more than once"),
        (["sweep", "--grid", "optim.lr=1e-1,0.1"], "--grid optim.lr names 0.1 more than once"),
        (["compare", "builtin", "scratch", "builtin"], "MODELS names builtin more than once"),
    ],
)
def test_repeated_values_are_refused(in_tmp, invoke, small_args, command, message):
    result = invoke(*command, *small_args())
    assert result.exit_code == 2 and message in result.stderr
    assert not (in_tmp / "runs").exists()


def test_a_grid_value_with_a_slash_stays_inside_the_experiment(in_tmp, invoke, small_args, fake_data):
    # Two paths alike in their first 40 characters: their trials' names must still differ.
    parent = in_tmp / ("x" * 40)
    parent.mkdir()
    copies = [parent / "copy-a", parent / "copy-b"]
    for copy in copies:
        copy.symlink_to(fake_data)
    result = invoke("sweep", *small_args(epochs=1), "--grid", f"data.root={copies[0]},{copies[1]}", "--run-dir", "s", "-q")
    assert result.exit_code == 0, result.output
    trials = sorted(p for p in (in_tmp / "s").iterdir() if p.is_dir())
    assert len(trials) == 2 and all("/" not in p.name and p.name.startswith("root=_") for p in trials)
    assert [read_json(p / runs.SUMMARY_FILE)["data"]["source"] for p in trials] == [str(c) for c in copies]


def test_a_diverging_trial_is_recorded_and_the_others_finish(in_tmp, invoke, small_args):
    args = ["sweep", *small_args(), "--grid", "optim.lr=0.1,1e6", "--run-dir", "s"]
    result = invoke(*args)
    assert result.exit_code == 3, result.output
    assert "1 of 2 trials diverged (lr=1000000.0_seed0)" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.output
    cells = read_json(in_tmp / "s" / "results.json")["cells"]
    assert cells[0]["seeds"] == 1 and cells[0]["test_acc"]["mean"] > 0.5 and not cells[0]["failed"]
    assert cells[1]["seeds"] == 0 and cells[1]["test_acc"] is None
    assert "training diverged" in cells[1]["failed"]["lr=1000000.0_seed0"]
    assert "diverged" in result.stdout  # the table says so
    # Run again: nothing is trained (a diverged trial would diverge again), same exit.
    again = invoke(*args)
    assert again.exit_code == 3 and "epochs ->" not in again.stdout


def test_the_summary_line_names_every_diverged_trial(in_tmp, invoke, small_args):
    result = invoke("sweep", *small_args(2), "--grid", "optim.lr=0.1,1e6,1e7", "--run-dir", "s", "-q")
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    # A warning as each diverges, then one summary that names them all.
    assert len(lines) == 3 and all("lr=" in line for line in lines[:2])
    assert "2 of 3 trials diverged (lr=1000000.0_seed0, lr=10000000.0_seed0)" in lines[-1]


def test_a_loss_that_turns_non_finite_after_the_last_check_is_divergence(in_tmp, invoke, small_args):
    # One batch per epoch: its loss is finite (it is computed before the step), and the step
    # makes the weights blow up, so only the test loss shows it.
    args = [*small_args(epochs=3), "--set", "optim.lr=1e4", "--set", "train.batch_size=600", "--run-dir", "r"]
    result = invoke("train", *args)
    assert result.exit_code == 3, result.output
    assert "training diverged" in result.stderr and "Traceback" not in result.output
    summary = read_json(in_tmp / "r" / runs.SUMMARY_FILE)  # strict JSON: json.loads refuses nothing here
    assert summary["status"] == "diverged"
    for line in (in_tmp / "r" / runs.METRICS_FILE).read_text().splitlines():
        assert "NaN" not in line and "Infinity" not in line


def test_random_search_is_seeded_and_resumes(in_tmp, invoke, small_args):
    args = [
        "sweep",
        *small_args(epochs=1),
        "--grid",
        "optim.lr=0.01:1:log",
        "--grid",
        "model.dropout_1=0:0.8",
        "--grid",
        "model.kind=scratch,builtin",
        "--sample",
        "3",
    ]
    first = invoke(*args, "--run-dir", "a", "-q")
    assert first.exit_code == 0, first.output
    cells = read_json(in_tmp / "a" / "results.json")["cells"]
    assert len(cells) == 3 and len({json.dumps(c["values"]) for c in cells}) == 3
    for cell in cells:
        assert 0.01 <= cell["values"]["optim.lr"] <= 1 and 0 <= cell["values"]["model.dropout_1"] <= 0.8
    assert invoke(*args, "--run-dir", "b", "-q").exit_code == 0
    assert read_json(in_tmp / "b" / "results.json")["cells"][0]["values"] == cells[0]["values"]  # same seed, same draws
    again = invoke(*args, "--run-dir", "a")
    assert again.exit_code == 0 and "epochs ->" not in again.stdout  # resumed: nothing left to train
    assert invoke(*args, "--seed", "5", "--run-dir", "c", "-q").exit_code == 0
    assert read_json(in_tmp / "c" / "results.json")["cells"][0]["values"] != cells[0]["values"]


@pytest.mark.parametrize(
    "grids, message",
    [
        (["--grid", "optim.lr=0.01:1"], "a --grid range (LOW:HIGH) is sampled, not tried whole: add --sample N"),
        (["--grid", "optim.lr=1:0.1", "--sample", "2"], "a range needs LOW < HIGH"),
        (["--grid", "optim.lr=0:1:log", "--sample", "2"], "LOW > 0 on a log scale"),
        (["--grid", "optim.lr=a:b", "--sample", "2"], "a range is LOW:HIGH or LOW:HIGH:log"),
        (["--grid", "model.kind=scratch,builtin", "--sample", "3"], "hold only 2 different combinations"),
    ],
)
def test_random_search_input_is_checked(in_tmp, invoke, small_args, grids, message):
    result = invoke("sweep", *small_args(), *grids)
    assert result.exit_code == 2 and message in result.stderr
    assert not (in_tmp / "runs").exists()


def test_a_sweep_over_architectures_names_them(in_tmp, invoke, small_args):
    # Commas between architectures, x between widths: one command line, no quoting.
    args = ["sweep", *small_args(epochs=1), "--grid", "model.hidden=32x32,48x32x16,64", "--run-dir", "s"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    for short in ("32x32", "48x32x16", "64"):
        assert short in result.stdout
        config = trial_config(in_tmp / "s", f"hidden={short}_seed0")
        assert config["model"]["hidden"] == [int(width) for width in short.split("x")]
        assert config["model"]["dropout"] == [0.5] * len(config["model"]["hidden"])  # one rate follows each depth
    rows = (in_tmp / "s" / "results.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["32x32", "48x32x16", "64"]
    # The same command again continues the same plan: nothing is left to train.
    trained = trained_files(in_tmp / "s")
    assert invoke(*args, "-q").exit_code == 0
    assert trained_files(in_tmp / "s") == trained


def test_random_search_draws_architectures_from_a_list(in_tmp, invoke, small_args):
    args = [
        "sweep",
        *small_args(epochs=1),
        "--grid",
        "model.hidden=16x16,24x16x8",
        "--grid",
        "optim.lr=0.05:0.2:log",
        "--sample",
        "2",
        "--run-dir",
        "s",
        "-q",
    ]
    assert invoke(*args).exit_code == 0
    cells = read_json(in_tmp / "s" / "results.json")["cells"]
    assert all(cell["values"]["model.hidden"] in ([16, 16], [24, 16, 8]) for cell in cells) and len(cells) == 2


def test_a_grid_over_architectures_and_one_rate_gives_each_net_that_rate_on_every_layer(in_tmp, invoke, small_args):
    args = [
        "sweep",
        *small_args(epochs=1),
        "--grid",
        "model.hidden=16x16,24x16x8",
        "--grid",
        "model.dropout=0,0.5",
        "--run-dir",
        "s",
        "-q",
    ]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert trial_config(in_tmp / "s", "hidden=24x16x8_dropout=0.0_seed0")["model"]["dropout"] == [0.0, 0.0, 0.0]
    assert trial_config(in_tmp / "s", "hidden=16x16_dropout=0.5_seed0")["model"]["dropout"] == [0.5, 0.5]
