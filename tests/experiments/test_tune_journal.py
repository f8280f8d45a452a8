"""A study's journal cut short by a kill or a full disk: the cut record is set aside and kept,
nothing whole is lost, and the study goes on; a file that is not a journal is one line."""

import random
from pathlib import Path

import pytest

pytest.importorskip("optuna")

from conftest import refusal

SEARCH = ["--set", "data.val_split=0.2", "--space", "optim.lr=0.001:1:log", "--pruner", "none"]


def study_state(journal: Path) -> tuple:
    """What a study holds, as plain values: its attributes and each trial's state, values and attributes."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(journal)))
    studies = optuna.get_all_study_names(storage)
    if not studies:
        return ()
    study = optuna.load_study(study_name=studies[0], storage=storage)
    trials = [(t.number, t.state.name, t.values, t.params, t.user_attrs) for t in study.get_trials(deepcopy=False)]
    return (studies, study.user_attrs, trials)


@pytest.fixture
def journal(in_tmp, invoke, small_args) -> Path:
    """A real journal: a dropcli tune study of two one-epoch trials."""
    result = invoke("tune", *small_args(epochs=1, train=300, test=100), *SEARCH, "--trials", 2, "-q")
    assert result.exit_code == 0, result.output
    return in_tmp / "runs" / "tune-default" / "study.journal"


def test_a_journal_cut_at_every_byte_of_its_last_record_loses_nothing_whole(journal, tmp_path):
    from dropcli.experiments.tune_journal import set_aside_cut_record

    content = journal.read_bytes()
    start = content.rstrip(b"\n").rfind(b"\n") + 1  # where the last record begins
    before, whole = study_state_of(content[:start], tmp_path / "before"), study_state(journal)
    assert before != whole and len(content) - start > 20
    for cut in range(start + 1, len(content)):
        path = tmp_path / f"cut{cut}" / "study.journal"
        path.parent.mkdir()
        path.write_bytes(content[:cut])
        said = set_aside_cut_record(path)
        if cut == len(content) - 1:  # only the newline is missing: the record is whole and kept
            assert said is None and study_state(path) == whole
            continue
        assert said is not None and "set aside in study.journal.cut-1" in said and "\n" not in said
        assert (path.parent / "study.journal.cut-1").read_bytes() == content[start:cut]  # the cut bytes are kept
        assert study_state(path) == before  # every whole record, nothing more
        append_and_read(path)  # and the study takes new records: the next tune is not poisoned


def study_state_of(content: bytes, directory: Path) -> tuple:
    directory.mkdir()
    (directory / "study.journal").write_bytes(content)
    return study_state(directory / "study.journal")


def append_and_read(path: Path) -> None:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(study_name="default", storage=JournalStorage(JournalFileBackend(str(path))))
    study.set_user_attr("appended", True)
    assert study_state(path)[1]["appended"] is True


def test_after_a_cut_the_same_command_goes_on_and_summary_says_so_in_one_line(journal, invoke, small_args):
    content = journal.read_bytes()
    journal.write_bytes(content[:-7])  # a kill in the middle of the last write
    shown = invoke("tune", "--summary", "--run-dir", journal.parent)
    assert shown.exit_code == 0, shown.output
    warnings = [line for line in shown.stderr.splitlines() if "cut short" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "study.journal.cut-1" in warnings[0]
    assert (journal.parent / "study.journal.cut-1").is_file()
    more = invoke("tune", *small_args(epochs=1, train=300, test=100), *SEARCH, "--trials", 3, "-q")
    assert more.exit_code == 0 and "this command trained" in more.output, more.output
    again = invoke("tune", "--summary", "--run-dir", journal.parent)
    assert again.exit_code == 0 and "cut short" not in again.stderr, again.output
    trials = study_state(journal)[2]
    # The cut record was trial 1's end: left running, its lease let go, it was continued in its run
    # (the new trial 2) and not counted twice; trial 3 is the one more --trials 3 asks for.
    assert [(number, state) for number, state, *_ in trials] == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE"), (3, "COMPLETE")]
    assert trials[1][4]["reason"] == "its process died" and trials[2][4]["retry_of"] == 1
    assert trials[2][4]["run"] == trials[1][4]["run"]


@pytest.mark.parametrize("newlines", [True, False])
def test_a_journal_of_random_bytes_is_one_line_naming_it(in_tmp, invoke, newlines):
    journal = in_tmp / "study.journal"
    noise = random.Random(0).randbytes(4000)
    noise = noise if newlines else noise.replace(b"\n", b" ")
    journal.write_bytes(noise)
    result = invoke("tune", "--summary", "--storage", journal)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{journal} is not an Optuna journal" in lines[0], result.output
    assert journal.read_bytes() == noise and not list(in_tmp.glob("*.cut-*"))  # left as it was


def test_a_refused_rerun_writes_nothing_to_the_journal(journal, invoke, small_args):
    content = journal.read_bytes()
    other = invoke("tune", *small_args(epochs=1, train=300, test=100), *SEARCH, "--space", "optim.momentum=0:0.9", "--trials", 3)
    assert other.exit_code == 2 and "was started with another config or space" in other.output, other.output
    assert journal.read_bytes() == content


def test_a_trial_left_running_is_shown_with_how_to_clear_it(journal, invoke):
    import shlex
    import subprocess
    import sys

    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(study_name="default", storage=JournalStorage(JournalFileBackend(str(journal))))
    study.ask().report(0.5, 1)  # what a tune killed with SIGKILL mid-trial leaves
    shown = invoke("tune", "--summary", "--run-dir", journal.parent)
    assert shown.exit_code == 0, shown.output
    row = next((line for line in shown.stdout.splitlines() if line.startswith("│     2 ")), shown.stdout)
    assert "running" in row and "0.5000" in row
    hint = next(line for line in shown.stdout.splitlines() if "marked running" in line)
    assert hint.startswith("trial 2 is marked running. If its process was killed, the next tune command on this study")
    assert "A trial begun by an older dropcli holds no lease: if no tune process is training it now" in hint
    command = hint.partition("Mark it failed with: ")[2].partition(" (then")[0]
    words = shlex.split(command)
    assert words[:2] == ["optuna", "tell"]
    told = subprocess.run([sys.executable, "-c", "from optuna.cli import main; main()", *words[1:]], capture_output=True)
    assert told.returncode == 0, told.stderr  # the command it gives works on this journal
    again = invoke("tune", "--summary", "--run-dir", journal.parent)
    assert "marked running" not in again.stdout and "failed" in again.stdout


def test_a_last_line_that_is_no_record_is_named_by_its_number(journal, invoke):
    whole = journal.read_bytes()
    lines = whole.count(b"\n")
    journal.write_bytes(whole + b"not a record")
    result = invoke("tune", "--summary", "--storage", journal)
    assert result.exit_code == 2, result.output
    assert f"(line {lines + 1} is not a journal record)" in result.output, result.output


def test_a_second_cut_is_set_aside_beside_the_first(tmp_path):
    from dropcli.experiments.tune_journal import _free_name

    path = tmp_path / "study.journal"
    assert _free_name(path).name == "study.journal.cut-1"
    (tmp_path / "study.journal.cut-1").write_bytes(b"{")
    assert _free_name(path).name == "study.journal.cut-2"


RECORD = b'{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n'


def test_a_line_in_the_middle_that_is_no_record_is_named_by_its_number(tmp_path):
    from dropcli.errors import DropcliError
    from dropcli.experiments import tune_journal

    path = tmp_path / "study.journal"
    path.write_bytes(RECORD + b'{"no": "op_code"}\n' + RECORD)  # a JSON object, but no journal record
    with pytest.raises(DropcliError, match="line 2 is not a journal record"):
        tune_journal.set_aside_cut_record(path)


def test_a_one_byte_file_is_no_journal_and_an_empty_one_is_a_new_one(tmp_path):
    from dropcli.errors import DropcliError
    from dropcli.experiments import tune_journal

    path = tmp_path / "study.journal"
    path.write_bytes(b"")
    assert tune_journal.set_aside_cut_record(path) is None and path.read_bytes() == b""
    path.write_bytes(b"x")
    with pytest.raises(DropcliError, match="is not an Optuna journal"):
        tune_journal.set_aside_cut_record(path)


def test_a_journal_that_cannot_be_written_is_one_line_naming_it(tmp_path, monkeypatch):
    """Mending a journal (a newline added, a cut record truncated away) that fails to write
    is refused with the file's name, not an OSError."""
    from dropcli.experiments import tune_journal

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    path = tmp_path / "study.journal"
    path.write_bytes(RECORD + RECORD[:-1])  # the last record whole, its newline not written
    opened = Path.open
    monkeypatch.setattr(Path, "open", lambda self, mode="r", *a, **k: fail() if "a" in mode else opened(self, mode, *a, **k))
    assert "study.journal" in refusal(tune_journal._set_aside, path)  # one line naming the file, never an OSError
    monkeypatch.undo()
    path.write_bytes(RECORD + RECORD[:20])  # the last record cut
    monkeypatch.setattr(tune_journal.os, "truncate", fail)
    assert "study.journal" in refusal(tune_journal._set_aside, path)
