"""Where a tune study lives, and how processes share it safely.

A journal file serves one machine (or a shared disk that honours file locks). A database URL
(PostgreSQL, MySQL/MariaDB, SQLite) is Optuna's RDB storage: the same command on several
machines shares one study. With a database, heartbeats are on: each running trial beats every
DROPCLI_HEARTBEAT seconds (60 by default), and a trial silent for twice that (its worker killed,
its machine gone) is failed by the next process that looks and retried as a new trial with the
same values and run directory. Optuna 5's journal storage keeps no heartbeats: there each running
trial holds a lease instead, a lock on a file of its own beside the journal, which the kernel lets
go however its process ends; a running trial whose lease nobody holds is marked interrupted by the
next process that looks, and continued like one stopped by Ctrl-C.

Every process counts the study's trials and asks for the next under one lock, so together they
train exactly the budget: a lock on the journal file (or SQLite's file), an advisory lock in
PostgreSQL, a named lock in MySQL. Each is let go by the server or the kernel if its process dies.
"""

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from dropcli import files
from dropcli.errors import DropcliError, first_line
from dropcli.experiments import tune_journal

JOURNAL = "study.journal"  # the default storage, in the study directory
HEARTBEAT_ENV = "DROPCLI_HEARTBEAT"
HEARTBEAT_S = 60
LEASE_ATTR = "lease"  # a journal trial's user attribute: it holds a lease (begun by a dropcli that takes them)
# RDBStorage's argument for the callback of a stale trial: renamed in Optuna 4.9.
_CALLBACK = "heartbeat_stale_trial_callback"
# A URL's scheme without a driver -> the drivers tried for it, in order: (SQLAlchemy's name, module).
# SQLAlchemy 2.0 reads a plain postgresql:// as psycopg2 and 2.1 as psycopg 3; naming the driver
# makes the plain URL work with whichever the extra installed, under either.
PLAIN_DRIVERS = {
    "postgresql": (("psycopg", "psycopg"), ("psycopg2", "psycopg2")),
    "postgres": (("psycopg", "psycopg"), ("psycopg2", "psycopg2")),
    "mysql": (("pymysql", "pymysql"), ("mysqldb", "MySQLdb")),
    "mariadb": (("pymysql", "pymysql"), ("mysqldb", "MySQLdb")),
}
# What to install for each driver SQLAlchemy may name.
INSTALL = {
    "psycopg": "pip install 'dropcli[tune-postgres]' (psycopg 3)",
    "psycopg2": "pip install psycopg2-binary",
    "pymysql": "pip install 'dropcli[tune-mysql]' (PyMySQL)",
    "mysqldb": "pip install mysqlclient",
    "mysqlconnector": "pip install mysql-connector-python",
    "mariadbconnector": "pip install mariadb",
}


def is_database(storage: str) -> bool:
    """Whether --storage names a database (a URL) rather than a journal file."""
    return "://" in storage


def shown(storage: str) -> str:
    """The storage as messages and files may show it: a URL's password hidden."""
    if not is_database(storage):
        return storage
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):  # a URL SQLAlchemy cannot read has no password it can find either
        return make_url(storage).render_as_string(hide_password=True)
    return storage


def driver_url(storage: str) -> str:
    """The URL with its driver named: postgresql:// becomes postgresql+psycopg:// (or +psycopg2,
    whichever is installed); a URL that names its driver is left as it is."""
    scheme, _, rest = storage.partition("://")
    if scheme not in PLAIN_DRIVERS:
        return storage
    for driver, module in PLAIN_DRIVERS[scheme]:
        if importlib.util.find_spec(module) is not None:
            return f"{'postgresql' if scheme == 'postgres' else scheme}+{driver}://{rest}"
    driver = PLAIN_DRIVERS[scheme][0][0]
    raise DropcliError(f"--storage {shown(storage)}: no {scheme} driver is installed; {INSTALL[driver]}")


def heartbeat_seconds() -> int:
    """DROPCLI_HEARTBEAT: seconds between a running trial's heartbeats (a trial silent for twice as long is failed and retried)."""
    text = os.environ.get(HEARTBEAT_ENV, str(HEARTBEAT_S))
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise DropcliError(f"{HEARTBEAT_ENV}={text!r}: give a whole number of seconds, at least 1 (default {HEARTBEAT_S})")
    return seconds


