"""Bad input and faults, case by case: one line on stderr that says what is wrong, a non-zero
exit, no traceback, and nothing already on disk changed.

Each row of CASES is (id, setup, command, exit code, words of the message). `setup(tmp)` lays
out whatever files the case needs under the test's working directory and returns extra
arguments; every file under that directory must be unchanged afterwards.
"""

import contextlib
import hashlib
import json
import random
import shutil
import signal

import pytest
import torch
import yaml

from conftest import PATIENCE_S
from dropcli import runs

MANY = 2**70
# What a damaged disk or a stray `cp` leaves: bytes that are neither UTF-8 nor JSON nor YAML.
RANDOM_BYTES = bytes(random.Random(0).randrange(256) for _ in range(512))


def nothing(tmp):
    return []


def write(name, content):
    def setup(tmp):
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return []

    return setup


def with_run(edit=None):
    """A copy of a finished run at ./r, optionally with its last checkpoint edited."""

    def setup(tmp):
        shutil.copytree(pytest.finished_run, tmp / "r")
        if edit is not None:
            path = tmp / "r" / runs.LAST_CHECKPOINT
            payload = torch.load(path, weights_only=True)
            edit(payload)
            torch.save(payload, path)
        return []

    return setup


def drop_key(key):
    return lambda payload: payload.pop(key)


def wrong_shape(payload):
    payload["model"]["hidden_1.weight"] = torch.zeros(3, 3)


def last_unreadable_best_kept(tmp):
    """The finished run, as one with a validation split would be (a best.pt), whose last.pt is unreadable."""
    with_run()(tmp)
    checkpoint_dir = tmp / "r" / runs.CHECKPOINT_DIR
    shutil.copy(checkpoint_dir / "last.pt", checkpoint_dir / "best.pt")
    (checkpoint_dir / "last.pt").write_bytes(RANDOM_BYTES)
    return []


def cut_metrics(tmp):
    with_run()(tmp)
    path = tmp / "r" / runs.METRICS_FILE
    path.write_text(path.read_text()[:-20])
    return []


def experiment_with(contents):
    """A finished one-trial sweep at ./s with some of its files replaced: {path: content}."""

    def setup(tmp):
        shutil.copytree(pytest.finished_sweep, tmp / "s")
        for name, content in contents.items():
            path = tmp / "s" / name
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        return []

    return setup


def runs_with(**replaced):
    """Two copies of the finished run at ./runs/a and ./runs/b, with files of b replaced:
    {file name (dots as underscores): content}."""

    def setup(tmp):
        for name in ("a", "b"):
            shutil.copytree(pytest.finished_run, tmp / "runs" / name)
        for name, content in replaced.items():
            path = tmp / "runs" / "b" / name.replace("_", ".")
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        return []

    return setup


def run_file(name, content):
    """A copy of the finished run at ./r with one file (a path under it) replaced."""

    def setup(tmp):
        with_run()(tmp)
        (tmp / "r" / name).write_bytes(content)
        return []

    return setup


def diverged_at_once(tmp):
    """What a run that diverged in its first step leaves: config, no metrics, no checkpoint."""
    with_run()(tmp)
    shutil.rmtree(tmp / "r" / runs.CHECKPOINT_DIR)
    (tmp / "r" / runs.CHECKPOINT_DIR).mkdir()
    (tmp / "r" / runs.METRICS_FILE).write_text("")
    (tmp / "r" / runs.SUMMARY_FILE).write_text('{"status": "diverged", "reason": "training diverged at epoch 1, step 1"}')
    return []


ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(20)
    )
    + "name: *u\n"
)
SMALL = ["--set", "data.train_limit=600", "--set", "data.test_limit=200", "--set", "train.epochs=2", "-q"]
SWEEP = ["sweep", "--grid", "optim.lr=0.1"]

