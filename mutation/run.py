"""`make mutate`: cosmic-ray's mutants of each module in mutation/modules.py, each tested by that
module's tests, in a copy of the checkout (cosmic-ray edits the files it mutates in place).

    python -m mutation.run [--modules uncertainty/bootstrap.py,...] [--sample N] [--seed S] [--out DIR]

--sample N tests N mutants per module, drawn with --seed from all of them (a full run of every
module takes days on two cores). Before its mutants, each module's tests run on the unmutated
code: they must pass, and three times their time (at least a minute) bounds each mutant's run.
The report (DIR/report.md, DIR/report.json) counts per module: killed (a test's assertion failed),
crashed (the tests only raised: not a kill), non-viable (every test that runs the changed
statement raised in it: it never computed a value), timed out, survived, equivalent (listed in
mutation/modules.py with the reason) and incompetent (the mutant does not compile), and shows
each survivor's diff; non-viable, equivalent and incompetent mutants are left out of the score
(the report gives it with the non-viable ones counted as not killed too). --report-only
rewrites it from the sessions already in DIR; --retest tests again, with the tests as they are
now, the mutants of DIR's sessions that were not killed (the same sample, so not a fresh
score), in the modules unchanged since their draw.
"""

import argparse
import datetime
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from mutation import filters
from mutation.modules import EQUIVALENT, MODULES

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
PACKAGE = "src/dropcli"
KINDS = ("killed", "crashed", "non-viable", "timeout", "survived", "equivalent", "incompetent")
UNSCORED = ("non-viable", "equivalent", "incompetent")  # no test could check a value of theirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", help="comma-separated, as in modules.py (default: all)")
    parser.add_argument("--sample", type=int, help="mutants per module (default: every one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPOSITORY / "mutation-report")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the sessions in --out; test nothing")
    parser.add_argument("--retest", action="store_true", help="test again the mutants in --out's sessions that were not killed")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with a stopped run: test the drawn mutants in --out's sessions not yet tested",
    )
    args = parser.parse_args(argv)
    if args.retest and args.resume:
        parser.error("--retest and --resume: pick one")
    table = MODULES
    names = args.modules.split(",") if args.modules else list(table)
    unknown = [name for name in names if name not in table or not isinstance(table[name], list)]
    if unknown:
        parser.error(f"not in mutation/modules.py: {', '.join(unknown)}")
    if args.report_only:  # e.g. after an equivalent mutant is listed in modules.py
        found = [name for name in names if _session(args, name).is_file()]
        if not found:
            parser.error(f"--report-only: no module's session in {args.out} (a run writes them there)")
        _write_report(args, {name: _stored(_session(args, name), name) for name in found})
        return 0
    if args.retest:
        names = [name for name in names if _session(args, name).is_file()]
    args.out.mkdir(parents=True, exist_ok=True)
    copy = _copy_of_checkout(args.out / "checkout")
    results = {}
    for name in names:
        results[name] = _module(copy, name, table[name], args)
        _write_report(args, results)
    return 0


