"""A run or experiment directory is written by one process at a time: others are refused."""

import signal
import subprocess
import sys
import time

import pytest

from conftest import PATIENCE_S
from dropcli import runs

pytestmark = pytest.mark.system  # processes, signals or a wheel: `pytest -m 'not system'` skips them


def start(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "dropcli", *map(str, args), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def wait_for(path, process, timeout=PATIENCE_S):
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear in time"
        time.sleep(0.005)


def test_a_run_still_training_cannot_be_resumed_by_another_process(in_tmp, invoke, small_args):
    run_dir = in_tmp / "r"
    first = start("train", *small_args(epochs=500, train=3000, test=500), "--run-dir", run_dir)
    try:
        wait_for(run_dir / runs.LAST_CHECKPOINT, first)
        result = invoke("train", "--resume", run_dir, "--set", "train.epochs=600", "-q")
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == (
            f"error: run directory {run_dir} is in use by another dropcli process; wait for it to finish, or stop it first"
        )
        assert first.poll() is None  # the first run goes on, untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The kernel dropped the dead process's lock: no stale lock stands in the way.
    done = len((run_dir / runs.METRICS_FILE).read_text().splitlines())
    result = invoke("train", "--resume", run_dir, "--set", f"train.epochs={done + 1}", "-q")
    assert result.exit_code == 0, result.output
    epochs = [line.split(",")[0] for line in (run_dir / runs.METRICS_FILE).read_text().splitlines()]
    assert epochs == [f'{{"epoch": {n}' for n in range(1, done + 2)]  # no epoch twice


def test_two_sweeps_into_one_directory(in_tmp, invoke, small_args):
    args = ["sweep", *small_args(epochs=200, train=3000, test=500), "--grid", "optim.lr=0.05,0.1", "--run-dir", in_tmp / "s"]
    first = start(*args)
    try:
        wait_for(in_tmp / "s" / "plan.json", first)
        result = invoke(*args)
        assert result.exit_code == 2 and "experiment directory" in result.stderr and "is in use" in result.stderr
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