CASES = [
    # names: one safe path component
    ("name-slash", nothing, ["train", "--set", "name=a/b"], 2, "name must be 1 to 100 characters without '/'"),
    ("name-escape", nothing, ["train", "--set", "name=../../escaped"], 2, "name must be 1 to 100 characters"),
    ("name-long", nothing, ["train", "--set", "name=" + "n" * 300], 2, "name must be 1 to 100 characters"),
    ("name-dotdot", nothing, ["train", "--set", "name=.."], 2, "and not '.' or '..'"),
    # numbers
    ("seed-huge", nothing, ["train", "--seed", MANY], 2, "seed must be between 0 and 2**64 - 1"),
    ("seed-negative", nothing, ["train", "--seed", -1], 2, "seed must be between 0 and 2**64 - 1"),
    (
        "seeds-past-64-bits",
        nothing,
        ["compare", "scratch", "builtin", "--seed", 2**64 - 1, "--seeds", 2],
        2,
        "seed must be between",
    ),
    ("device-index-huge", nothing, ["train", "--device", "cuda:99999999999999999999"], 2, "cuda:N (N < 10000)"),
    ("hidden-too-big", nothing, ["train", "--set", "model.hidden_1=3000000"], 2, "GiB but cpu has"),
    (
        "hidden-too-big-in-grid",
        nothing,
        [*SWEEP, "--grid", "model.hidden_2=256,4000000"],
        2,
        "trial lr=0.1_hidden_2=4000000_seed0 needs about",
    ),
    ("hidden-float", nothing, ["train", "--set", "model.hidden_1=1e9"], 2, "model.hidden_1 must be an integer"),
    (
        "hidden-list-too-big",
        nothing,
        ["train", "--set", "model.hidden=4096x4096x3000000"],
        2,
        "training this model (model.hidden, train.batch_size) needs about",
    ),
    (
        "hidden-architecture-too-big-in-grid",
        nothing,
        [*SWEEP, "--grid", "model.hidden=256x256,3000000x8"],
        2,
        "trial lr=0.1_hidden=3000000x8_seed0 needs about",
    ),
    ("hidden-empty", nothing, ["train", "--set", "model.hidden=[]"], 2, "model.hidden must name at least one hidden layer"),
    ("hidden-zero", nothing, ["train", "--set", "model.hidden=256x0"], 2, "model.hidden must be widths >= 1, got [256, 0]"),
    (
        "rates-wrong-length",
        nothing,
        ["train", "--set", "model.hidden=64x64x64", "--set", "model.dropout=[0.2,0.5]"],
        2,
        "model.dropout has 2 rates for 3 hidden layers",
    ),
    (
        "val-split-empty",
        nothing,
        ["train", "--set", "data.val_split=0.00001", "--set", "train.monitor=val_acc"],
        2,
        "is an empty validation set",
    ),
    ("lr-infinite", nothing, ["train", "--set", "optim.lr=.inf"], 2, "optim.lr must be a finite number > 0"),
    # config files
    ("config-not-utf8", write("c.yaml", b"name: \xff\xfe\n"), ["train", "-c", "c.yaml"], 2, "not UTF-8 text"),
    ("config-self-alias", write("c.yaml", "a: &a [*a]\n"), ["train", "-c", "c.yaml"], 2, "anchors and aliases"),
    ("config-alias-bomb", write("c.yaml", ALIAS_BOMB), ["config", "show", "-c", "c.yaml"], 2, "anchors and aliases"),
    ("config-a-directory", write("c.yaml/x", ""), ["train", "-c", "c.yaml"], 2, "is a directory, not a file"),
    ("config-not-a-mapping", write("c.yaml", "- 1\n- 2\n"), ["train", "-c", "c.yaml"], 2, "the top level must be a mapping"),
    (
        "config-huge-value",
        write("c.yaml", "name: [" + "1, " * 10000 + "1]\n"),
        ["train", "-c", "c.yaml"],
        2,
        "name must be a string, got [1, 1,",
    ),
    # data
    (
        "data-dir-a-file",
        write("f", "x"),
        ["train", "--data-dir", "f"],
        2,
        "/f, which is a file; name the directory that holds the four IDX files",
    ),
    # run and experiment directories
    ("runs-a-file", write("runs", "x"), ["train"], 2, "runs is a file, not a directory for runs"),
    (
        "run-dir-exists",
        write("taken/notes.txt", "mine"),
        ["train", "--run-dir", "taken"],
        2,
        "run directory taken already exists",
    ),
    ("sweep-run-dir-a-file", write("s", "x"), [*SWEEP, "--run-dir", "s"], 2, "s is a file, not an experiment directory"),
    ("sweep-dir-not-a-sweep", write("s/notes.txt", "mine"), [*SWEEP, "--run-dir", "s"], 2, "is not an experiment directory"),
    (
        "sweep-plan-corrupt",
        experiment_with({"plan.json": "{not json"}),
        [*SWEEP, *SMALL, "--run-dir", "s"],
        2,
        "plan.json cannot be read",
    ),
    (
        "sweep-record-corrupt",
        experiment_with({"trials.jsonl": '{"name": "lr=0.1_se'}),
        [*SWEEP, *SMALL, "--run-dir", "s"],
        2,
        "trials.jsonl: line 1 is not a JSON record (remove that line",
    ),
    (
        "sweep-summary-corrupt",
        experiment_with({"trials.jsonl": "", "lr=0.1_seed0/summary.json": "[1, 2]"}),
        [*SWEEP, *SMALL, "--run-dir", "s"],
        2,
        "is not a run summary",
    ),
    ("grid-repeated", nothing, ["sweep", "--grid", "model.dropout_1=0.5,0.5,.5"], 2, "names 0.5 more than once"),
    ("grid-seed", nothing, ["sweep", "--grid", "seed=0,1"], 2, "seeds are not a grid"),
    # checkpoints and runs read back
    ("checkpoint-missing-keys", with_run(drop_key("optimizer")), ["evaluate", "r"], 2, "damaged checkpoint, no optimizer"),
    ("checkpoint-wrong-shape", with_run(wrong_shape), ["evaluate", "r"], 2, "the checkpoint does not fit its own config"),
    (
        "resume-missing-keys",
        with_run(drop_key("rng")),
        ["train", "--resume", "r", "--set", "train.epochs=3"],
        2,
        "damaged checkpoint, no rng",
    ),
    ("checkpoint-junk", write("junk.pt", "not a checkpoint"), ["evaluate", "junk.pt"], 2, "not a readable dropcli checkpoint"),
    ("plot-cut-metrics", cut_metrics, ["plot", "r", "-o", "c.png"], 2, "line 2 is not a JSON record"),
    ("plot-output-a-directory", with_run(), ["plot", "r", "-o", "r"], 2, "cannot write r: it is a directory"),
    ("runs-a-file-to-scan", write("list", "x"), ["runs", "list"], 2, "list is not a directory"),
    ("evaluate-split", with_run(), ["evaluate", "r", "--split", "everything"], 2, "--split must be one of test, train, val"),
    # runs: a filter that cannot match is bad input, not an empty table
    ("where-unknown-key", runs_with(), ["runs", "--where", "nosuch.key=1"], 2, "--where nosuch.key=1: unknown key 'nosuch'"),
    ("where-misspelt-key", runs_with(), ["runs", "--where", "model.dropot_1=0.5"], 2, "did you mean 'model.dropout_1'?"),
    (
        "where-wrong-type",
        runs_with(),
        ["runs", "--where", "model.hidden_1=abc"],
        2,
        "model.hidden_1 must be an integer, got 'abc'",
    ),
    (
        "where-bad-widths",
        runs_with(),
        ["runs", "--where", "model.hidden=abc"],
        2,
        "model.hidden must be hidden-layer widths, e.g.",
    ),
    ("where-width-zero", runs_with(), ["runs", "--where", "model.hidden=0"], 2, "model.hidden must be widths >= 1, got [0]"),
    (
        "where-rate-above-one",
        runs_with(),
        ["runs", "--where", "model.dropout=2"],
        2,
        "model.dropout must be rates between 0 and 1",
    ),
    ("where-old-key-rate-above-one", runs_with(), ["runs", "--where", "model.dropout_1=3"], 2, "must be rates between 0 and 1"),
    (
        "grid-key-and-its-old-key",
        nothing,
        ["sweep", "--grid", "model.hidden=64x64,32x32", "--grid", "model.hidden_1=8,16"],
        2,
        "--grid model.hidden and --grid model.hidden_1 (a place in model.hidden) set the same list; keep one",
    ),
    (
        "grid-key-twice",
        nothing,
        ["sweep", "--grid", "optim.lr=0.01,0.1", "--grid", "optim.lr=0.5"],
        2,
        "--grid optim.lr is given more than once; give each key once, with all its values",
    ),
    (
        "where-a-section",
        runs_with(),
        ["runs", "--where", "model=1"],
        2,
        "model is a section, not a value; name one of its keys, e.g. model.kind",
    ),
    (
        "status-unknown",
        runs_with(),
        ["runs", "--status", "nosuch"],
        2,
        "a run's status is one of finished, interrupted, diverged",
    ),
    (
        "diff-config-garbage",
        runs_with(config_yaml="garbage: [1\n"),
        ["runs", "--diff", "runs/a", "runs/b"],
        2,
        "--diff runs/b: runs/b/config.yaml: malformed YAML",
    ),
    (
        "diff-config-not-a-config",
        runs_with(config_yaml="garbage:\n"),
        ["runs", "--diff", "runs/a", "runs/b"],
        2,
        "config.yaml is not a dropcli config (config: unknown key 'garbage'",
    ),
    (
        "diff-config-random-bytes",
        runs_with(config_yaml=RANDOM_BYTES),
        ["runs", "--diff", "runs/a", "runs/b"],
        2,
        "cannot be read",
    ),
    (
        "diff-summary-random-bytes",
        runs_with(summary_json=RANDOM_BYTES),
        ["runs", "--diff", "runs/a", "runs/b"],
        2,
        "cannot be read",
    ),
    # config files: a key written twice is refused, never "the last one wins"
    (
        "config-section-twice",
        write("c.yaml", "train:\n  epochs: 2\nname: x\ntrain:\n  batch_size: 3\n"),
        ["train", "-c", "c.yaml"],
        2,
        "key 'train' is written twice in one mapping (lines 1 and 4)",
    ),
    (
        "config-key-twice",
        write("c.yaml", "train:\n  epochs: 2\n  batch_size: 3\n  epochs: 4\n"),
        ["config", "show", "-c", "c.yaml"],
        2,
        "key 'epochs' is written twice in one mapping (lines 2 and 4)",
    ),
    ("config-random-bytes", write("c.yaml", RANDOM_BYTES), ["train", "-c", "c.yaml"], 2, "c.yaml: not UTF-8 text"),
    # inputs that used to hang: refused at once
    (
        "sample-beyond-a-list",
        nothing,
        ["sweep", "--grid", "model.kind=scratch,builtin", "--sample", 3],
        2,
        "--sample 3: the lists given hold only 2 different combinations; sample at most 2",
    ),
    (
        "sample-huge",
        nothing,
        ["sweep", "--grid", "model.kind=scratch,builtin", "--sample", 10**12],
        2,
        "an experiment holds at most 2,000 trials",
    ),
    (
        "sample-past-int64",
        nothing,
        ["sweep", "--grid", "optim.lr=0.01:1", "--sample", MANY],
        2,
        "an experiment holds at most 2,000 trials",
    ),
    (
        "seeds-huge",
        nothing,
        ["compare", "scratch", "builtin", "--seeds", 10**9],
        2,
        "would train 2,000,000,000 trials; at most 2,000",
    ),
    (
        "range-not-numeric",
        nothing,
        ["sweep", "--grid", "model.kind=a:b", "--sample", 2],
        2,
        "ranges need a numeric key, and model.kind is not one",
    ),
    (
        "range-integer-key",
        nothing,
        ["sweep", "--grid", "model.hidden_1=10:100", "--sample", 2],
        2,
        "model.hidden_1 takes integers",
    ),
    (
        "mc-samples-absurd",
        with_run(),
        ["evaluate", "r", "--mc-samples", 10**12],
        2,
        "--mc-samples 1000000000000: 1,000,000,000,000 passes",
    ),
    # damaged files of every kind dropcli reads: one line, never rewritten
    (
        "trials-record-random-bytes",
        experiment_with({"trials.jsonl": RANDOM_BYTES}),
        [*SWEEP, *SMALL, "--run-dir", "s"],
        2,
        "trials.jsonl cannot be read",
    ),
    (
        "plan-random-bytes",
        experiment_with({"plan.json": RANDOM_BYTES}),
        [*SWEEP, *SMALL, "--run-dir", "s"],
        2,
        "plan.json cannot be read",
    ),
    (
        "trial-summary-random-bytes",
        experiment_with({"trials.jsonl": "", "lr=0.1_seed0/summary.json": RANDOM_BYTES}),
        [*SWEEP, *SMALL, "--run-dir", "s"],
        2,
        "summary.json cannot be read",
    ),
    (
        "metrics-random-bytes",
        run_file("metrics.jsonl", RANDOM_BYTES),
        ["plot", "r", "-o", "c.png"],
        2,
        "metrics.jsonl cannot be read",
    ),
    (
        "checkpoint-random-bytes",
        run_file("checkpoints/last.pt", RANDOM_BYTES),
        ["train", "--resume", "r", "--set", "train.epochs=3"],
        2,
        "; a run continues only from last.pt: train it again with dropcli train -c r/config.yaml",
    ),
    # evaluate says what to do instead
    (
        "evaluate-last-unreadable",
        last_unreadable_best_kept,
        ["evaluate", "r"],
        2,
        "r/checkpoints/best.pt is fine: dropcli evaluate r/checkpoints/best.pt",
    ),
    (  # no validation split: no best.pt to fall back on
        "evaluate-last-unreadable-no-best",
        run_file("checkpoints/last.pt", RANDOM_BYTES),
        ["evaluate", "r"],
        2,
        "the run has no best.pt (no validation split): train it again",
    ),
    ("evaluate-diverged-at-once", diverged_at_once, ["evaluate", "r"], 2, "the run diverged before saving any checkpoint"),
    ("evaluate-not-a-run", write("d/notes.txt", "mine"), ["evaluate", "d"], 2, "d: nothing to evaluate, not a run directory"),
    # Typer's own usage errors: one line with the usage hint, on every command
    ("usage-unknown-option", nothing, ["train", "--nosuch"], 2, "No such option: --nosuch (see: dropcli train --help)"),
    ("usage-sample-0", nothing, [*SWEEP, "--sample", 0], 2, "Invalid value for '--sample'"),
    ("usage-sample-negative", nothing, [*SWEEP, "--sample", -1], 2, "Invalid value for '--sample'"),
    ("usage-seeds-0", nothing, ["compare", "scratch", "--seeds", 0], 2, "Invalid value for '--seeds'"),
    ("usage-missing-argument", nothing, ["evaluate"], 2, "Missing argument 'RUN...'"),
    ("usage-subcommand-option", nothing, ["config", "show", "--nope"], 2, "(see: dropcli config show --help)"),
    ("usage-unknown-command", nothing, ["trian"], 2, "No such command 'trian'"),
    ("usage-int-not-a-number", nothing, ["train", "--seed", "x"], 2, "Invalid value for '--seed'"),
]