def _copy_of_checkout(target: Path) -> Path:
    """The checkout's files as they are now (tracked and new, not ignored ones) in `target`."""
    shutil.rmtree(target, ignore_errors=True)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPOSITORY, capture_output=True, text=True, check=True
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPOSITORY / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _module(copy: Path, name: str, tests: list[str], args) -> dict:
    """Draw the module's mutants and test them; with --retest, test again those of the session
    already in --out that were not killed, with the tests as they are now."""
    started = time.monotonic()
    prefix = _prefix(args, name)
    module = f"{PACKAGE}/{name}"
    pristine = Path(f"{prefix}.pristine.py")  # the module its session's mutants were drawn from
    drawn_from = pristine.read_text() if pristine.is_file() else None
    # A session continues only if its draw finished, with the same --sample and --seed (a run
    # stopped during the draw leaves every mutant pending: all of them would be tested).
    marker, draw = Path(f"{prefix}.drawn"), f"sample {args.sample} seed {args.seed}"
    same_draw = marker.is_file() and marker.read_text() == draw
    if args.resume and same_draw and _session_is_done(prefix):  # a finished measurement stands, even if the code moved on since
        if drawn_from is None:  # sessions copied back from docs/studies keep no source
            changed = " (the source it was drawn from is not kept here: its result is of the code then)"
        elif drawn_from != (copy / module).read_text():
            changed = " (the module has changed since: its result is of the code then)"
        else:
            changed = ""
        print(f"{name}: every drawn mutant tested already{changed}", flush=True)
        return _stored(Path(f"{prefix}.sqlite"), name)
    if args.retest and drawn_from not in (None, (copy / module).read_text()):
        # cosmic-ray finds a mutant by its operator and position: in changed code it would mutate other lines.
        print(f"{name}: changed since its mutants were drawn; not tested again (a fresh run draws from it as it is)", flush=True)
        return _stored(Path(f"{prefix}.sqlite"), name)
    baseline = _record_covering(copy, module, tests, prefix)
    seconds = time.monotonic() - started
    if baseline.returncode != 0:
        print(f"{name}: its tests fail on the unmutated code; no mutants run\n{baseline.stdout}", flush=True)
        return {"error": "tests fail on the unmutated code", "baseline_s": seconds}
    test_command = [sys.executable, "-m", "mutation.kill", "--covering", str(prefix), *tests]
    session, config = Path(f"{prefix}.sqlite"), Path(f"{prefix}.toml")
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        f"timeout = {max(60.0, 3 * seconds):.0f}.0\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(' '.join(map(_quoted, test_command)))}\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
    )
    cosmic = [str(Path(sys.executable).parent / "cosmic-ray")]
    if args.retest:
        print(f"{name}: {_forget_the_not_killed(session)} mutants not killed, tested again", flush=True)
    elif args.resume and same_draw and session.is_file() and drawn_from == (copy / module).read_text():
        print(f"{name}: {_pending(session)} drawn mutants not yet tested, tested now", flush=True)
    else:
        if args.resume and session.is_file():
            print(f"{name}: its draw was not finished, or was another, or the module changed since: drawn again", flush=True)
        marker.unlink(missing_ok=True)
        session.unlink(missing_ok=True)
        subprocess.run([*cosmic, "init", str(config), str(session)], cwd=copy, check=True)
        total, left_out, drawn = _sample(session, (copy / module).read_text(), args.sample, args.seed)
        marker.write_text(draw)
        print(
            f"{name}: {drawn} of {total} mutants ({left_out} left out by mutation/filters.py); tests take {seconds:.0f} s",
            flush=True,
        )
    subprocess.run([*cosmic, "exec", str(config), str(session)], cwd=copy, check=True)
    return {**_stored(session, name), "baseline_s": seconds, "wall_s": time.monotonic() - started}


def _session_is_done(prefix: Path) -> bool:
    session = Path(f"{prefix}.sqlite")
    return session.is_file() and _pending(session) == 0


def _pending(session: Path) -> int:
    from cosmic_ray.work_db import use_db

    with use_db(str(session)) as db:
        return sum(1 for _ in db.pending_work_items)


def _forget_the_not_killed(session: Path) -> int:
    """Remove the results of the tested mutants that were not killed, so that exec tests them again."""
    with sqlite3.connect(session) as database:
        rows = database.execute("SELECT job_id, output FROM work_results").fetchall()
        again = [job for job, output in rows if _kind_of(output or "") not in ("killed", "skipped")]
        database.executemany("DELETE FROM work_results WHERE job_id = ?", [(job,) for job in again])
    return len(again)


def _prefix(args, name: str) -> Path:
    """Where a module's files go in --out: PREFIX.sqlite (its session), .toml, .covering.json, .pristine.py."""
    return args.out.resolve() / name.replace("/", "-")


def _session(args, name: str) -> Path:
    return Path(f"{_prefix(args, name)}.sqlite")


def _stored(session: Path, name: str) -> dict:
    """A module's result read back from its cosmic-ray session."""
    from cosmic_ray.work_db import use_db

    with use_db(str(session)) as db:
        outputs = [result.output or "" for _, result in db.completed_work_items]
        total = sum(1 for _ in db.work_items)
    return {"total": total, "left_out": sum(o.startswith("left out") for o in outputs), "mutants": _results(session, name)}


def _record_covering(copy: Path, module: str, tests: list[str], prefix: Path) -> subprocess.CompletedProcess:
    """Run the module's tests on the unmutated code, recording which tests run which lines
    (mutation/covering.py) into PREFIX.covering.json, and keep the module as PREFIX.pristine.py."""
    shutil.copy2(copy / module, f"{prefix}.pristine.py")
    lines = Path(f"{prefix}.lines.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUTATION_COVERING": str(lines), "MUTATION_MODULE": module}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutation.covering", *tests]
    done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
    if done.returncode == 0:
        Path(f"{prefix}.covering.json").write_text(json.dumps({"module": module, "lines": json.loads(lines.read_text())}))
    return done


def _quoted(word: str) -> str:
    return word if word.replace("/", "").replace(".", "").replace("-", "").replace("_", "").isalnum() else json.dumps(word)


