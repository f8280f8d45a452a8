"""tune's storage: a database URL gets its driver named (or one line saying what to install), a
server that does not answer is one line and exit 2 with the password hidden, and a study in a
database (SQLite here; PostgreSQL in test_tune_postgres.py) trains like one in a journal file."""

import contextlib
import fcntl
import os
import sys
import time
from types import SimpleNamespace

import pytest

from conftest import accepted

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


def test_a_database_url_without_a_driver_says_to_install_the_one_sqlalchemy_names(monkeypatch):
    import optuna

    from dropcli.errors import DropcliError
    from dropcli.experiments.tune_storage import open_storage

    monkeypatch.setitem(sys.modules, "pyodbc", None)  # SQLAlchemy's default driver for mssql://, not installed
    with pytest.raises(DropcliError, match="not installed; install the database driver SQLAlchemy names for it$"):
        open_storage(optuna, "mssql://me@127.0.0.1:1/studies")


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


def test_a_budget_held_by_a_trial_running_elsewhere_is_waited_for_not_left(in_tmp, invoke, small_args, monkeypatch):
    """The budget is full but a trial with a heartbeat still runs in another process (whose worker
    may yet die, the trial then retried here): the search waits a heartbeat and looks again."""
    from dropcli.experiments import tune_search

    monkeypatch.setenv("DROPCLI_HEARTBEAT", "1")
    real, looks = tune_search._next_trial, []

    def next_trial(optuna, storage, study, search):
        looks.append(time.monotonic())
        if len(looks) == 1:  # as if another process's running trial held the budget's last place
            return None, [SimpleNamespace(state=SimpleNamespace(name="RUNNING"), user_attrs={"heartbeat": True})]
        return real(optuna, storage, study, search)  # that trial gone: the place is free

    monkeypatch.setattr(tune_search, "_next_trial", next_trial)
    result = invoke("tune", *small_args(epochs=1), *SEARCH[:-1], 1, "--storage", "sqlite:///study.db", "--pruner", "none", "-q")
    assert result.exit_code == 0 and "this command trained 1 trial" in result.output, result.output
    # Looked, waited a heartbeat, looked again and trained, then found the budget held.
    assert len(looks) == 3 and looks[1] - looks[0] >= 1


def test_the_advisory_lock_number_is_a_bigint_and_the_same_for_the_same_study():
    from dropcli.experiments.tune_storage import lock_number

    numbers = [lock_number(f"dropcli-tune:study-{index}") for index in range(200)]
    assert all(-(2**63) <= number < 2**63 for number in numbers)
    assert min(numbers) < 0 < max(numbers)  # the whole signed range is used, not only its upper half
    # All 64 bits, not fewer (fewer bits: more studies sharing one lock): 200 keys of 56 bits would all lie within 2**55.
    assert max(abs(number) for number in numbers) >= 2**56
    assert lock_number("dropcli-tune:a") == lock_number("dropcli-tune:a") != lock_number("dropcli-tune:b")


def test_only_optunas_storage_error_is_looked_through_for_the_databases_own():
    from dropcli.experiments.tune_storage import database_fault

    server = type("OperationalError", (Exception,), {"__module__": "sqlalchemy.exc"})("the server's words")
    wrapped = type("StorageInternalError", (Exception,), {})("commit failed")
    wrapped.__cause__ = server
    assert database_fault(wrapped) is server and database_fault(server) is server
    for other in (KeyError("x"), ValueError("x")):  # names that sort before and after StorageInternalError: not looked through
        other.__cause__ = server
        assert database_fault(other) is None


def test_a_directory_given_as_storage_names_the_journal_to_give_instead(in_tmp, invoke, small_args):
    (in_tmp / "studies").mkdir()
    args = [*small_args(), "--set", "data.val_split=0.2", "--space", "optim.lr=0.01:1", "--trials", 2, "--storage", "studies"]
    result = invoke("tune", *args)
    assert result.exit_code == 2, result.output
    assert "--storage studies is a directory; name a journal file, e.g. studies/study.journal" in result.output


# The database paths below are unit-tested with stand-ins for the engine and for Optuna, so they
# run without a server; test_tune_postgres.py runs them against a real PostgreSQL.