class Hung(BaseException):
    """A command that ran past its time: a BaseException, so no handler in dropcli swallows it."""


@contextlib.contextmanager
def time_limit(seconds):
    """Fail the test if the block runs longer than `seconds` (SIGALRM; the main thread): a test
    failure, not an abort of the whole session (which a bare BaseException would be)."""

    def expired(signum, frame):
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Hung as hung:
        pytest.fail(str(hung))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module", autouse=True)
def finished_runs(tmp_path_factory, fake_data):
    """One finished run and one finished one-trial sweep, copied by the cases that need them."""
    from typer.testing import CliRunner

    from dropcli.cli import app

    root = tmp_path_factory.mktemp("finished")
    options = ["--data-dir", str(fake_data), "--device", "cpu", *SMALL]
    for args in (["train", *options, "--run-dir", str(root / "r")], [*SWEEP, *options, "--run-dir", str(root / "s")]):
        assert CliRunner().invoke(app, args).exit_code == 0
    pytest.finished_run, pytest.finished_sweep = root / "r", root / "s"


@pytest.mark.parametrize("case, setup, command, exit_code, words", CASES, ids=[case[0] for case in CASES])
def test_bad_input_gets_one_line_and_changes_nothing(in_tmp, invoke, fake_data, case, setup, command, exit_code, words):
    setup(in_tmp)
    before = snapshot(in_tmp)
    needs_data = command[0] in ("train", "compare", "sweep") and "--data-dir" not in command
    options = ["--data-dir", fake_data, "--device", "cpu"] if needs_data and "--resume" not in command else []
    if "--device" in command:
        options = ["--data-dir", fake_data]
    with time_limit(PATIENCE_S):  # no input may hang
        result = invoke(*command, *options)
    assert "Traceback" not in result.output
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words in lines[0]
    assert snapshot(in_tmp) == before  # nothing written, nothing changed


