"""dropcli as a user installs it: from a built wheel, run from an empty directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.system  # processes, signals or a wheel: `pytest -m 'not system'` skips them

REPOSITORY = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, installed (without dependencies) into a fresh folder."""
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in this environment")
    root = tmp_path_factory.mktemp("installed")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(REPOSITORY),
            "-w",
            str(root / "dist"),
        ],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (root / "dist").glob("dropcli-*.whl")
    target = root / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    return target


def run_installed(target, cwd, *args):
    # This environment's torch, typer and rich; dropcli itself only from the installed wheel.
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([str(target / "bin" / "dropcli"), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_wheel_trains_a_shipped_config_from_an_empty_directory(installed, tmp_path, fake_data):
    where = run_installed(installed, tmp_path, "config", "show", "-c", "smoke", "--json")
    assert where.returncode == 0 and '"name": "smoke"' in where.stdout
    check = subprocess.run(
        [sys.executable, "-c", "import dropcli; print(dropcli.__file__)"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(installed)},
        capture_output=True,
        text=True,
    )
    assert check.stdout.startswith(str(installed))  # not this checkout
    result = run_installed(
        installed,
        tmp_path,
        "train",
        "-c",
        "smoke",
        "--data-dir",
        fake_data,
        "--device",
        "cpu",
        "--set",
        "data.train_limit=500",
        "--set",
        "train.epochs=1",
        "-q",
    )
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "runs").iterdir())[0].name.startswith("smoke-scratch-")
    listed = run_installed(installed, tmp_path, "config", "list")
    for name in ("default", "smoke", "long", "srivastava"):
        assert name in listed.stdout
    assert run_installed(installed, tmp_path, "--version").stdout.strip().startswith("dropcli ")


def test_the_wheel_copies_a_config_and_runs_a_study_file(installed, tmp_path, fake_data):
    copied = run_installed(installed, tmp_path, "config", "cp", "smoke", "mine.yaml")
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "mine.yaml").read_text().startswith("# A CI smoke run")
    (tmp_path / "study.yaml").write_text("config: smoke\ngrid:\n  model.dropout_1: [0, 0.5]\nseeds: 1\n")
    result = run_installed(
        installed,
        tmp_path,
        "sweep",
        "--plan",
        "study.yaml",
        "--data-dir",
        fake_data,
        "--device",
        "cpu",
        "--set",
        "data.train_limit=300",
        "--set",
        "data.test_limit=100",
        "--set",
        "train.epochs=1",
        "--run-dir",
        "s",
        "-q",
    )
    assert result.returncode == 0, result.stderr
    import json

    plan = json.loads((tmp_path / "s" / "plan.json").read_text())
    assert plan["config"]["name"] == "smoke" and plan["grids"] == [["model.dropout_1", [0.0, 0.5]]]


def test_a_missing_config_name_lists_the_shipped_ones(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "-c", "defualt")
    assert (
        result.exit_code == 2
        and "no config file or shipped config named 'defualt'; shipped: best, best-any, default, long, paper, smoke, srivastava"
        in result.stderr
    )
    (tmp_path / "smoke").write_text("name: mine\n")  # a file that exists is a file, even with a shipped name
    assert "name: mine" in invoke("config", "show", "-c", "smoke").stdout


def test_small_conventions(invoke, fake_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "<bool>" not in invoke("train", "--help").stdout and "--install-completion" in invoke("--help").stdout
    dry = invoke("train", "-c", "smoke", "--data-dir", fake_data, "--device", "cpu", "--dry-run")
    assert dry.exit_code == 0 and "data: " in dry.stdout and "device: cpu" in dry.stdout and "name: smoke" in dry.stdout
    assert not (tmp_path / "runs").exists()
    shown = invoke("config", "show", "-c", "smoke", "--model", "builtin", "--seed", "3", "--stats", "--json")
    import json

    config = json.loads(shown.stdout)
    assert config["model"]["kind"] == "builtin" and config["seed"] == 3 and config["metrics"]["activation_stats"] is True
