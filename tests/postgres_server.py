"""A real PostgreSQL server for the tests of tune's shared studies, from the system's own binaries
(the `postgres` fixture of conftest.py).

The server runs from a temporary directory on a free port of 127.0.0.1 (its unix socket in that
directory too), with trust authentication for the user `dropcli`, and is stopped when the session
ends. PostgreSQL refuses to run as root, so under root it runs as the `postgres` user. Tests that
need it are skipped, with the reason, only where PostgreSQL is not installed (.ci/run installs it).
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "dropcli"


def _binaries() -> Path | None:
    """The directory of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/VERSION/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Postgres:
    """A PostgreSQL server of the test session: url(name) makes a database and names it."""

    bin: Path
    directory: Path
    port: int
    owner: list[str]  # the command prefix that runs as the server's unprivileged user

    def run(self, *command: str) -> None:
        subprocess.run([*self.owner, *command], check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self.run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-l",
            str(self.directory / "log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        # fast: clients are cut off at once, as when a database server goes down under them.
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def url(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def running_server():
    """A server for the session: started here, stopped and removed on leaving."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql): apt-get install postgresql")
    pytest.importorskip("psycopg", reason="the tests' PostgreSQL driver: pip install 'dropcli[tune-postgres]'")
    owner = []
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        owner = ["runuser", "-u", "postgres", "--"]
    directory = Path(tempfile.mkdtemp(prefix="dropcli-postgres-"))
    if owner:
        shutil.chown(directory, "postgres")
    server = Postgres(binaries, directory, _free_port(), owner)
    try:
        server.run(str(binaries / "initdb"), "-D", str(directory / "data"), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
