"""Shared fixtures: a stand-in Fashion-MNIST written in the real IDX format.

The files have the real sizes (60,000 / 10,000 images of 28x28), so the real loader and its
checks run unchanged. Each class is a fixed random template plus noise, so a model can learn it.
"""

import gzip
import os
import signal
import time
from pathlib import Path

import pytest
import torch

import dropcli
from dropcli import data, runs

# This checkout's package: what the suite tests, in its own process and in every child it starts.
CHECKOUT_SRC = Path(__file__).resolve().parents[1] / "src"

# How long a test waits for a command or subprocess before it calls it stuck. Generous: beside
# other work on a small machine, a step that takes 5 s alone has taken ten times that, and a
# limit that fails a healthy run is worse than a slow report of a hung one.
PATIENCE_S = 300


# tune's command line with nothing given (experiments/tune.py's resolve and tune_stored's
# stored_search take it as `given`): a test sets the entries it needs.
TUNE_NOTHING_GIVEN = dict.fromkeys(
    ("space", "trials", "timeout", "pruner", "grace", "reduction", "bootstrap", "sampler", "storage", "study")
    + ("final_seeds", "run_dir", "objective", "pick", "enqueue")
)


def only(items):
    """The one item of `items`, checked by an assertion (an unpacking `(x,) = items` that fails
    raises a ValueError, which mutation testing rightly does not count as a test catching a bug)."""
    items = list(items)
    assert len(items) == 1, f"expected exactly one, got {len(items)}: {items!r:.300}"
    return items[0]


def refusal(call, *args, **kwargs) -> str:
    """The one-line refusal (DropcliError) that `call(*args, **kwargs)` raises, its words to check.
    Any other exception, or none, fails by assertion: a KeyError from deep inside is the bug the
    test is there to report, not a crash that mutation testing would not count as caught."""
    from dropcli.errors import DropcliError

    try:
        call(*args, **kwargs)
    except DropcliError as error:
        return str(error)
    except Exception as error:
        pytest.fail(f"{call.__name__} raised {error!r} where a one-line refusal was due")
    pytest.fail(f"{call.__name__} refused nothing")


def accepted(what: str, call, *args, refused_by=None, **kwargs):
    """What `call(*args, **kwargs)` returns; a refusal of it fails by assertion, naming `what` was
    refused (a valid input refused is the bug such a test reports). A refusal is a DropcliError,
    or what `refused_by` names for code that refuses as torch does (ValueError, TypeError)."""
    from dropcli.errors import DropcliError

    refusals = refused_by or DropcliError
    try:
        return call(*args, **kwargs)
    except refusals as error:
        pytest.fail(f"{what} refused: {error}")


def idx_bytes(tensor: torch.Tensor, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in tensor.shape)
    return header + tensor.to(torch.uint8).numpy().tobytes()


def make_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    templates = torch.randint(0, 256, (10, 28, 28), generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (n,), generator=generator)
    noise = torch.randint(-40, 41, (n, 28, 28), generator=generator)
    images = (templates[labels] + noise).clamp(0, 255)
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_fashion_mnist(directory: Path, gz: bool, sizes: dict[str, int] = data.SPLIT_SIZES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for seed, (split, (images_name, labels_name)) in enumerate(data.FILES.items()):
        images, labels = make_split(sizes[split], seed=seed + 1)
        for name, tensor, magic in ((images_name, images, data.IMAGES_MAGIC), (labels_name, labels, data.LABELS_MAGIC)):
            content = idx_bytes(tensor, magic)
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=1))
            else:
                (directory / name).write_bytes(content)
    return directory


def pytest_configure(config):
    """Refuse to test another copy of dropcli (an editable install of another clone, a wheel): its
    passing tests would say nothing of this checkout."""
    imported = Path(dropcli.__file__).resolve()
    if not imported.is_relative_to(CHECKOUT_SRC):
        raise pytest.UsageError(f"the suite imported dropcli from {imported.parent}, not this checkout's {CHECKOUT_SRC}")