class StandInEngine:
    """What budget_lock and the server locks read of an engine: its dialect's name, its URL's
    database, and a connection whose statements are recorded."""

    def __init__(self, dialect: str, database: str | None = "studies"):
        self.dialect = SimpleNamespace(name=dialect)
        self.url = SimpleNamespace(database=database)
        self.statements = []

    @contextlib.contextmanager
    def connect(self):
        def execute(sql, params):
            self.statements.append((str(sql).split("(")[0], params["key"]))

        yield SimpleNamespace(execute=execute, commit=lambda: None)


def stand_in_optuna(**storages):
    """Optuna as tune_storage calls it: the storages module's names given, and its warning class."""
    return SimpleNamespace(storages=SimpleNamespace(**storages), exceptions=SimpleNamespace(ExperimentalWarning=Warning))


@pytest.mark.parametrize(
    "dialect, take, give, key",
    [
        ("postgresql", "SELECT pg_advisory_lock", "SELECT pg_advisory_unlock", "number"),
        ("mysql", "SELECT GET_LOCK", "SELECT RELEASE_LOCK", "dropcli-tune:study-a"),
        ("mariadb", "SELECT GET_LOCK", "SELECT RELEASE_LOCK", "dropcli-tune:study-a"),
    ],
)
def test_a_server_study_is_counted_under_the_servers_lock_taken_and_given_back(monkeypatch, dialect, take, give, key):
    from dropcli.experiments import tune_storage

    files_locked = []
    monkeypatch.setattr(tune_storage, "_file_lock", lambda path: files_locked.append(path))
    engine = StandInEngine(dialect)  # a database name that is no file: only SQLite's is locked as one
    key = tune_storage.lock_number("dropcli-tune:study-a") if key == "number" else key
    with tune_storage.budget_lock(SimpleNamespace(engine=engine), "unused", "study-a"):
        assert engine.statements == [(take, key)]
    assert engine.statements == [(take, key), (give, key)]
    assert files_locked == []


def test_mysqls_lock_name_is_the_first_64_characters_of_a_long_studys_key():
    from dropcli.experiments import tune_storage

    study = "s" * 80  # MySQL refuses a lock name over 64 characters
    engine = StandInEngine("mysql")
    with tune_storage.budget_lock(SimpleNamespace(engine=engine), "unused", study):
        pass
    name = ("dropcli-tune:" + study)[:64]
    assert engine.statements == [("SELECT GET_LOCK", name), ("SELECT RELEASE_LOCK", name)]


def test_giving_up_a_trial_says_whether_it_marked_it_and_lets_only_our_own_bugs_through():
    from optuna.exceptions import UpdateFinishedTrialError

    from dropcli.experiments.tune_storage import give_up

    class Storage:
        def __init__(self, error=None):
            self.error, self.calls = error, []

        def set_trial_user_attr(self, trial_id, key, value):
            if self.error is not None:
                raise self.error
            self.calls.append((key, value))

        def set_trial_state_values(self, trial_id, state):
            self.calls.append(("state", state.name))

    trial = SimpleNamespace(_trial_id=7)
    marked = Storage()
    assert give_up(marked, trial, "Ctrl-C") is True
    assert marked.calls == [("interrupted", True), ("reason", "Ctrl-C"), ("state", "FAIL")]
    assert give_up(Storage(UpdateFinishedTrialError("ended")), trial, "Ctrl-C") is False  # ended already
    broken = type("ProgrammingError", (Exception,), {"__module__": "sqlalchemy.exc"})("connection in transaction")
    try:
        kept_running = give_up(Storage(broken), trial, "Ctrl-C")
    except Exception as error:
        pytest.fail(f"the database's fault escaped giving up: {error!r}")
    assert kept_running is False  # its heartbeat will tell
    with pytest.raises(Exception) as caught:
        give_up(Storage(KeyError("a bug of ours")), trial, "Ctrl-C")
    assert type(caught.value) is KeyError


def test_a_journal_that_cannot_be_made_says_why_in_the_systems_words(tmp_path):
    import optuna

    from dropcli.errors import DropcliError
    from dropcli.experiments.tune_storage import open_storage

    (tmp_path / "a-file").write_text("")
    where = tmp_path / "a-file" / "study.journal"  # its folder would have to be a file's name
    with pytest.raises(DropcliError) as caught:
        open_storage(optuna, str(where))
    assert str(caught.value) == f"--storage {where}: cannot open it (File exists); choose a writable place"


