"""tune on a real PostgreSQL server (the `postgres` fixture): worker processes share one study and
train exactly its trials; a worker killed outright has its trial retried by another; Ctrl-C on
one leaves the others going; the server stopped under a study is one line, exit 2, and the study
goes on when it is back. Every wait is on a state the test can see, never on a sleep's length."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PATIENCE_S, assert_exactly, only, wait_for_a_trained_epoch
from dropcli import runs

pytest.importorskip("optuna")
pytestmark = pytest.mark.system

SEARCH = ["--set", "data.val_split=0.2", "--space", "optim.lr=0.001:1:log", "--space", "model.hidden=32x32,64"]


def tune_command(fake_data, url: str, run_dir: Path, trials: int, epochs: int) -> list[str]:
    data = ["--data-dir", str(fake_data), "--device", "cpu", "--set", "data.train_limit=600", "--set", "data.test_limit=200"]
    return [
        *[sys.executable, "-m", "dropcli", "tune", *data, "--set", f"train.epochs={epochs}", *SEARCH],
        *["--trials", str(trials), "--pruner", "none", "--storage", url, "--run-dir", str(run_dir), "-q"],
    ]


def start(command: list[str]) -> subprocess.Popen:
    # Heartbeats every 2 s: a killed worker's trial is found stale 4 s after its last beat.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DROPCLI_HEARTBEAT": "2", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal would start it
    )


def finished(processes: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    outputs = [process.communicate(timeout=PATIENCE_S) for process in processes]
    return [(process.returncode, out, err) for process, (out, err) in zip(processes, outputs)]


def trained(output: str) -> int:
    return int(re.search(r"this command trained (\d+) trial", output).group(1))


def study_trials(url: str, name: str = "default"):
    import optuna

    from dropcli.experiments.tune_storage import driver_url

    return optuna.load_study(study_name=name, storage=driver_url(url)).get_trials(deepcopy=False)


def test_three_workers_train_exactly_the_study_and_a_rerun_continues_it(postgres, fake_data, tmp_path):
    url = postgres.url("three")
    command = tune_command(fake_data, url, tmp_path / "study", trials=6, epochs=1)
    results = finished([start(command) for _ in range(3)])
    assert all(code == 0 for code, _, _ in results), results
    assert sum(trained(out) for _, out, _ in results) == 6
    assert_exactly(study_trials(url), 6)
    ((code, out, err),) = finished([start(command)])
    assert code == 0 and trained(out) == 0, err  # the study is whole
    ((code, out, err),) = finished([start(tune_command(fake_data, url, tmp_path / "study", trials=7, epochs=1))])
    assert code == 0 and trained(out) == 1, err  # raising --trials searches on
    assert_exactly(study_trials(url), 7)
    assert "postgresql://dropcli@127.0.0.1" in out and (tmp_path / "study" / "best.yaml").is_file()


def test_a_worker_killed_mid_trial_has_its_trial_retried_by_another(postgres, fake_data, tmp_path):
    url = postgres.url("killed")
    command = tune_command(fake_data, url, tmp_path / "study", trials=3, epochs=3)
    doomed = start(command)
    run_dir = wait_for_a_trained_epoch(tmp_path / "study", doomed)
    doomed.send_signal(signal.SIGKILL)  # no handler runs: the trial is left running in the study
    doomed.wait(timeout=PATIENCE_S)
    lost = only(study_trials(url))
    assert lost.state.name == "RUNNING"
    results = finished([start(command), start(command)])
    assert all(code == 0 for code, _, _ in results), results
    trials = study_trials(url)
    kept = assert_exactly(trials, 3)
    assert trials[0].state.name == "FAIL"  # failed for its stale heartbeat ...
    retry = next(t for t in kept if t.user_attrs.get("retry_of") == 0)  # ... and retried, with its values and run
    assert retry.params == lost.params and retry.user_attrs["run"] == run_dir.name
    assert sum(trained(out) for _, out, _ in results) == 3
    # The retry went on from the killed run's last checkpoint: each epoch once, three in all.
    assert [m["epoch"] for m in runs.read_metrics(run_dir)] == [1, 2, 3]


def test_ctrl_c_on_one_worker_leaves_the_others_going(postgres, fake_data, tmp_path):
    url = postgres.url("interrupted")
    command = tune_command(fake_data, url, tmp_path / "study", trials=3, epochs=3)
    stopped = start(command)
    wait_for_a_trained_epoch(tmp_path / "study", stopped)
    other = start(command)
    stopped.send_signal(signal.SIGINT)
    (code, _, err), (other_code, _, other_err) = finished([stopped, other])
    assert code == 130 and "the study is kept" in err, err
    assert other_code == 0, other_err  # it took up the interrupted trial and finished the study
    assert_exactly(study_trials(url), 3)


def test_the_server_stopped_mid_study_is_one_line_and_the_study_goes_on_when_it_is_back(postgres, fake_data, tmp_path):
    url = postgres.url("stopped")
    command = tune_command(fake_data, url, tmp_path / "study", trials=2, epochs=3)
    worker = start(command)
    wait_for_a_trained_epoch(tmp_path / "study", worker)
    postgres.stop()
    try:
        ((code, _, err),) = finished([worker])
    finally:
        postgres.start()
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: --storage postgresql://dropcli@127.0.0.1") and "run the same command to continue" in err
    ((code, out, err),) = finished([start(command)])
    assert code == 0, err
    assert_exactly(study_trials(url), 2)
