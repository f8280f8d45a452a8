"""A study's journal file, checked before Optuna reads it or appends to it.

Optuna's journal is one JSON record a line. A kill or a full disk during a write can leave the
last line cut short; Optuna reads past it, but its next append lands after the cut bytes and
joins them into a line that is not JSON, and from then on the whole journal is unreadable. So
before a study is opened the cut record is set aside: its bytes are kept in a file beside the
journal (STUDY.journal.cut-N), the journal is cut back to its last whole record, and one line
says so. A file whose whole lines are not journal records is refused, naming it.
"""

import json
import os
from pathlib import Path

from dropcli import files
from dropcli.errors import DropcliError


def set_aside_cut_record(path: Path) -> str | None:
    """Check the journal at `path`: refuse a file that is not one; set aside an incomplete last
    record. Returns the line saying what was set aside, or None when the journal was whole.
    Runs under the lock Optuna's appends hold, so a record another process is writing is not
    taken for a cut one."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.is_file() or path.stat().st_size == 0:
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        return _set_aside(path)
    finally:
        lock.release()


def _set_aside(path: Path) -> str | None:
    content = path.read_bytes()
    whole = content.rfind(b"\n") + 1  # the bytes of the whole records
    count = _check_records(path, content[:whole])
    tail = content[whole:]
    if not tail:
        return None
    if _is_record(tail):  # a whole record whose newline was not written: it is kept
        try:
            with path.open("ab") as journal:
                journal.write(b"\n")
        except OSError as error:
            raise files.write_failed(path, error) from None
        return None
    if not tail.startswith(b"{"):
        raise _not_a_journal(path, count + 1)
    kept = _free_name(path)
    with files.atomic(kept) as temporary:
        temporary.write_bytes(tail)
    try:
        os.truncate(path, whole)
    except OSError as error:
        raise files.write_failed(path, error) from None
    return (
        f"{path}: its last record was cut short (a write stopped by a kill or a full disk); "
        f"its {len(tail)} bytes are set aside in {kept.name} and the {count} whole records are kept"
    )


def _check_records(path: Path, content: bytes) -> int:
    """The number of records in `content`, each line one; refused if a line is not a record."""
    lines = content.splitlines()
    for number, line in enumerate(lines, start=1):
        if not _is_record(line):
            raise _not_a_journal(path, number)
    return len(lines)


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return False
    return isinstance(record, dict) and "op_code" in record


def _not_a_journal(path: Path, line: int) -> DropcliError:
    return DropcliError(
        f"{path} is not an Optuna journal (line {line} is not a journal record); "
        "name the study's own journal with --storage or --run-dir, or move this file away to start a new study"
    )


def _free_name(path: Path) -> Path:
    number = 1
    while path.with_name(f"{path.name}.cut-{number}").exists():
        number += 1
    return path.with_name(f"{path.name}.cut-{number}")