def test_a_journal_opens_in_a_folder_that_exists_as_in_one_made_for_it(tmp_path):
    import optuna

    from dropcli.experiments.tune_storage import open_storage

    for where in (tmp_path / "study.journal", tmp_path / "new" / "deeper" / "study.journal"):
        accepted(f"a journal at {where}", open_storage, optuna, str(where))
        assert where.parent.is_dir()


def test_an_in_memory_sqlite_study_takes_no_lock(monkeypatch):
    from dropcli.experiments import tune_storage

    files_locked = []
    monkeypatch.setattr(tune_storage, "_file_lock", lambda path: files_locked.append(path))
    engine = StandInEngine("sqlite", database=":memory:")
    with tune_storage.budget_lock(SimpleNamespace(engine=engine), "unused", "study-a"):
        pass
    assert engine.statements == [] and files_locked == []


def test_a_sqlite_file_study_is_counted_under_a_lock_on_its_file(tmp_path):
    import optuna

    from dropcli.experiments import tune_storage

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    other = os.open(tmp_path / "study.db", os.O_RDONLY)  # another process's attempt, as flock sees it
    try:
        with tune_storage.budget_lock(storage, "unused", "study-a"):
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # let go afterwards
    finally:
        os.close(other)


def test_optunas_tables_are_made_under_a_server_lock_except_in_sqlite(monkeypatch):
    import sqlalchemy

    from dropcli.experiments import tune_storage

    keys, disposed = [], []

    @contextlib.contextmanager
    def server_lock(engine, key):
        keys.append(key)
        yield

    monkeypatch.setattr(tune_storage, "_server_lock", server_lock)
    monkeypatch.setattr(sqlalchemy, "create_engine", lambda url, **_: SimpleNamespace(dispose=lambda: disposed.append(url)))
    with tune_storage._tables_lock("postgresql+psycopg://me@db.example/studies"):
        assert keys == ["dropcli-tune-tables"]
    assert disposed == ["postgresql+psycopg://me@db.example/studies"]
    with tune_storage._tables_lock("sqlite:///study.db"):  # SQLite's own file lock serialises its writers
        pass
    assert keys == ["dropcli-tune-tables"]


def test_a_database_storage_beats_at_the_interval_given_and_is_stale_after_twice_it(monkeypatch):
    from dropcli.experiments import tune_storage

    made = []
    monkeypatch.setenv("DROPCLI_HEARTBEAT", "7")
    tune_storage._database(stand_in_optuna(RDBStorage=lambda url, **settings: made.append((url, settings))), "sqlite:///study.db")
    [(url, settings)] = made
    assert url == "sqlite:///study.db"
    assert settings["heartbeat_interval"] == 7 and settings["grace_period"] == 14
    assert settings[tune_storage._CALLBACK] is tune_storage.retry_stale


def test_the_heartbeat_is_a_minute_unless_set_and_one_second_is_allowed(monkeypatch):
    from dropcli.experiments.tune_storage import heartbeat_seconds

    monkeypatch.delenv("DROPCLI_HEARTBEAT", raising=False)
    assert heartbeat_seconds() == 60  # as docs/tune.md and docs/parallel.md say
    monkeypatch.setenv("DROPCLI_HEARTBEAT", "1")
    assert accepted("a heartbeat of one second", heartbeat_seconds) == 1


def test_a_long_refusal_from_the_database_is_quoted_cut_to_160_characters():
    from dropcli.errors import DropcliError
    from dropcli.experiments import tune_storage

    def refuse(url, **settings):
        raise RuntimeError("r" * 300)

    with pytest.raises(DropcliError) as caught:
        tune_storage._database(stand_in_optuna(RDBStorage=refuse), "sqlite:///study.db")
    assert f"cannot open it ({'r' * 160}); check the URL" in str(caught.value)