@pytest.fixture(autouse=True, scope="session")
def children_import_the_checkout():
    """Child processes (python -m dropcli, torchrun's workers) import this checkout too: PYTHONPATH
    starts with its src/, as pytest's own sys.path does (pyproject.toml: pythonpath)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CHECKOUT_SRC), os.environ.get("PYTHONPATH")])))
        yield


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch):
    """Output that depends on no setting of the shell running the suite: terminal size, colour
    forcing or TERM would change Rich's widths and wrapping."""
    for name in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "dumb")


@pytest.fixture(scope="session")
def fake_data(tmp_path_factory) -> Path:
    """Uncompressed stand-in files: fast to read, used by most tests."""
    return write_fashion_mnist(tmp_path_factory.mktemp("fashion-raw"), gz=False)


@pytest.fixture(scope="session")
def fake_data_gz(tmp_path_factory) -> Path:
    return write_fashion_mnist(tmp_path_factory.mktemp("fashion-gz"), gz=True)


class OfflineTorchvisionFashionMNIST:
    """Stands in for torchvision's downloader on a machine without internet."""

    def __init__(self, root, train, download):
        (Path(root) / "partial.gz").write_bytes(b"half a file")
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried http://example.invalid/, got:\n[Errno -3] name lookup failed"
        )


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    """Hide any Fashion-MNIST on this machine and make downloads fail, as on an offline machine."""
    import torchvision.datasets

    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "no-system-data")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))
    monkeypatch.delenv("DROPCLI_DATA", raising=False)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", OfflineTorchvisionFashionMNIST)


@pytest.fixture
def in_tmp(monkeypatch, tmp_path) -> Path:
    """Run in an empty directory, so default run directories land under tmp_path/runs."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def invoke():
    """invoke("train", "--quiet", ...): the dropcli command line through Typer's CliRunner."""
    from typer.testing import CliRunner

    from dropcli.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args], prog_name="dropcli")


@pytest.fixture
def small_args(fake_data):
    """small_args(epochs, train, test): options for a short CPU run on the stand-in data."""

    def args(epochs: int = 2, train: int = 600, test: int = 200) -> list[str]:
        return [
            "--data-dir",
            str(fake_data),
            "--device",
            "cpu",
            "--set",
            f"data.train_limit={train}",
            "--set",
            f"data.test_limit={test}",
            "--set",
            f"train.epochs={epochs}",
        ]

    return args


@pytest.fixture
def build():
    """build(kind, seed=0, **model keys): the MLP, initialised under `seed`."""
    from dropcli.config import ModelConfig
    from dropcli.model.mlp import build_model

    def make(kind: str, seed: int = 0, **changes):
        torch.manual_seed(seed)
        return build_model(ModelConfig(kind=kind, **changes))

    return make


TIMING_FIELDS = ("seconds", "samples_per_s")


@pytest.fixture
def without_times():
    """without_times(history): per-epoch metrics (dicts or EpochMetrics) less the timing
    fields, which differ between any two runs."""
    import dataclasses

    def strip(history):
        records = [m if isinstance(m, dict) else dataclasses.asdict(m) for m in history]
        return [{k: v for k, v in m.items() if k not in TIMING_FIELDS} for m in records]

    return strip


def mc_dropout_by_hand(run_dir: Path, passes: int) -> tuple[float, float]:
    """(accuracy, NLL) of MC dropout on a run's test set, computed here rather than by dropcli: the
    last checkpoint's net with dropout on, masks from the run's seed, pass k on rows k*n ... k*n+n-1
    of one forward (as evaluate draws them), the softmax of the passes averaged."""
    from dropcli.config import load_config
    from dropcli.runs import checkpoints

    payload = checkpoints.load(run_dir / runs.LAST_CHECKPOINT)
    config = load_config(base=payload["config"])
    test = data.load(config.data, config.seed, torch.device("cpu")).test
    model = checkpoints.load_model(payload, torch.device("cpu"))
    torch.manual_seed(config.seed)
    model.train()
    with torch.no_grad():
        p = torch.softmax(model(test.X.repeat(passes, 1)), dim=1).view(passes, len(test.y), -1).double().mean(dim=0)  # (n, 10)
    accuracy = (p.argmax(dim=1) == test.y).double().mean().item()
    return accuracy, -p.gather(1, test.y[:, None]).clamp_min(1e-12).log().mean().item()