def open_storage(optuna, storage: str, notice: Callable[[str], None] | None = None):
    """The Optuna storage --storage names: a database with heartbeats on (retry_stale retries
    a trial whose worker died), or a journal file, checked first (tune_journal.py; `notice` hears
    of a cut record set aside)."""
    if is_database(storage):
        return _database(optuna, storage)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = Path(storage)
    if path.is_dir():
        raise DropcliError(f"--storage {path} is a directory; name a journal file, e.g. {path / JOURNAL}")
    set_aside = tune_journal.set_aside_cut_record(path)
    if set_aside is not None and notice is not None:
        notice(set_aside)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as error:
        raise DropcliError(f"--storage {path}: cannot open it ({error.strerror or error}); choose a writable place") from None


def _database(optuna, storage: str):
    url = driver_url(storage)
    # A server restarted under a running study: test each pooled connection before use.
    engine = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    heartbeat = heartbeat_seconds()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Processes started together on an empty database would each make Optuna's tables: one at a time.
            with _tables_lock(url):
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    **{_CALLBACK: retry_stale},
                )
    except ImportError:
        driver = url.partition("://")[0].partition("+")[2]
        install = INSTALL.get(driver, f"install the {driver or 'database'} driver SQLAlchemy names for it")
        raise DropcliError(f"--storage {shown(storage)}: its driver is not installed; {install}") from None
    except Exception as error:  # a bad URL, a server that does not answer, a refused login: one answer
        raise DropcliError(
            f"--storage {shown(storage)}: cannot open it ({first_line(error, 160)}); check the URL, that the server "
            "answers and lets this user in, e.g. postgresql://USER@HOST:5432/DB or sqlite:///study.db, "
            "or leave --storage out for a local journal"
        ) from None


def database_fault(error: BaseException) -> BaseException | None:
    """The database's own error behind `error` (SQLAlchemy's), or None for any other error.
    Optuna wraps a failed commit in its StorageInternalError: the server's words are its cause."""
    fault = error.__cause__ if type(error).__name__ == "StorageInternalError" and error.__cause__ else error
    return fault if type(fault).__module__.startswith("sqlalchemy") else None


@contextlib.contextmanager
def database_errors(storage: str) -> Iterator[None]:
    """A database that stops answering in mid-study, as one line: what is kept and how to go on."""
    try:
        yield
    except Exception as error:
        fault = database_fault(error)
        if fault is None:
            raise
        interrupt = _interrupt_behind(error)
        if interrupt is not None:
            # Ctrl-C in mid-query leaves the connection unusable, and the next statement on it
            # fails while the interrupt is handled: the interruption is what happened (exit 130).
            raise interrupt from None
        raise DropcliError(
            f"--storage {shown(storage)}: the database stopped answering ({first_line(fault, 160)}); the study is kept "
            "in it: once the server answers again, run the same command to continue (a trial cut short is retried "
            "once its heartbeat is stale)"
        ) from None


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C during whose handling `error` was raised, if any."""
    seen = error.__context__
    while seen is not None and not isinstance(seen, KeyboardInterrupt):
        seen = seen.__context__
    return seen


@contextlib.contextmanager
def budget_lock(storage, where: str, study: str) -> Iterator[None]:
    """One process at a time counts the study's trials and asks for the next. Each lock is let
    go if its holder dies: the kernel drops a file lock, the server a session's lock."""
    engine = getattr(storage, "engine", None)
    if engine is None:  # a journal file
        with _file_lock(where):
            yield
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with _file_lock(engine.url.database):
            yield
    else:
        with _server_lock(engine, f"dropcli-tune:{study}"):
            yield


