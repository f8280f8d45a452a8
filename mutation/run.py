"""`make mutate`: cosmic-ray's mutants of each module in mutation/modules.py, each tested by that
module's tests, in a copy of the checkout (cosmic-ray edits the files it mutates in place).

    python -m mutation.run [--modules uncertainty/bootstrap.py,...] [--sample N] [--seed S] [--out DIR]

--sample N tests N mutants per module, drawn with --seed from all of them (a full run of every
module takes days on two cores). Before its mutants, each module's tests run on the unmutated
code: they must pass, and three times their time (at least a minute) bounds each mutant's run.
The report (DIR/report.md, DIR/report.json) counts per module: killed (a test's assertion failed),
crashed (the tests only raised: not a kill), timed out, survived, and equivalent (listed in
mutation/modules.py with the reason), and shows each survivor's diff.
"""

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mutation.modules import EQUIVALENT, MODULES

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
PACKAGE = "src/dropcli"
KINDS = ("killed", "crashed", "timeout", "survived", "equivalent")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", help="comma-separated, as in modules.py (default: all)")
    parser.add_argument("--sample", type=int, help="mutants per module (default: every one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPOSITORY / "mutation-report")
    args = parser.parse_args(argv)
    table = MODULES
    names = args.modules.split(",") if args.modules else list(table)
    unknown = [name for name in names if name not in table or not isinstance(table[name], list)]
    if unknown:
        parser.error(f"not in mutation/modules.py: {', '.join(unknown)}")
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
    started = time.monotonic()
    test_command = [sys.executable, "-m", "mutation.kill", *tests]
    baseline = subprocess.run(test_command, cwd=copy, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if baseline.returncode != 0 or "verdict: passed" not in baseline.stdout:
        print(f"{name}: its tests fail on the unmutated code; no mutants run\n{baseline.stdout}", flush=True)
        return {"error": "tests fail on the unmutated code", "baseline_s": seconds}
    session = args.out / (name.replace("/", "-") + ".sqlite")
    session.unlink(missing_ok=True)
    config = args.out / (name.replace("/", "-") + ".toml")
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{PACKAGE}/{name}"\n'
        f"timeout = {max(60.0, 3 * seconds):.0f}.0\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(' '.join(map(_quoted, test_command)))}\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
    )
    cosmic = [str(Path(sys.executable).parent / "cosmic-ray")]
    subprocess.run([*cosmic, "init", str(config), str(session)], cwd=copy, check=True)
    total = _sample(session, args.sample, args.seed)
    print(f"{name}: {min(total, args.sample or total)} of {total} mutants; tests take {seconds:.0f} s", flush=True)
    subprocess.run([*cosmic, "exec", str(config), str(session)], cwd=copy, check=True)
    return {"total": total, "baseline_s": seconds, "mutants": _results(session, name), "wall_s": time.monotonic() - started}


def _quoted(word: str) -> str:
    return word if word.replace("/", "").replace(".", "").replace("-", "").replace("_", "").isalnum() else json.dumps(word)


def _sample(session: Path, size: int | None, seed: int) -> int:
    """Mark all but `size` mutants, drawn with `seed`, as skipped; the number of mutants in all."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session)) as db:
        items = sorted(db.work_items, key=lambda w: [(m.start_pos, m.operator_name, m.occurrence) for m in w.mutations])
        if size is not None and size < len(items):
            kept = {item.job_id for item in random.Random(seed).sample(items, size)}
            skipped = [item.job_id for item in items if item.job_id not in kept]
            db.set_multiple_results(skipped, WorkResult(output="not drawn (--sample)", worker_outcome=WorkerOutcome.SKIPPED))
        return len(items)


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
    output = result.output or ""
    if "verdict: killed" in output:
        return "killed"
    if output.strip() == "timeout":
        return "timeout"
    if "verdict: crashed" in output:
        return "crashed"
    return "survived"


def _changed_lines(diff: str) -> tuple[str, str]:
    lines = diff.splitlines()
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
        "| module | mutants | tested | killed | crashed | timeout | survived | equivalent | killed of non-equivalent | killed or crashed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | {result['error']} |||||||")
            continue
        counts = {kind: sum(1 for m in result["mutants"] if m["kind"] == kind) for kind in KINDS}
        scored = sum(counts.values()) - counts["equivalent"]
        share = f"{counts['killed'] / scored:.0%}" if scored else "-"
        caught = f"{(counts['killed'] + counts['crashed']) / scored:.0%}" if scored else "-"
        lines.append(
            f"| {name} | {result['total']} | {len(result['mutants'])} | "
            + " | ".join(str(counts[kind]) for kind in KINDS)
            + f" | {share} | {caught} |"
        )
    for name, result in results.items():
        alive = [m for m in result.get("mutants", []) if m["kind"] in ("survived", "crashed", "timeout")]
        if alive:
            lines += ["", f"## {name}: not killed", ""]
            lines += [f"- line {m['line']} ({m['operator']}, {m['kind']}): `{m['removed']}` -> `{m['added']}`" for m in alive]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    (args.out / "report.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