def test_a_database_that_stops_answering_is_one_line_and_other_errors_pass_through():
    from dropcli.errors import DropcliError
    from dropcli.experiments.tune_storage import database_errors

    fault = type("OperationalError", (Exception,), {"__module__": "sqlalchemy.exc"})("s" * 300 + "\nthe rest")
    with pytest.raises(Exception) as caught:
        with database_errors("postgresql://me:s3cret@db.example/studies"):
            raise fault
    assert isinstance(caught.value, DropcliError), caught.value
    line = str(caught.value)
    assert line.startswith("--storage postgresql://me:***@db.example/studies: the database stopped answering")
    assert f"({'s' * 160}); the study is kept" in line and "s3cret" not in line
    with pytest.raises(Exception) as caught:
        with database_errors("postgresql://me@db.example/studies"):
            raise KeyError("a bug of ours")
    assert type(caught.value) is KeyError  # not dressed up as the database's fault


def test_a_database_error_met_while_handling_ctrl_c_is_reported_as_the_ctrl_c():
    """Ctrl-C in mid-query leaves the connection in a transaction; the next statement on it fails
    (psycopg: "can't change 'autocommit' now") while the interrupt is handled. Exit 130, not 2."""
    from dropcli.experiments.tune_storage import database_errors

    fault = type("ProgrammingError", (Exception,), {"__module__": "sqlalchemy.exc"})("can't change 'autocommit' now")

    def marking_the_trial_interrupted():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            try:
                raise ValueError("a step between")  # the interrupt further down the chain
            except ValueError:
                raise fault from None

    with pytest.raises(BaseException) as caught:
        with database_errors("postgresql://me@db.example/studies"):
            marking_the_trial_interrupted()
    assert type(caught.value) is KeyboardInterrupt, caught.value


class Beating:
    """A storage that records heartbeats; interval None is a database with heartbeats off."""

    def __init__(self, interval):
        self.interval, self.beats = interval, []

    def get_heartbeat_interval(self):
        return self.interval

    def record_heartbeat(self, trial_id):
        self.beats.append(trial_id)


def test_a_running_trial_beats_every_interval_until_it_ends():
    from dropcli.experiments.tune_storage import heartbeats

    storage = Beating(0.01)
    with heartbeats(storage, 7):
        deadline = time.monotonic() + 30
        while len(storage.beats) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(storage.beats) >= 4 and set(storage.beats) == {7}
    ended = len(storage.beats)
    time.sleep(0.05)
    assert len(storage.beats) == ended


def test_a_heartbeat_that_fails_ends_the_beating_quietly(monkeypatch):
    # The server gone: the beat thread stops without a traceback; the trial's next report says it.
    import threading

    from dropcli.experiments.tune_storage import heartbeats

    class Failing(Beating):
        def record_heartbeat(self, trial_id):
            super().record_heartbeat(trial_id)
            if len(self.beats) > 1:
                raise ConnectionError("server closed the connection")

    escaped = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    storage = Failing(0.01)
    with heartbeats(storage, 7):
        deadline = time.monotonic() + 30
        while len(storage.beats) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert storage.beats == [7, 7] and escaped == []


def test_a_storage_without_heartbeats_is_neither_beaten_for_nor_searched_for_stale_trials():
    from dropcli.experiments import tune_storage

    searched = []
    optuna = stand_in_optuna(fail_stale_trials=searched.append)
    silent = Beating(None)
    with tune_storage.heartbeats(silent, 7):
        pass
    tune_storage.fail_stale(optuna, silent, "study-a")
    assert silent.beats == [] and searched == []
    tune_storage.fail_stale(optuna, Beating(60), "study-b")
    assert searched == ["study-b"]


def test_a_journal_with_a_cut_last_record_is_mended_and_the_caller_told_once(tmp_path):
    import optuna

    from dropcli.experiments.tune_storage import open_storage

    path = tmp_path / "study.journal"
    optuna.create_study(study_name="s", storage=open_storage(optuna, str(path)))
    path.write_bytes(path.read_bytes() + b'{"op_code": 4, "worker_id"')
    heard = []
    open_storage(optuna, str(path), notice=heard.append)
    assert len(heard) == 1 and "its last record was cut short" in heard[0]
    open_storage(optuna, str(path), notice=heard.append)  # whole now: nothing more to say
    assert len(heard) == 1


def test_tune_tells_the_user_when_it_mends_a_cut_journal(in_tmp, invoke, small_args):
    # Two trials: the second's lease goes in the folder the first's made.
    args = ["tune", *small_args(epochs=1), *SEARCH, "--storage", "study.journal", "--pruner", "none"]
    first = invoke(*args, "-q")
    assert first.exit_code == 0, first.output
    path = in_tmp / "study.journal"
    path.write_bytes(path.read_bytes() + b'{"op_code": 4, "worker_id"')  # as a writer killed mid-record leaves it
    again = invoke(*args)
    assert again.exit_code == 0 and "its last record was cut short" in again.output, again.output


