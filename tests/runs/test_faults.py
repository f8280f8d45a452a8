"""Faults of the machine, for real: a full disk, a read-only file system, SIGTERM, a writer
killed mid-write. What was saved stays saved and agrees with itself, and the run continues
once the fault is gone."""

import json
import os
import signal
import subprocess

import pytest

from conftest import PATIENCE_S, only
from dropcli import runs
from dropcli.runs import checkpoints

pytestmark = pytest.mark.system  # processes, signals or a wheel: `pytest -m 'not system'` skips them


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs of our own, mounted read-write at tmp_path/disk (root only)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip() or 'not root'})")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def remount(mount_point, options):
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount_point)], check=True)


def test_a_full_disk_stops_with_one_line_keeps_the_last_good_epoch_and_resumes(tmpfs, in_tmp, invoke, small_args, without_times):
    # Two 1 MiB checkpoints (last and, with a validation split, best) plus a temporary third fill
    # 3 MiB during the second epoch's writes.
    run_dir = tmpfs / "r"
    with_val = [*small_args(epochs=4), "--set", "data.val_split=0.2"]
    result = invoke("train", *with_val, "--run-dir", run_dir, "-q")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = only(result.stderr.strip().splitlines())
    assert line.startswith("error: cannot write ") and "No space left on device" in line
    assert f"continue with: dropcli train --resume {run_dir}" in line
    saved = checkpoints.load(run_dir / runs.LAST_CHECKPOINT)
    metrics = runs.read_metrics(run_dir)
    assert saved["epoch"] == len(metrics) >= 1  # the metrics agree with the last good checkpoint
    assert not [p.name for p in run_dir.rglob(".*")], "orphan temporary files"
    remount(tmpfs, "size=50m")
    result = invoke("train", "--resume", run_dir, "-q")
    assert result.exit_code == 0, result.output
    assert invoke("train", *with_val, "--run-dir", in_tmp / "whole", "-q").exit_code == 0
    assert without_times(runs.read_metrics(run_dir)) == without_times(runs.read_metrics(in_tmp / "whole"))


def test_a_read_only_file_system_gets_one_line_and_exit_1(tmpfs, invoke, small_args):
    (tmpfs / "runs").mkdir()
    remount(tmpfs, "ro")
    result = invoke("train", *small_args(), "--run-dir", tmpfs / "runs" / "r", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output  # a fault of the machine, as the README's table says
    assert result.stderr.strip() == f"error: cannot create run directory {tmpfs / 'runs' / 'r'}: Read-only file system"
    result = invoke("sweep", "--grid", "optim.lr=0.1", *small_args(), "--run-dir", tmpfs / "runs" / "s", "-q")
    assert result.exit_code == 1 and result.stderr.strip().startswith("error: cannot create experiment directory")


def fill(mount_point):
    """Write into `mount_point` until its file system is full."""
    with open(mount_point / "filler", "wb") as filler:
        with pytest.raises(OSError):
            while True:
                filler.write(b"x" * 65536)
                filler.flush()


@pytest.mark.parametrize("named", [True, False], ids=["run-dir", "default-dir"])
def test_a_disk_full_before_anything_is_written_says_nothing_was_trained(tmpfs, monkeypatch, invoke, small_args, named):
    monkeypatch.chdir(tmpfs)
    (tmpfs / "runs").mkdir()
    fill(tmpfs)
    result = invoke("train", *small_args(epochs=1), *(["--run-dir", "runs/r"] if named else []), "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = only(result.stderr.strip().splitlines())
    assert "No space left on device" in line and "nothing was trained and nothing is kept; run the same command again" in line
    assert "--resume" not in line
    assert list((tmpfs / "runs").iterdir()) == []  # no empty run directory blocks the same command
    (tmpfs / "filler").unlink()
    if named:
        assert invoke("train", *small_args(epochs=1), "--run-dir", "runs/r", "-q").exit_code == 0


def test_sigterm_is_handled_like_ctrl_c(in_tmp, small_args, start_training, wait_for_epochs):
    run_dir = in_tmp / "r"
    process = start_training(small_args(epochs=300, train=3000, test=500), run_dir)
    wait_for_epochs(run_dir, 2, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=PATIENCE_S)
    assert process.returncode == 143 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted; the finished epochs are kept in {run_dir}; continue with: dropcli train --resume {run_dir}"
    )
    summary = json.loads((run_dir / runs.SUMMARY_FILE).read_text())
    done = len(runs.read_metrics(run_dir))
    assert summary["status"] == "interrupted" and summary["reason"] == "stopped by SIGTERM"
    assert summary["epochs"] == done == checkpoints.load(run_dir / runs.LAST_CHECKPOINT)["epoch"]


def test_interrupts_in_quick_succession_leave_files_that_agree(in_tmp, small_args, start_training, wait_for_epochs):
    # Small epochs, so that a signal often lands while an epoch's files are being written.
    for attempt in range(5):
        run_dir = in_tmp / f"r{attempt}"
        process = start_training(small_args(epochs=10_000, train=300, test=100), run_dir)
        wait_for_epochs(run_dir, 3 + attempt, process)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=PATIENCE_S)
        summary = json.loads((run_dir / runs.SUMMARY_FILE).read_text())
        saved = checkpoints.load(run_dir / runs.LAST_CHECKPOINT)["epoch"]
        assert summary["epochs"] == saved == len(runs.read_metrics(run_dir)), attempt


def test_a_writer_killed_mid_write_leaves_nothing_behind_on_the_next_start(in_tmp, invoke, small_args):
    run_dir = in_tmp / "r"
    assert invoke("train", *small_args(epochs=1), "--run-dir", run_dir, "-q").exit_code == 0
    # What a SIGKILL in the middle of torch.save and of a summary write leaves.
    (run_dir / "checkpoints" / ".last.pt.1a2b3c4d.tmp").write_bytes(b"half a checkpoint")
    (run_dir / ".summary.json.5e6f7a8b.tmp").write_text('{"status": "fin')
    assert invoke("train", "--resume", run_dir, "--set", "train.epochs=2", "-q").exit_code == 0
    assert not [p.name for p in run_dir.rglob(".*")]


def test_run_files_share_one_permission_mode(in_tmp, invoke, small_args):
    run_dir = in_tmp / "r"
    assert invoke("train", *small_args(epochs=1), "--run-dir", run_dir, "-q").exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in run_dir.rglob("*") if p.is_file()}
    assert set(modes.values()) == {0o666 & ~umask}, modes
