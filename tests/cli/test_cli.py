"""The command line through Typer's CliRunner: each success path and each failure path."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import only
from dropcli import runs


def assert_one_line_error(result, message: str, exit_code: int = 2):
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_train_writes_a_run_directory(in_tmp, invoke, small_args):
    result = invoke("train", *small_args(), "--model", "builtin", "--run-dir", "runs/first")
    assert result.exit_code == 0, result.output
    run_dir = in_tmp / "runs" / "first"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "config.yaml", "metrics.jsonl", "summary.json"]
    assert sorted(p.name for p in (run_dir / runs.CHECKPOINT_DIR).iterdir()) == ["last.pt"]  # no validation split: no best
    config = yaml.safe_load((run_dir / runs.CONFIG_FILE).read_text())
    assert config["model"]["kind"] == "builtin" and config["train"]["epochs"] == 2
    metrics = [json.loads(line) for line in (run_dir / runs.METRICS_FILE).read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    summary = json.loads((run_dir / runs.SUMMARY_FILE).read_text())
    assert summary["status"] == "finished" and summary["final"] == metrics[-1]
    assert summary["device"] == "cpu" and summary["versions"]["torch"] == torch.__version__
    # Not a terminal: one plain line per epoch, then the summary line.
    assert "epoch 1/2  lr 0.1  train loss" in result.stdout and "epoch 2/2" in result.stdout
    assert f"builtin: test acc {metrics[-1]['test_acc']:.4f}" in result.stdout


def test_default_run_directory_name(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(), "--quiet").exit_code == 0
    run_dir = only((in_tmp / "runs").iterdir())
    assert run_dir.name.startswith("default-scratch-")


def test_quiet_prints_only_the_summary(in_tmp, invoke, small_args):
    result = invoke("train", *small_args(), "--quiet")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("scratch: test acc") and lines[1].startswith("run saved to runs/")


def test_quiet_experiments_print_only_their_final_summary(in_tmp, invoke, small_args):
    args = [*small_args(epochs=1, train=300, test=100), "-q"]
    swept = invoke("sweep", *args, "--grid", "model.dropout_1=0,0.5")
    assert swept.exit_code == 0, swept.output
    assert "run saved to" not in swept.stdout and "test acc 0." not in swept.stdout and "trial 1 of" not in swept.stdout
    assert swept.stdout.strip().splitlines()[-1].startswith("sweep saved to runs/")
    tuned = invoke("tune", *args, "--set", "data.val_split=0.2", "--space", "optim.lr=0.01:1:log", "--trials", 2)
    assert tuned.exit_code == 0, tuned.output
    assert "run saved to" not in tuned.stdout and "epoch 1/1" not in tuned.stdout and "trial #" not in tuned.stdout
    assert tuned.stderr == ""  # nor Optuna's warnings
    assert tuned.stdout.strip().splitlines()[-1].startswith("tune saved to runs/tune-default")


def test_two_runs_with_one_seed_write_identical_metrics(in_tmp, invoke, small_args):
    for name in ("a", "b"):
        assert invoke("train", *small_args(), "--seed", "4", "--run-dir", f"runs/{name}", "-q").exit_code == 0
    metrics = [
        [
            {k: v for k, v in json.loads(line).items() if k not in ("seconds", "samples_per_s")}
            for line in (in_tmp / "runs" / name / runs.METRICS_FILE).read_text().splitlines()
        ]
        for name in ("a", "b")
    ]
    assert metrics[0] == metrics[1]


def test_compare_writes_each_run_and_a_table(in_tmp, invoke, small_args):
    result = invoke("compare", "scratch", "builtin", *small_args(), "--seeds", "2", "--run-dir", "runs/cmp")
    assert result.exit_code == 0, result.output
    compare_dir = in_tmp / "runs" / "cmp"
    names = sorted(p.name for p in compare_dir.iterdir())
    trials = ["kind=builtin_seed0", "kind=builtin_seed1", "kind=scratch_seed0", "kind=scratch_seed1"]
    assert names == [*trials, "plan.json", "results.csv", "results.json", "trials.jsonl"]
    report = json.loads((compare_dir / "results.json").read_text())
    assert [cell["values"]["model.kind"] for cell in report["cells"]] == ["scratch", "builtin"]
    scratch = report["cells"][0]
    accs = [
        json.loads((compare_dir / f"kind=scratch_seed{s}" / runs.SUMMARY_FILE).read_text())["final"]["test_acc"] for s in (0, 1)
    ]
    assert scratch["test_acc"]["mean"] == pytest.approx(sum(accs) / 2)
    assert scratch["test_acc"]["std"] == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)
    assert (compare_dir / "results.csv").read_text().splitlines()[1].startswith("scratch,2,0,")
    assert "±" in result.stdout and "test acc" in result.stdout


def test_compare_uses_the_same_data_order_and_init_for_each_model(in_tmp, invoke, small_args):
    # With dropout off, scratch and builtin are the same network: same init and data order
    # must then give the very same numbers.
    args = ["compare", "scratch", "builtin", *small_args(), "--set", "model.dropout_1=0", "--set", "model.dropout_2=0"]
    assert invoke(*args, "--run-dir", "runs/cmp").exit_code == 0
    rows = json.loads((in_tmp / "runs" / "cmp" / "results.json").read_text())["cells"]
    assert rows[0]["test_loss"] == rows[1]["test_loss"] and rows[0]["train_loss"] == rows[1]["train_loss"]


def test_config_show_round_trips(tmp_path, invoke):
    result = invoke("config", "show", "--config", "configs/smoke.yaml", "--set", "optim.lr=0.05", "--model", "builtin")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["optim"]["lr"] == 0.05 and shown["model"]["kind"] == "builtin" and shown["name"] == "smoke"
    saved = tmp_path / "resolved.yaml"
    saved.write_text(result.stdout)
    assert invoke("config", "show", "--config", saved).stdout == result.stdout


def test_data_info_lists_both_splits(fake_data, invoke):
    result = invoke("data", "info", "--data-dir", fake_data)
    assert result.exit_code == 0, result.output
    assert "60,000" in result.stdout and "10,000" in result.stdout


def test_data_fetch_uses_data_already_present(fake_data, monkeypatch, no_system_data, invoke):
    monkeypatch.setenv("DROPCLI_DATA", str(fake_data))
    result = invoke("data", "fetch")
    assert result.exit_code == 0 and f"available in {fake_data}" in result.stdout


def test_data_info_without_data_says_how_to_get_it(no_system_data, tmp_path, invoke):
    assert_one_line_error(invoke("data", "info"), "Fashion-MNIST not found")


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--config", "missing.yaml"], "config file missing.yaml not found"),
        (
            ["train", "--model", "dropit"],
            "--model: model.kind must be one of scratch, builtin, none, dropconnect, gaussian, got 'dropit'",
        ),
        (["train", "--set", "optim.lr"], "bad --set 'optim.lr': expected KEY=VALUE"),
        (["train", "--set", "optim.lrr=1"], "unknown key 'optim.lrr' (did you mean 'optim.lr'?)"),
        (
            ["train", "--set", "model.dropout_1=1.5"],
            "--set model.dropout_1=1.5: model.dropout must be rates between 0 and 1, got [1.5, 0.5]",
        ),
        (["train", "--device", "tpu"], "--device: device must be auto, cpu, cuda, cuda:N (N < 10000) or mps, got 'tpu'"),
        (
            ["compare", "scratch", "dropit"],
            "MODELS: model.kind must be one of scratch, builtin, none, dropconnect, gaussian, got 'dropit'",
        ),
        (["compare", "scratch", "scratch"], "MODELS names scratch more than once"),
        (["config", "show", "--set", "train.epochs=0"], "train.epochs must be >= 1, got 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(fake_data, in_tmp, args, message, invoke):
    if args[0] in ("train", "compare"):
        args = [*args, "--data-dir", fake_data]
    assert_one_line_error(invoke(*args), message)
    assert not (in_tmp / "runs").exists()  # nothing written


def test_malformed_yaml_names_the_line(tmp_path, invoke):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  dropout_1: 0.5\n  dropout_2: [0.5\n")
    assert_one_line_error(invoke("train", "--config", path), f"{path}: malformed YAML at line")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_but_unavailable(fake_data, in_tmp, invoke):
    result = invoke("train", "--device", "cuda", "--data-dir", fake_data)
    assert_one_line_error(result, "device 'cuda' was asked for but CUDA is not available here")


def test_no_data_anywhere(in_tmp, no_system_data, invoke):
    result = invoke("train", "--device", "cpu")
    assert_one_line_error(result, "could not download Fashion-MNIST into")
    assert "apt-get install dataset-fashion-mnist" in result.stderr
    assert not (in_tmp / "runs").exists()


def test_existing_run_directory_is_refused_and_left_alone(in_tmp, invoke, small_args):
    run_dir = in_tmp / "runs" / "taken"
    run_dir.mkdir(parents=True)
    (run_dir / runs.METRICS_FILE).write_text("precious\n")
    result = invoke("train", *small_args(), "--run-dir", run_dir)
    assert_one_line_error(result, f"run directory {run_dir} already exists")
    assert (run_dir / runs.METRICS_FILE).read_text() == "precious\n"
    assert [p.name for p in run_dir.iterdir()] == ["metrics.jsonl"]


@pytest.mark.system
def test_help_and_config_show_do_not_import_torch(invoke):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from dropcli.cli import app\n"
        "for args in (['--help'], ['train', '--help'], ['config', 'show']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "print('torch' in sys.modules)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


@pytest.mark.system
def test_python_dash_m_runs_the_same_cli():
    result = subprocess.run([sys.executable, "-m", "dropcli", "config", "show"], capture_output=True, text=True)
    assert result.returncode == 0 and "hidden:\n  - 256\n  - 256\n" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["train"],
        ["compare"],
        ["sweep"],
        ["evaluate"],
        ["plot"],
        ["runs"],
        ["config", "show"],
        ["data", "fetch"],
        ["data", "info"],
    ],
)
def test_every_command_has_help_with_an_example(invoke, command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Example: dropcli " + command[0] in result.stdout


def test_the_live_display_gets_progress_and_epochs(fake_data, tmp_path):
    # On a terminal the Reporter draws a progress bar fed by the per-batch hook.
    import io

    from rich.console import Console

    from dropcli import data
    from dropcli.cli.display.report import Reporter
    from dropcli.config import load_config
    from dropcli.runs import loop

    config = load_config(
        None, [f"data.root={fake_data}", "data.train_limit=600", "data.test_limit=200", "train.epochs=2", "train.batch_size=50"]
    )
    screen = io.StringIO()
    reporter = Reporter(Console(file=screen, force_terminal=True, width=120))
    calls = []
    original = reporter.batch_progress
    reporter.batch_progress = lambda *args: (calls.append(args[:3]), original(*args))
    (tmp_path / "r").mkdir()
    loop.train_run(config, data.load(config.data, 0, torch.device("cpu")), torch.device("cpu"), tmp_path / "r", [reporter])
    assert (1, 0, 12) in calls and (2, 12, 12) in calls
    # The bar itself is transient (and drawn only at Rich's refresh rate); the epoch table stays.
    import re

    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # without the terminal's control codes
    assert "───" in shown and "test acc" in shown  # the epoch table, drawn on the terminal


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_no_help_text_loses_text_to_rich_markup():
    """Every help string shows whole in --help: Rich markup such as [tensorboard] must be escaped."""
    import re

    import typer.main
    from typer.testing import CliRunner

    from dropcli.cli import app

    runner = CliRunner()
    checked = 0
    for path, command in _commands(typer.main.get_command(app)):
        output = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"}).stdout
        shown = " ".join(output.replace("│", " ").split())
        texts = [getattr(param, "help", None) for param in command.params] + [command.epilog]
        for text in filter(None, texts):
            expected = " ".join(text.replace("\\[", "[").split())
            assert expected in shown, f"dropcli {' '.join(path)} --help lost text of: {expected}"
            checked += 1
        for fragment in re.findall(r"\\?\[[^\]]*\]", command.help or ""):  # the docstring's bracketed words
            assert fragment.lstrip("\\") in shown, f"dropcli {' '.join(path)} --help lost {fragment}"
    assert checked > 50