def test_dropcli_data_that_is_a_file_is_named(in_tmp, invoke, monkeypatch):
    (in_tmp / "f").write_text("x")
    monkeypatch.setenv("DROPCLI_DATA", str(in_tmp / "f"))
    result = invoke("data", "info")
    assert result.exit_code == 2 and "$DROPCLI_DATA names" in result.stderr and "which is a file" in result.stderr


def test_runs_lists_what_it_can_read_and_says_why_not(in_tmp, invoke):
    for name in ("good", "cut", "no-status", "bad-config"):
        shutil.copytree(pytest.finished_run, in_tmp / "runs" / name)
    (in_tmp / "runs" / "cut" / runs.METRICS_FILE).write_text('{"epoch": 1, "train_lo')
    (in_tmp / "runs" / "no-status" / runs.SUMMARY_FILE).write_text("{}")
    (in_tmp / "runs" / "bad-config" / runs.CONFIG_FILE).write_text("model: [unclosed\n")
    result = invoke("runs")
    assert result.exit_code == 0 and "Traceback" not in result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "finished" in rows["good"]
    assert "unreadable" in rows["cut"] and "unreadable" in rows["no-status"] and "unreadable" in rows["bad-config"]


def test_runs_where_compares_values_as_the_config_reads_them(in_tmp, invoke):
    runs_with()(in_tmp)
    path = in_tmp / "runs" / "b" / runs.CONFIG_FILE
    path.write_text(path.read_text().replace("lr: 0.1\n", "lr: 0.05\n"))
    for condition in ("optim.lr=5e-2", "optim.lr=0.05", "optim.lr=.05", "optim.lr=5.0e-2"):
        result = invoke("runs", "--where", condition, "--json")
        assert result.exit_code == 0 and [r["run"] for r in json.loads(result.stdout)] == ["b"], condition
    for condition, found in (
        ("train.compile=no", ["a", "b"]),
        ("train.compile=true", []),
        ("train.early_stopping=null", ["a", "b"]),
    ):
        result = invoke("runs", "--where", condition, "--json")
        assert sorted(r["run"] for r in json.loads(result.stdout)) == found, condition