# A child dropcli that, once a run's epoch `epoch` is saved (in a run directory named `run`, or
# any but `not_run`), touches `marker` and waits there until it is signalled: a test that kills it
# after seeing the marker (or an earlier epoch) cannot miss the run's end on a slow machine.
HELD_DROPCLI = """
import os, pathlib, sys, time
from dropcli.runs import loop
held, real = {held!r}, loop.RunFiles.save_epoch
def save_epoch(self, state, best, improved):
    real(self, state, best, improved)
    name = self.run_dir.name
    if state.epoch == held["epoch"] and held.get("not_run") != name and held.get("run", name) == name:
        pathlib.Path(held["marker"]).touch()
        time.sleep({patience})
        os._exit(3)  # never signalled: the test failed before it could; the run does not go on
loop.RunFiles.save_epoch = save_epoch
from dropcli.cli import main
sys.argv = ["dropcli", *sys.argv[1:]]
main()
"""


def held_dropcli(marker: Path, epoch: int, **run) -> list[str]:
    """`python -m dropcli` that stops after epoch `epoch` (see HELD_DROPCLI); run: run=NAME or not_run=NAME."""
    import sys

    held = {"marker": str(marker), "epoch": epoch, **run}
    return [sys.executable, "-c", HELD_DROPCLI.format(held=held, patience=PATIENCE_S)]


def trained_files(directory: Path) -> dict[str, int]:
    """Every checkpoint and metrics file under `directory`, with its modification time: what a run
    that trains writes, and a rerun with nothing left to train must leave as it was."""
    found = [*directory.rglob("*.pt"), *directory.rglob(runs.METRICS_FILE)]
    assert found, f"nothing trained under {directory}"
    return {str(path): path.stat().st_mtime_ns for path in found}


def wait_for_file(path: Path, process, timeout: float = PATIENCE_S) -> None:
    """Until `path` exists; fails at once if `process` has ended."""
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear in time"
        time.sleep(0.005)


@pytest.fixture
def start_training():
    """start_training(args, run_dir, hold_after=None): a real `dropcli train` in a child process,
    to signal or kill; with hold_after=N it waits after epoch N (held_dropcli) until signalled."""
    import signal
    import subprocess
    import sys

    def start(args, run_dir, hold_after=None):
        program = [sys.executable, "-m", "dropcli"]
        if hold_after is not None:
            program = held_dropcli(Path(f"{run_dir}.held"), hold_after, run=Path(run_dir).name)
        command = [*program, "train", *map(str, args), "--run-dir", str(run_dir), "-q"]
        # A shell running this suite in the background starts it with SIGINT ignored, and children
        # inherit that; give the child the default, as a terminal would.
        return subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    return start


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in this process, as in a terminal: a shell running this suite
    in the background starts it with SIGINT ignored, and a real Ctrl-C would do nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def wait_for_epochs():
    """wait_for_epochs(run_dir, count, process): until metrics.jsonl has `count` lines."""
    import time

    def wait(run_dir, count, process, timeout=PATIENCE_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            path = run_dir / runs.METRICS_FILE
            if path.exists() and len(path.read_text().splitlines()) >= count:
                return
            assert process.poll() is None, process.communicate()
            time.sleep(0.005)
        raise AssertionError("training did not get far enough in time")

    return wait


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (postgres_server.py), started on first use and stopped at the end
    of the session; postgres.url(name) makes a database and gives its URL."""
    from postgres_server import running_server

    with running_server() as server:
        yield server


def wait_for_a_trained_epoch(run_dir: Path, process) -> Path:
    """Until a trial's run has written an epoch (the trial is then mid-way): its directory."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        for metrics in run_dir.glob(f"trial-*/{runs.METRICS_FILE}"):
            if metrics.read_text().strip():
                return metrics.parent
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError("no trial trained an epoch in time")


def assert_exactly(trials: list, budget: int) -> list:
    """A tune study's trials: it holds `budget` counted trials, all complete, none running or waiting, each
    number and run directory once; returns them."""
    from dropcli.experiments.tune_search import counted

    kept = counted(trials)
    assert len(kept) == budget and all(t.state.name == "COMPLETE" for t in kept), [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert len({t.user_attrs["run"] for t in kept}) == budget
    return kept
