"""Writing files so that nothing is ever half-written, and one writer per directory.

Whole files go to a temporary name beside the target and are renamed over it, so a crash or a
full disk leaves the old file or the new one, never a torn one. `metrics.jsonl`-style files grow
by one whole line at a time, and a failed append is cut back. A failure to write is a
`WriteError`: one line naming the file and the reason.
"""

import contextlib
import errno
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dropcli.errors import DropcliError, first_line

TEMPORARY_SUFFIX = ".tmp"


def _file_mode() -> int:
    # What open() would give a new file under this process's umask (0644 under the usual 022),
    # so the files of a run are all readable alike; temporary files start out 0600.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


class WriteError(DropcliError):
    """A file could not be written: a full disk, no permission, a read-only file system."""

    exit_code = 1


def write_failed(path: Path, error: BaseException) -> WriteError:
    """The one-line error for a failed write of `path`."""
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror
        if error.errno == errno.ENOSPC:
            reason += "; free some space"
    else:  # torch.save reports a full disk as a RuntimeError
        reason = first_line(error, limit=None)
        if _disk_is_full(path.parent):
            reason = f"No space left on device ({reason}); free some space"
    return WriteError(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s new content to; it replaces `path` on success.

    On any failure the temporary file is removed and `path` is left as it was.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")
    try:
        yield temporary
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        raise write_failed(path, error) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def check_writable(path: Path, option: str) -> None:
    """Refuse, before any work, an output file that could not be written: a directory in its
    place, no parent directory, or a parent where writing fails. The write is tried (and undone),
    since mode bits do not stop root while a read-only file system stops everyone."""
    if path.is_dir():
        raise DropcliError(f"{option} {path}: cannot write it: it is a directory; name a file in it")
    if not path.parent.is_dir():
        raise DropcliError(f"{option} {path}: cannot write it: no directory {path.parent}; make it first, or name another")
    probe = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")
    try:
        probe.open("xb").close()
    except OSError as error:
        raise WriteError(f"{option} {path}: cannot write in {path.parent} ({error.strerror or error})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with atomic(path) as temporary:
        with open(temporary, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())


def write_json(path: Path, obj: Any) -> None:
    # allow_nan=False: strict JSON that any reader takes; a NaN here is a bug, not a value.
    write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def json_line(record: Any) -> str:
    return json.dumps(record, allow_nan=False) + "\n"


def append_line(path: Path, line: str) -> None:
    """Append one whole line; if the write fails part-way, cut the file back to what it was."""
    size = path.stat().st_size if path.exists() else 0
    try:
        with open(path, "a") as file:
            file.write(line)
            file.flush()
    except OSError as error:
        with contextlib.suppress(OSError):
            os.truncate(path, size)
        raise write_failed(path, error) from None


def remove_temporaries(directory: Path) -> None:
    """Delete the temporary files a killed writer left in `directory` (call it holding the lock)."""
    for path in directory.glob(f".*{TEMPORARY_SUFFIX}"):
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def locked(directory: Path, what: str = "run directory") -> Iterator[None]:
    """Hold an exclusive OS lock on `directory` while this process writes into it.

    The lock is flock(2) on the directory itself: no lock file to clean up, and the kernel
    drops it when the process ends in any way, so a crashed run never leaves a stale lock.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as error:
        raise DropcliError(f"cannot open {what} {directory}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DropcliError(
                f"{what} {directory} is in use by another dropcli process; wait for it to finish, or stop it first"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def in_use(path: Path) -> bool:
    """Whether a process holds `path`'s lock right now (a run directory still training, a tune
    trial's lease)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _disk_is_full(directory: Path) -> bool:
    try:
        return os.statvfs(directory).f_bavail == 0
    except OSError:
        return False
