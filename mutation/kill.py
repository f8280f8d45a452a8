"""The test command of one mutant: `python -m mutation.kill [--covering DIR/NAME] PYTEST_ARGS...`
runs the module's tests and prints a verdict that mutation/run.py reads back from cosmic-ray's
session. With --covering, the tests that run the mutated lines (mutation/covering.py's map in
DIR/NAME.covering.json, the unmutated module in DIR/NAME.pristine.py) go first; only a mutant
they do not kill runs the rest of the subset (all of it, covering tests too, if one of them
crashed: the verdict then says what crashed).

Only an assertion kills a mutant (a test's assert, pytest.fail, pytest.raises that did not
raise): a mutant that merely crashes the tests (a TypeError, a missing name) is not caught by
anything that checks a number, so it exits 0 and counts as a survivor, marked "crashed".
"""

import difflib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mutation import covering

ASSERTIONS = ("AssertionError", "Failed")  # pytest.fail and "DID NOT RAISE" are Failed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """(Loaded as a pytest plugin by main.) Record the type of each test's failure (a skip or an
    expected failure is none)."""
    report = (yield).get_result()
    if report.failed and call.excinfo is not None:
        with open(os.environ["MUTATION_FAILURES"], "a") as file:
            file.write(json.dumps({"test": item.nodeid, "when": call.when, "type": call.excinfo.typename}) + "\n")


def pytest_collectreport(report):
    """(Plugin.) A test file that cannot be collected (the mutant breaks an import) is a failure too."""
    if report.failed:
        with open(os.environ["MUTATION_FAILURES"], "a") as file:
            file.write(json.dumps({"test": report.nodeid, "when": "collect", "type": "CollectError"}) + "\n")


def failures(args: list[str], stop_early: bool) -> tuple[int, list[dict]]:
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as record:
        env = {**os.environ, "MUTATION_FAILURES": record.name, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutation.kill", *args]
        done = subprocess.run([*command, *(["-x"] if stop_early else [])], env=env, capture_output=True, text=True)
        return done.returncode, [json.loads(line) for line in record.read().splitlines()]


def main(args: list[str]) -> int:
    if args[:1] == ["--covering"]:
        prefix, args = Path(args[1]), args[2:]
        recorded = json.loads(Path(f"{prefix}.covering.json").read_text())
        broken = _does_not_compile(Path(recorded["module"]))
        if broken is not None:
            print(f"verdict: incompetent (the mutant does not compile: {broken})")
            return 0
        selected = _covering_tests(recorded, Path(f"{prefix}.pristine.py").read_text())
        if selected:
            code, found = failures(selected, stop_early=True)
            killer = next((f for f in found if f["type"] in ASSERTIONS), None)
            if code in (0, 1) and killer is not None:
                print(f"verdict: killed by {killer['test']} (of {len(selected)} covering tests)")
                return 1
            if code == 0 and not found:  # they passed: only the rest of the subset is left to run
                return _verdict([*args, *(f"--deselect={test}" for test in selected)], nothing_left_passes=True)
    return _verdict(args)


def _does_not_compile(module: Path) -> str | None:
    """Why the mutated module is not Python (cosmic-ray can turn `{**spec}` into `{-spec}`), or None."""
    try:
        compile(module.read_text(), str(module), "exec")
    except SyntaxError as error:
        return f"{error.msg}, line {error.lineno}"
    return None


def _covering_tests(recorded: dict, pristine: str) -> list[str] | None:
    """The tests that run the lines this mutant changed (`recorded`: mutation/covering.py's map and
    the module's path; `pristine`: the unmutated module), or None: run the whole subset."""
    mutated = Path(recorded["module"]).read_text()
    opcodes = difflib.SequenceMatcher(None, pristine.splitlines(), mutated.splitlines()).get_opcodes()
    changed = sorted({i + 1 for tag, i1, i2, _, _ in opcodes if tag != "equal" for i in range(i1, max(i2, i1 + 1))})
    return covering.tests_for(recorded["lines"], pristine, changed) if changed else None


def _verdict(args: list[str], nothing_left_passes: bool = False) -> int:
    """`nothing_left_passes`: the tests that run the mutant passed and are deselected; pytest's
    "no tests ran" (exit 5) then means every test of the subset passed."""
    code, found = failures(args, stop_early=True)
    if code == 5 and nothing_left_passes:
        print("verdict: passed")
        return 0
    if code not in (0, 1):  # collection failed (the mutant breaks an import), or pytest itself did
        print(f"verdict: crashed only (pytest exit {code})")
        return 0
    if not found:  # exit 1 with no failure recorded would be a failure this plugin missed: not a pass
        print("verdict: passed" if code == 0 else "verdict: crashed only (pytest exit 1, no failure recorded)")
        return 0
    if not any(f["type"] in ASSERTIONS for f in found):
        code, found = failures(args, stop_early=False)  # the first failure crashed: does any test assert?
    killer = next((f for f in found if f["type"] in ASSERTIONS), None)
    if killer is not None:
        print(f"verdict: killed by {killer['test']}")
        return 1
    print(f"verdict: crashed only ({found[0]['type']} in {found[0]['test']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