def test_a_retried_trial_waits_until_its_run_is_let_go(tmp_path):
    import threading

    from dropcli import files
    from dropcli.experiments.tune_search import _wait_until_free

    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # the process whose heartbeat was late, still training the run
        with files.locked(tmp_path):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(60)
    waiter = threading.Thread(target=_wait_until_free, args=(tmp_path,))
    waiter.start()
    waiter.join(1.0)
    assert waiter.is_alive()  # the run is held: however long, it cannot go on
    release.set()
    holder.join(60)
    waiter.join(60)
    assert not waiter.is_alive()  # let go: it goes on


def test_a_journal_trial_is_given_up_only_once_no_process_holds_its_lease(tmp_path):
    import optuna

    from dropcli.experiments import tune_search, tune_storage
    from dropcli.experiments.tune_storage import lease, lease_path, open_storage

    journal = str(tmp_path / "study.journal")
    storage = open_storage(optuna, journal)
    study = optuna.create_study(study_name="s", storage=storage)
    older = study.ask()  # begun by a dropcli without leases: never judged, whatever its process
    trial = study.ask()
    umask = os.umask(0o022)
    try:
        with lease(storage, journal, trial):
            assert lease_path(journal, trial._trial_id).is_file()
            # rw-r--r--: any process that can read the journal can open the lease to test its lock.
            assert lease_path(journal, trial._trial_id).stat().st_mode & 0o777 == 0o644
            tune_storage.give_up_lost(storage, study, journal)  # its process holds the lease: still running
            assert [t.state.name for t in study.get_trials()] == ["RUNNING", "RUNNING"]
    finally:
        os.umask(umask)
    # What a process killed outright leaves: the trial running, the lease let go (here with its file gone too).
    tune_storage.give_up_lost(storage, study, journal)
    first, second = study.get_trials()
    assert first.number == older.number and first.state.name == "RUNNING"
    assert second.state.name == "FAIL" and tune_search.interrupted(second)
    assert second.user_attrs["reason"] == "its process died"
    assert tune_search._enqueue_interrupted(study) == 0  # no run directory yet: nothing to continue


def test_a_lease_left_by_a_killed_process_is_let_go_and_cleared(tmp_path):
    import optuna

    from dropcli.experiments import tune_search, tune_storage
    from dropcli.experiments.tune_storage import LEASE_ATTR, lease_path, open_storage

    journal = str(tmp_path / "study.journal")
    storage = open_storage(optuna, journal)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    trial.set_user_attr(LEASE_ATTR, True)
    trial.set_user_attr("run", "trial-0000")
    path = lease_path(journal, trial._trial_id)
    path.parent.mkdir()
    path.touch()  # the file a killed process leaves, its lock gone with the process
    tune_storage.give_up_lost(storage, study, journal)
    assert study.get_trials()[0].state.name == "FAIL" and not path.exists()
    assert tune_search._enqueue_interrupted(study) == 1  # continued in its run directory by the next trial
    assert study.get_trials()[1].user_attrs == {"retry_of": 0, "run": "trial-0000"}


def test_a_study_another_process_creates_first_is_loaded_not_refused(tmp_path, monkeypatch):
    # Two workers starting at once: both find no study, the other creates it first.
    import optuna

    from conftest import TUNE_NOTHING_GIVEN
    from dropcli.experiments import tune

    plan = tmp_path / "plan.yaml"
    plan.write_text(f"space:\n  optim.lr: '0.01:1:log'\ntrials: 2\nstorage: {tmp_path / 'study.journal'}\n")
    search = tune.resolve(plan, None, ["data.val_split=0.2"], {}, TUNE_NOTHING_GIVEN)
    first = tune.open_study(search, optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner(), print)
    monkeypatch.setattr(tune, "_stored_directions", lambda *args: None)  # looked before the other created it
    try:
        second = tune.open_study(search, optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner(), print)
    except optuna.exceptions.DuplicatedStudyError:
        pytest.fail("the study the other process created was refused, not loaded")
    assert second._study_id == first._study_id