def _sample(session: Path, source: str, size: int | None, seed: int) -> tuple[int, int, int]:
    """Mark as skipped the mutants mutation/filters.py leaves out, then all but `size` of the
    rest, drawn with `seed`; the number of mutants in all, left out, and to test."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    annotations = filters.annotation_spans(source)
    with use_db(str(session)) as db:
        items = sorted(db.work_items, key=lambda w: [(m.start_pos, m.operator_name, m.occurrence) for m in w.mutations])
        kept, left_out = [], {}
        for item in items:
            mutation = item.mutations[0]
            reason = filters.reason_left_out(mutation.operator_name, *mutation.start_pos, annotations)
            if reason is None:
                kept.append(item)
            else:
                left_out.setdefault(reason, []).append(item.job_id)
        for reason, job_ids in left_out.items():
            db.set_multiple_results(job_ids, WorkResult(output=f"left out: {reason}", worker_outcome=WorkerOutcome.SKIPPED))
        drawn = kept if size is None or size >= len(kept) else random.Random(seed).sample(kept, size)
        chosen = {item.job_id for item in drawn}
        skipped = [item.job_id for item in kept if item.job_id not in chosen]
        db.set_multiple_results(skipped, WorkResult(output="not drawn (--sample)", worker_outcome=WorkerOutcome.SKIPPED))
        return len(items), len(items) - len(kept), len(drawn)


def _results(session: Path, name: str) -> list[dict]:
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome

    equivalent = {(e["module"], e["removed"], e["added"]): e["reason"] for e in EQUIVALENT}
    out = []
    with use_db(str(session)) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            removed, added = _changed_lines(result.diff or "")
            mutation = item.mutations[0]
            record = {
                "operator": mutation.operator_name,
                "line": mutation.start_pos[0],
                "removed": removed,
                "added": added,
                "diff": result.diff,
                "output": (result.output or "").strip().splitlines()[-1:] or [""],
            }
            reason = equivalent.get((name, removed, added))
            record["kind"] = "equivalent" if reason else _kind(result)
            record["reason"] = reason
            out.append(record)
    return sorted(out, key=lambda r: r["line"])


def _kind(result) -> str:
    return _kind_of(result.output or "")


def _kind_of(output: str) -> str:
    if output.startswith(("left out", "not drawn")):
        return "skipped"
    if "verdict: killed" in output:
        return "killed"
    if "verdict: incompetent" in output or "(SyntaxError in " in output:  # the latter: runs before the verdict existed
        return "incompetent"
    if output.strip() == "timeout":
        return "timeout"
    if "verdict: crashed" in output:
        return "crashed"
    if "verdict: non-viable" in output:
        return "non-viable"
    return "survived"


def _lower_bound(killed: int, tested: int, confidence: float = 0.95) -> float:
    """The one-sided Clopper-Pearson lower bound on the kill rate of all the module's mutants,
    from `killed` of `tested` drawn at random: the p at which `killed` or more kills would have
    a chance of 1 - confidence."""
    if killed == 0:
        return 0.0
    low, high = 0.0, killed / tested
    for _ in range(60):  # bisection; the tail grows with p
        p = (low + high) / 2
        tail = sum(math.comb(tested, k) * p**k * (1 - p) ** (tested - k) for k in range(killed, tested + 1))
        low, high = (p, high) if tail < 1 - confidence else (low, p)
    return low


def _changed_lines(diff: str) -> tuple[str, str]:
    lines = [line for line in diff.splitlines() if line[1:].strip()]  # blank lines a mutant moves say nothing
    removed = [line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(removed), " / ".join(added)


def _write_report(args, results: dict) -> None:
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        f"# Mutation report ({when}; {machine})",
        "",
        f"Command: python -m mutation.run {' '.join(sys.argv[1:])}",
        "",
        "| module | mutants | left out | tested | killed | crashed | non-viable | timeout | survived | equivalent | incompetent "
        "| killed of the rest (one-sided 95 % lower bound) | the same with non-viable counted | killed or crashed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | {result['error']} |||||||")
            continue
        counts = {kind: sum(1 for m in result["mutants"] if m["kind"] == kind) for kind in KINDS}
        scored = sum(counts.values()) - sum(counts[kind] for kind in UNSCORED)
        share = f"{counts['killed'] / scored:.0%} (≥ {_lower_bound(counts['killed'], scored):.0%})" if scored else "-"
        strict = scored + counts["non-viable"]
        share_strict = f"{counts['killed'] / strict:.0%}" if strict else "-"
        caught = f"{(counts['killed'] + counts['crashed']) / scored:.0%}" if scored else "-"
        lines.append(
            f"| {name} | {result['total']} | {result['left_out']} | {len(result['mutants'])} | "
            + " | ".join(str(counts[kind]) for kind in KINDS)
            + f" | {share} | {share_strict} | {caught} |"
        )
    for name, result in results.items():
        alive = [m for m in result.get("mutants", []) if m["kind"] in ("survived", "crashed", "non-viable", "timeout")]
        if alive:
            lines += ["", f"## {name}: not killed", ""]
            lines += [f"- line {m['line']} ({m['operator']}, {m['kind']}): `{m['removed']}` -> `{m['added']}`" for m in alive]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    (args.out / "report.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