def test_runs_where_matches_rate_and_width_lists_as_the_config_reads_them(in_tmp, invoke):
    runs_with()(in_tmp)
    path = in_tmp / "runs" / "b" / runs.CONFIG_FILE
    text = path.read_text()
    config = yaml.safe_load(text)
    config["model"]["hidden"], config["model"]["dropout"] = [64, 64, 64], [0.1, 0.2, 0.3]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for condition, found in (
        ("model.dropout=0.5", ["a"]),  # one number: every layer has it
        ("model.dropout=[0.5,0.5]", ["a"]),
        ("model.dropout=[0.1,0.2,0.3]", ["b"]),
        ("model.dropout=0.1", []),
        ("model.dropout_2=0.2", ["b"]),
        ("model.hidden=64x64x64", ["b"]),
        ("model.hidden=[256,256]", ["a"]),
    ):
        result = invoke("runs", "--where", condition, "--json")
        assert result.exit_code == 0, (condition, result.output)
        assert sorted(r["run"] for r in json.loads(result.stdout)) == found, condition


def test_a_continue_hint_names_only_what_works(tmp_path, monkeypatch):
    from dropcli import runs
    from dropcli.parallel.workers import launch_command

    gone = runs.after_stop(tmp_path / "deleted", "dropcli", made_here=True)
    assert gone == f"{tmp_path / 'deleted'} no longer exists, so nothing is kept; run the same command again"
    shutil.copytree(pytest.finished_run, tmp_path / "r")
    assert runs.after_stop(tmp_path / "r", "dropcli", made_here=False).endswith(
        f"continue with: dropcli train --resume {tmp_path / 'r'}"
    )
    for name, value in {
        "RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "x",
        "MASTER_PORT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    assert launch_command() == "torchrun --standalone --nproc-per-node 2 -m dropcli"
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launch_command().startswith("torchrun (the same launch options, on every node)")
    # An interrupt before the first epoch: nothing to resume, and the directory this command made goes.
    (tmp_path / "early" / runs.CHECKPOINT_DIR).mkdir(parents=True)
    (tmp_path / "early" / runs.CONFIG_FILE).write_text("name: x\n")
    (tmp_path / "early" / runs.METRICS_FILE).write_text("")
    assert (
        runs.after_stop(tmp_path / "early", "dropcli", made_here=True)
        == "nothing was trained and nothing is kept; run the same command again"
    )
    assert not (tmp_path / "early").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")  # not dropcli's: never removed
    assert "cannot be resumed" in runs.after_stop(tmp_path / "mine", "dropcli", made_here=True)
    assert (tmp_path / "mine" / "notes.txt").exists()
