"""dropcli under torchrun, for real: gloo on this CPU, workers on localhost."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dropcli
from conftest import PATIENCE_S
from dropcli import runs

pytestmark = pytest.mark.system  # processes, signals or a wheel: `pytest -m 'not system'` skips them

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
SIZES = ["--set", "data.train_limit=1200", "--set", "data.test_limit=400"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(*args, workers=2, cwd, timeout=PATIENCE_S):
    command = [*TORCHRUN, "--standalone", "--nproc-per-node", str(workers), "-m", "dropcli", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def final(run_dir):
    return json.loads((run_dir / runs.SUMMARY_FILE).read_text())["final"]


def cells(experiment_dir):
    return {
        json.dumps(c["values"]): c["test_acc"]["mean"] for c in json.loads((experiment_dir / "results.json").read_text())["cells"]
    }


def test_ddp_on_two_workers_matches_one_process(in_tmp, invoke, fake_data):
    # Without dropout the model is deterministic, so only float rounding may differ.
    args = [
        "train",
        "--data-dir",
        fake_data,
        "--device",
        "cpu",
        *SIZES,
        "--set",
        "train.epochs=3",
        "--model",
        "none",
        "--set",
        "train.batch_size=100",
        "-q",
    ]
    assert invoke(*args, "--run-dir", "alone").exit_code == 0
    result = torchrun(*args, "--run-dir", "ddp", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    alone, ddp = final(in_tmp / "alone"), final(in_tmp / "ddp")
    assert abs(alone["test_acc"] - ddp["test_acc"]) <= 0.003
    for key in ("train_loss", "test_loss"):
        assert ddp[key] == pytest.approx(alone[key], rel=1e-4)
    assert json.loads((in_tmp / "ddp" / runs.SUMMARY_FILE).read_text())["workers"] == 2
    assert result.stdout.count("run saved to") == 1  # rank 0 alone reports


def test_ddp_refuses_what_it_cannot_train_before_making_the_run_directory(in_tmp, fake_data):
    # One refusal end to end (the fused engine's is tested without torchrun in test_fused.py).
    override, message = "train.batch_size=255", "train.batch_size=255 is the global batch and must split evenly over 2 workers"
    args = ["--data-dir", fake_data, "--device", "cpu", *SIZES, "--set", override, "--run-dir", "r"]
    result = torchrun("train", *args, cwd=in_tmp)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (in_tmp / "r").exists()  # so the same command works once the setting is fixed
    # torchrun reports a failed worker with its own traceback; none comes from dropcli's code. The
    # package's own directory, not the word "dropcli/": a clone may lie under a directory of that name.
    package = str(Path(dropcli.__file__).parent) + os.sep
    assert package not in "".join(line for line in result.stderr.splitlines() if line.strip().startswith("File "))


def test_a_sweep_on_two_workers_equals_one_process_with_the_workers_thread_count(in_tmp, fake_data):
    # The README's statement: a worker's trial is the same run as alone, bit for bit, when both
    # use the same number of torch threads (a worker takes cores / workers); the thread count
    # changes only the order of float sums, so with other counts the last digits may differ.
    args = [
        "sweep",
        "--data-dir",
        fake_data,
        "--device",
        "cpu",
        *SIZES,
        "--set",
        "train.epochs=2",
        "--grid",
        "model.dropout_1=0,0.5",
        "--grid",
        "optim.lr=0.05,0.1",
        "-q",
    ]
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    alone = subprocess.run(
        [sys.executable, "-m", "dropcli", *map(str, args), "--run-dir", "alone"],
        cwd=in_tmp,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        env={**os.environ, "OMP_NUM_THREADS": threads},
    )
    assert alone.returncode == 0, alone.stderr
    result = torchrun(*args, "--run-dir", "shared", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    for name in (path.name for path in (in_tmp / "alone").glob("*_seed0")):
        assert final(in_tmp / "shared" / name) | {"seconds": 0, "samples_per_s": 0} == final(in_tmp / "alone" / name) | {
            "seconds": 0,
            "samples_per_s": 0,
        }, name
    assert len(list((in_tmp / "alone").glob("*_seed0"))) == 4
    assert "final test accuracy" in result.stdout


def test_two_nodes_on_localhost_finish_one_sweep(in_tmp, fake_data):
    args = [
        "sweep",
        "--data-dir",
        fake_data,
        "--device",
        "cpu",
        *SIZES,
        "--set",
        "train.epochs=1",
        "--grid",
        "model.dropout_1=0,0.3,0.6",
        "--seeds",
        "2",
        "--run-dir",
        "s",
        "-q",
    ]
    # A free port is freed again before torchrun binds it, and another process may take it in
    # between: then the nodes fail to meet, and the test tries again on another port.
    for _ in range(3):
        outputs, codes = two_nodes(args, free_port(), in_tmp)
        if codes == [0, 0] or not any("address already in use" in err.lower() for _, err in outputs):
            break
        shutil.rmtree(in_tmp / "s", ignore_errors=True)
    assert codes == [0, 0], outputs
    report = json.loads((in_tmp / "s" / "results.json").read_text())
    assert [cell["seeds"] for cell in report["cells"]] == [2, 2, 2]
    assert len((in_tmp / "s" / "trials.jsonl").read_text().splitlines()) == 6


def two_nodes(args, port: int, cwd) -> tuple[list[tuple[str, str]], list[int]]:
    """torchrun on two nodes of one process each, meeting at localhost:`port`: (outputs, exit codes)."""
    nodes = [
        subprocess.Popen(
            [
                *TORCHRUN,
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--rdzv-id",
                "dropcli-test",
                "-m",
                "dropcli",
                *map(str, args),
            ],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=PATIENCE_S) for node in nodes]
    return outputs, [node.returncode for node in nodes]


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def test_a_killed_worker_stops_the_sweep_and_a_rerun_trains_nothing_twice(in_tmp, fake_data):
    args = [
        "sweep",
        "--data-dir",
        fake_data,
        "--device",
        "cpu",
        "--set",
        "data.train_limit=3000",
        "--set",
        "data.test_limit=500",
        "--set",
        "train.epochs=6",
        "--grid",
        "optim.lr=0.02,0.04,0.06,0.08,0.1,0.12",
        "--run-dir",
        "s",
        "-q",
    ]
    job = subprocess.Popen(
        [*TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "dropcli", *map(str, args)],
        cwd=in_tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    record = in_tmp / "s" / "trials.jsonl"
    deadline = time.monotonic() + PATIENCE_S
    while not (record.exists() and record.read_text().count("\n") >= 2):
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, "the first round did not finish in time"
        time.sleep(0.01)
    workers = children(job.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    started = time.monotonic()
    _, stderr = job.communicate(timeout=PATIENCE_S)  # far below the 30 min a stuck collective would wait
    assert time.monotonic() - started < PATIENCE_S and job.returncode != 0
    # The hint names the torchrun launch to continue with.
    assert (
        "the finished trials are kept; continue with the same command (torchrun --standalone --nproc-per-node 2 -m dropcli ...) "
        "and --run-dir s" in stderr
    ), stderr[-3000:]
    recorded = [json.loads(line)["name"] for line in record.read_text().splitlines()]
    finished_at = {name: (in_tmp / "s" / name / runs.SUMMARY_FILE).stat().st_mtime_ns for name in recorded}
    assert len(recorded) < 6
    # Rerun with one worker: the recorded trials are not trained again.
    again = subprocess.run(
        [sys.executable, "-m", "dropcli", *map(str, args)], cwd=in_tmp, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert {name: (in_tmp / "s" / name / runs.SUMMARY_FILE).stat().st_mtime_ns for name in recorded} == finished_at
    assert len(record.read_text().splitlines()) == 6


def test_without_torchrun_nothing_distributed_is_used(in_tmp, fake_data):
    # `import torch` loads torch.distributed itself; what must not happen is dropcli's side of it.
    code = (
        "import sys, torch\n"
        "from typer.testing import CliRunner\n"
        "from dropcli.cli import app\n"
        f"args = ['sweep', '--data-dir', {str(fake_data)!r}, '--device', 'cpu', '--set', 'data.train_limit=300',\n"
        "        '--set', 'data.test_limit=100', '--set', 'train.epochs=1', '--grid', 'optim.lr=0.1', '-q']\n"
        "assert CliRunner().invoke(app, args).exit_code == 0\n"
        "print('dropcli.parallel.torchrun' in sys.modules, torch.distributed.is_initialized())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    output = subprocess.run([sys.executable, "-c", code], cwd=in_tmp, capture_output=True, text=True, env=env, check=True).stdout
    assert output.strip() == "False False"


@pytest.mark.parametrize(
    "shape", [[], ["--set", "model.hidden=64x32x16", "--set", "model.dropout=[0.2,0.5,0.3]"]], ids=["chapter", "3 layers"]
)
def test_ddp_resume_continues_exactly(in_tmp, fake_data, without_times, shape):
    # With dropout on: each worker's mask generator must continue where it stopped.
    args = ["--data-dir", fake_data, "--device", "cpu", *SIZES, "--set", "train.batch_size=100", *shape, "-q"]
    for epochs, name in ((3, "whole"), (2, "part")):
        result = torchrun("train", *args, "--set", f"train.epochs={epochs}", "--run-dir", name, cwd=in_tmp)
        assert result.returncode == 0, result.stderr
    result = torchrun("train", "--resume", "part", "--set", "train.epochs=3", "-q", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    read = lambda name: [json.loads(line) for line in (in_tmp / name / runs.METRICS_FILE).read_text().splitlines()]  # noqa: E731
    assert without_times(read("part")) == without_times(read("whole"))


def test_under_torchrun_a_refusal_and_evaluate_print_once(in_tmp, fake_data, invoke):
    result = torchrun(
        "train", "--data-dir", fake_data, "--device", "cpu", "--set", "model.nosuch=1", cwd=in_tmp, timeout=PATIENCE_S
    )
    assert result.returncode != 0
    dropcli_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(dropcli_lines) == 1 and dropcli_lines[0].startswith("error: --set model.nosuch=1: unknown key")  # rank 0 alone
    args = ["--data-dir", fake_data, "--device", "cpu", *SIZES, "--set", "train.epochs=1", "-q"]
    assert invoke("train", *args, "--run-dir", "r").exit_code == 0
    result = torchrun("evaluate", "r", "--json", cwd=in_tmp, timeout=PATIENCE_S)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["checkpoint"] == "r/checkpoints/last.pt"  # one JSON document, not one per worker