def lock_number(key: str) -> int:
    """PostgreSQL's advisory locks take a bigint: the key's hash as a signed 64-bit number, the
    same in every process."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _server_lock(engine, key: str) -> Iterator[None]:
    """A lock the database server holds for this session: PostgreSQL's advisory lock, MySQL's named lock."""
    if engine.dialect.name == "postgresql":
        with _session_lock(engine, "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)", lock_number(key)):
            yield
    elif engine.dialect.name in ("mysql", "mariadb"):
        with _session_lock(engine, "SELECT GET_LOCK(:key, -1)", "SELECT RELEASE_LOCK(:key)", key[:64]):
            yield
    else:
        yield


@contextlib.contextmanager
def _tables_lock(url: str) -> Iterator[None]:
    if url.startswith("sqlite"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with _server_lock(engine, "dropcli-tune-tables"):
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _session_lock(engine, take: str, give: str, key) -> Iterator[None]:
    from sqlalchemy import text

    with engine.connect() as connection:
        connection.execute(text(take), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a server gone takes its locks with it
                connection.execute(text(give), {"key": key})
                connection.commit()


@contextlib.contextmanager
def heartbeats(storage, trial_id: int) -> Iterator[None]:
    """While a trial runs, its heartbeat every interval (a database only; nothing for a journal).
    A beat that fails (the server gone) ends the beating quietly: the trial's next report meets
    the same fault and says it."""
    if not beats(storage):
        yield
        return
    interval = storage.get_heartbeat_interval()
    storage.record_heartbeat(trial_id)  # at once: a trial that never beat is never found stale
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                storage.record_heartbeat(trial_id)
            except Exception:
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def beats(storage) -> bool:
    """Whether the storage keeps heartbeats (a database does; a journal file does not)."""
    return getattr(storage, "get_heartbeat_interval", lambda: None)() is not None


def fail_stale(optuna, storage, study) -> None:
    """Fail the study's trials whose heartbeat is stale; retry_stale retries each."""
    if not beats(storage):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def ask(study):
    """study.ask(), without Optuna's warning that heartbeats are meant for study.optimize():
    dropcli beats for its trials itself (heartbeats)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()


def retry_stale(study, trial) -> None:
    """A trial failed for its stale heartbeat (its worker died) is retried: a waiting trial with
    its values and run directory, which the next process to ask takes, continuing the run from its
    last checkpoint where that is on its disk. The failed one is then not counted (retry_of)."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "run": trial.user_attrs.get("run")})


def lease_path(journal: str, trial_id: int) -> Path:
    """The file whose lock a journal study's running trial holds: hidden, beside the journal."""
    path = Path(journal)
    return path.parent / f".{path.name}.leases" / str(trial_id)


@contextlib.contextmanager
def lease(storage, journal: str, trial) -> Iterator[None]:
    """While a trial of a journal study runs, this process holds the lock on its lease file
    (nothing for a database: it beats instead). The trial is marked as holding a lease only once
    it does, so no other process takes a trial still starting for a lost one."""
    if beats(storage):
        yield
        return
    path = lease_path(journal, trial._trial_id)
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        trial.set_user_attr(LEASE_ATTR, True)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # the lock goes with the descriptor


def lease_lost(journal: str, trial) -> bool:
    """Whether a running journal trial that took a lease has lost its process: no process holds
    its lease's lock. A trial begun without one (an older dropcli) is never judged lost."""
    return bool(trial.user_attrs.get(LEASE_ATTR)) and not files.in_use(lease_path(journal, trial._trial_id))


def give_up_lost(storage, study, where: str) -> None:
    """A journal study's running trials whose process died (their lease let go) are marked
    interrupted, so that tune_search continues them like trials stopped by Ctrl-C."""
    from optuna.trial import TrialState

    if beats(storage):
        return
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not lease_lost(where, trial):
            continue
        if give_up(storage, trial, "its process died"):
            with contextlib.suppress(OSError):
                lease_path(where, trial._trial_id).unlink()


def give_up(storage, trial, reason: str) -> bool:
    """Mark a running trial interrupted (failed, to be continued by the next process), unless it
    has ended already (told by the code that trained it, or by another process): True if marked."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)  # before the state: never a plain failure
        storage.set_trial_user_attr(trial._trial_id, "reason", reason)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    except Exception as fault:  # Ctrl-C in mid-query leaves a database connection unusable: its heartbeat will tell
        if database_fault(fault) is None:
            raise
        return False
    return True
