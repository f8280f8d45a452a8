"""tune's storage: a database URL gets its driver named (or one line saying what to install), a
server that does not answer is one line and exit 2 with the password hidden, and a study in a
database (SQLite here; PostgreSQL in test_tune_postgres.py) trains like one in a journal file."""

import sys

import pytest

pytest.importorskip("optuna")

SEARCH = ["--set", "data.val_split=0.2", "--space", "optim.lr=0.001:1:log", "--trials", 2]


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    "url, installed, named",
    [
        ("postgresql://u@h:5432/db", "psycopg", "postgresql+psycopg://u@h:5432/db"),
        ("postgresql://u@h:5432/db", "psycopg2", "postgresql+psycopg2://u@h:5432/db"),  # psycopg 3 first, where both are
        ("postgres://u@h/db", "psycopg", "postgresql+psycopg://u@h/db"),
        ("mysql://u@h/db", "pymysql", "mysql+pymysql://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "psycopg", "postgresql+psycopg2://u@h/db"),  # a driver named is kept
        ("sqlite:///study.db", "psycopg", "sqlite:///study.db"),
    ],
)
def test_a_plain_url_gets_the_driver_that_is_installed(monkeypatch, url, installed, named):
    from dropcli.experiments import tune_storage

    monkeypatch.setattr(tune_storage.importlib.util, "find_spec", lambda module: module == installed or None)
    assert tune_storage.driver_url(url) == named


def test_no_postgresql_driver_says_which_extra_to_install(in_tmp, invoke, small_args, monkeypatch):
    from dropcli.experiments import tune_storage

    monkeypatch.setattr(tune_storage.importlib.util, "find_spec", lambda module: None)
    line = one_error_line(invoke("tune", *small_args(), *SEARCH, "--storage", "postgresql://me@db.example:5432/studies"))
    assert "no postgresql driver is installed; pip install 'dropcli[tune-postgres]'" in line
    assert not (in_tmp / "runs").exists()


def test_a_named_driver_that_is_missing_says_what_to_install(in_tmp, invoke, small_args, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymysql", None)  # import pymysql fails, as where it is not installed
    line = one_error_line(invoke("tune", *small_args(), *SEARCH, "--storage", "mysql+pymysql://me@127.0.0.1:1/studies"))
    assert "its driver is not installed; pip install 'dropcli[tune-mysql]'" in line


def test_a_server_that_does_not_answer_is_one_line_without_the_password(in_tmp, invoke, small_args):
    pytest.importorskip("psycopg")
    line = one_error_line(invoke("tune", *small_args(), *SEARCH, "--storage", "postgresql://me:s3cret@127.0.0.1:1/studies"))
    assert "--storage postgresql+psycopg://me:***@127.0.0.1:1/studies: cannot open it" not in line  # the user's URL, not ours
    assert "--storage postgresql://me:***@127.0.0.1:1/studies: cannot open it" in line and "s3cret" not in line
    assert "check the URL, that the server answers" in line
    assert not (in_tmp / "runs").exists()


def test_a_heartbeat_that_is_not_a_number_of_seconds_is_refused(in_tmp, invoke, small_args, monkeypatch):
    monkeypatch.setenv("DROPCLI_HEARTBEAT", "0.5")
    line = one_error_line(invoke("tune", *small_args(), *SEARCH, "--storage", "sqlite:///study.db"))
    assert "DROPCLI_HEARTBEAT='0.5': give a whole number of seconds" in line


def test_a_study_in_a_database_beats_for_its_trials_and_continues_when_rerun(in_tmp, invoke, small_args):
    import optuna

    args = ["tune", *small_args(epochs=1), *SEARCH, "--storage", "sqlite:///study.db", "--pruner", "none", "-q"]
    first = invoke(*args)
    assert first.exit_code == 0 and "this command trained 2 trials" in first.output, first.output
    again = invoke(*args[:-1], "--trials", 3, "-q")
    assert again.exit_code == 0 and "this command trained 1 trial" in again.output, again.output
    storage = optuna.storages.RDBStorage("sqlite:///study.db")
    trials = optuna.load_study(study_name="default", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert all(t.user_attrs["heartbeat"] for t in trials)  # each beat while it ran: a lost worker's trial would be found


def test_the_advisory_lock_number_is_a_bigint_and_the_same_for_the_same_study():
    from dropcli.experiments.tune_storage import lock_number

    numbers = [lock_number(f"dropcli-tune:study-{index}") for index in range(200)]
    assert all(-(2**63) <= number < 2**63 for number in numbers)
    assert min(numbers) < 0 < max(numbers)  # the whole signed range is used, not only its upper half
    assert lock_number("dropcli-tune:a") == lock_number("dropcli-tune:a") != lock_number("dropcli-tune:b")


def test_only_optunas_storage_error_is_looked_through_for_the_databases_own():
    from dropcli.experiments.tune_storage import database_fault

    server = type("OperationalError", (Exception,), {"__module__": "sqlalchemy.exc"})("the server's words")
    wrapped = type("StorageInternalError", (Exception,), {})("commit failed")
    wrapped.__cause__ = server
    assert database_fault(wrapped) is server and database_fault(server) is server
    other = KeyError("x")  # a name that sorts before StorageInternalError: not looked through
    other.__cause__ = server
    assert database_fault(other) is None


def test_a_directory_given_as_storage_names_the_journal_to_give_instead(in_tmp, invoke, small_args):
    (in_tmp / "studies").mkdir()
    args = [*small_args(), "--set", "data.val_split=0.2", "--space", "optim.lr=0.01:1", "--trials", 2, "--storage", "studies"]
    result = invoke("tune", *args)
    assert result.exit_code == 2, result.output
    assert "--storage studies is a directory; name a journal file, e.g. studies/study.journal" in result.output
