"""Bad input and faults, case by case: one line on stderr that says what is wrong, a non-zero
exit, no traceback, and nothing already on disk changed.

Each row of CASES is (id, setup, command, exit code, words of the message). `setup(tmp)` lays
out whatever files the case needs under the test's working directory and returns extra
arguments; every file under that directory must be unchanged afterwards.
"""

import hashlib
import shutil

import pytest
import torch

MANY = 2**70


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
            path = tmp / "r" / "checkpoints" / "last.pt"
            payload = torch.load(path, weights_only=True)
            edit(payload)
            torch.save(payload, path)
        return []

    return setup


def drop_key(key):
    return lambda payload: payload.pop(key)


def wrong_shape(payload):
    payload["model"]["hidden_1.weight"] = torch.zeros(3, 3)


def cut_metrics(tmp):
    with_run()(tmp)
    path = tmp / "r" / "metrics.jsonl"
    path.write_text(path.read_text()[:-20])
    return []


def experiment_with(contents):
    """A finished one-trial sweep at ./s with some of its files replaced: {path: content}."""

    def setup(tmp):
        shutil.copytree(pytest.finished_sweep, tmp / "s")
        for name, content in contents.items():
            (tmp / "s" / name).write_text(content)
        return []

    return setup


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(20)
) + "name: *u\n"
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
    ("seeds-past-64-bits", nothing, ["compare", "scratch", "builtin", "--seed", 2**64 - 1, "--seeds", 2], 2, "seed must be between"),
    ("device-index-huge", nothing, ["train", "--device", "cuda:99999999999999999999"], 2, "cuda:N (N < 10000)"),
    ("hidden-too-big", nothing, ["train", "--set", "model.hidden_1=3000000"], 2, "GiB but cpu has"),
    ("hidden-too-big-in-grid", nothing, [*SWEEP, "--grid", "model.hidden_2=256,4000000"], 2, "trial lr=0.1_hidden_2=4000000_seed0 needs about"),
    ("hidden-float", nothing, ["train", "--set", "model.hidden_1=1e9"], 2, "model.hidden_1 must be an integer"),
    ("hidden-list-too-big", nothing, ["train", "--set", "model.hidden=4096x4096x3000000"], 2,
     "training this model (model.hidden, train.batch_size) needs about"),
    ("hidden-architecture-too-big-in-grid", nothing, [*SWEEP, "--grid", "model.hidden=256x256,3000000x8"], 2,
     "trial lr=0.1_hidden=3000000x8_seed0 needs about"),
    ("hidden-empty", nothing, ["train", "--set", "model.hidden=[]"], 2, "model.hidden must name at least one hidden layer"),
    ("hidden-zero", nothing, ["train", "--set", "model.hidden=256x0"], 2, "model.hidden must be widths >= 1, got [256, 0]"),
    ("rates-wrong-length", nothing, ["train", "--set", "model.hidden=64x64x64", "--set", "model.dropout=[0.2,0.5]"], 2,
     "model.dropout has 2 rates for 3 hidden layers"),
    ("val-split-empty", nothing, ["train", "--set", "data.val_split=0.00001", "--set", "train.monitor=val_acc"], 2, "is an empty validation set"),
    ("lr-infinite", nothing, ["train", "--set", "optim.lr=.inf"], 2, "optim.lr must be a finite number > 0"),
    # config files
    ("config-not-utf8", write("c.yaml", b"name: \xff\xfe\n"), ["train", "-c", "c.yaml"], 2, "not UTF-8 text"),
    ("config-self-alias", write("c.yaml", "a: &a [*a]\n"), ["train", "-c", "c.yaml"], 2, "anchors and aliases"),
    ("config-alias-bomb", write("c.yaml", ALIAS_BOMB), ["config", "show", "-c", "c.yaml"], 2, "anchors and aliases"),
    ("config-a-directory", write("c.yaml/x", ""), ["train", "-c", "c.yaml"], 2, "is a directory, not a file"),
    ("config-not-a-mapping", write("c.yaml", "- 1\n- 2\n"), ["train", "-c", "c.yaml"], 2, "the top level must be a mapping"),
    ("config-huge-value", write("c.yaml", "name: [" + "1, " * 10000 + "1]\n"), ["train", "-c", "c.yaml"], 2, "name must be a string, got [1, 1,"),
    # data
    ("data-dir-a-file", write("f", "x"), ["train", "--data-dir", "f"], 2, "/f, which is a file; name the directory that holds the four IDX files"),
    # run and experiment directories
    ("runs-a-file", write("runs", "x"), ["train"], 2, "runs is a file, not a directory for runs"),
    ("run-dir-exists", write("taken/notes.txt", "mine"), ["train", "--run-dir", "taken"], 2, "run directory taken already exists"),
    ("sweep-run-dir-a-file", write("s", "x"), [*SWEEP, "--run-dir", "s"], 2, "s is a file, not an experiment directory"),
    ("sweep-dir-not-a-sweep", write("s/notes.txt", "mine"), [*SWEEP, "--run-dir", "s"], 2, "is not an experiment directory"),
    ("sweep-plan-corrupt", experiment_with({"plan.json": "{not json"}), [*SWEEP, *SMALL, "--run-dir", "s"], 2, "plan.json cannot be read"),
    ("sweep-record-corrupt", experiment_with({"trials.jsonl": '{"name": "lr=0.1_se'}), [*SWEEP, *SMALL, "--run-dir", "s"], 2,
     "trials.jsonl: line 1 is damaged"),
    ("sweep-summary-corrupt", experiment_with({"trials.jsonl": "", "lr=0.1_seed0/summary.json": "[1, 2]"}),
     [*SWEEP, *SMALL, "--run-dir", "s"], 2, "is not a run summary"),
    ("grid-repeated", nothing, ["sweep", "--grid", "model.dropout_1=0.5,0.5,.5"], 2, "names 0.5 more than once"),
    ("grid-seed", nothing, ["sweep", "--grid", "seed=0,1"], 2, "seeds are not a grid"),
    # checkpoints and runs read back
    ("checkpoint-missing-keys", with_run(drop_key("optimizer")), ["evaluate", "r"], 2, "damaged checkpoint, no optimizer"),
    ("checkpoint-wrong-shape", with_run(wrong_shape), ["evaluate", "r"], 2, "the checkpoint does not fit its own config"),
    ("resume-missing-keys", with_run(drop_key("rng")), ["train", "--resume", "r", "--set", "train.epochs=3"], 2, "damaged checkpoint, no rng"),
    ("checkpoint-junk", write("junk.pt", "not a checkpoint"), ["evaluate", "junk.pt"], 2, "not a readable dropcli checkpoint"),
    ("plot-cut-metrics", cut_metrics, ["plot", "r", "-o", "c.png"], 2, "line 2 is not a JSON record"),
    ("plot-output-a-directory", with_run(), ["plot", "r", "-o", "r"], 2, "cannot write r: it is a directory"),
    ("runs-a-file-to-scan", write("list", "x"), ["runs", "list"], 2, "list is not a directory"),
    ("evaluate-split", with_run(), ["evaluate", "r", "--split", "everything"], 2, "--split must be one of test, train, val"),
]


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
    (in_tmp / "runs" / "cut" / "metrics.jsonl").write_text('{"epoch": 1, "train_lo')
    (in_tmp / "runs" / "no-status" / "summary.json").write_text("{}")
    (in_tmp / "runs" / "bad-config" / "config.yaml").write_text("model: [unclosed\n")
    result = invoke("runs")
    assert result.exit_code == 0 and "Traceback" not in result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "finished" in rows["good"]
    assert "unreadable" in rows["cut"] and "unreadable" in rows["no-status"] and "unreadable" in rows["bad-config"]
