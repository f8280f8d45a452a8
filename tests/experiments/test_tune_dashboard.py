"""optuna-dashboard opens a dropcli study: started on a free port of 127.0.0.1 with the study's
journal file, it serves the study's trials over HTTP, and stops when told."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import PATIENCE_S

pytest.importorskip("optuna")
pytest.importorskip("optuna_dashboard", reason="the dashboard is an extra: pip install 'dropcli[tune-dashboard]'")
pytestmark = pytest.mark.system


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_json(url: str, server: subprocess.Popen):
    """The JSON at `url` once the server answers (it is still starting until then)."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in time")


def test_optuna_dashboard_serves_a_dropcli_study(in_tmp, invoke, small_args):
    import optuna

    args = ["--set", "data.val_split=0.2", "--space", "optim.lr=0.001:1:log", "--trials", 3, "--pruner", "none", "-q"]
    assert invoke("tune", *small_args(epochs=1), *args).exit_code == 0
    journal = in_tmp / "runs" / "tune-default" / "study.journal"
    port = free_port()
    executable = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or "optuna-dashboard"
    server = subprocess.Popen(
        [executable, str(journal), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        studies = read_json(f"http://127.0.0.1:{port}/api/studies", server)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["default"]
        served = read_json(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}?after=0", server)["trials"]
    finally:
        server.terminate()
        server.communicate(timeout=PATIENCE_S)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    trials = optuna.load_study(study_name="default", storage=JournalStorage(JournalFileBackend(str(journal)))).trials
    assert [(t["number"], t["state"], t["values"]) for t in served] == [(t.number, "Complete", t.values) for t in trials]
