"""The test command of one mutant: `python -m mutation.kill [--covering DIR/NAME] PYTEST_ARGS...`
runs the module's tests and prints a verdict that mutation/run.py reads back from cosmic-ray's
session. With --covering, the tests that run the mutated lines (mutation/covering.py's map in
DIR/NAME.covering.json, the unmutated module in DIR/NAME.pristine.py) go first; only a mutant
they do not kill runs the rest of the subset (all of it, covering tests too, if one of them
crashed: the verdict then says what crashed).

Only an assertion kills a mutant (a test's assert, pytest.fail, pytest.raises that did not
raise): a mutant that merely crashes the tests (a TypeError, a missing name) is not caught by
anything that checks a number, so it exits 0 and counts as a survivor, marked "crashed".
One kind of crash is marked "non-viable" instead: every test that runs the changed statement
failed by an exception raised in that very statement (`path * "name"`, a negative size). Such a
mutant never computed a value there for a test to check, like one that does not compile; the
report leaves it out of the score and counts it in its own column.
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
            failure = {"test": item.nodeid, "when": call.when, "type": call.excinfo.typename, "line": _raised_at(call.excinfo)}
            file.write(json.dumps(failure) + "\n")


def _raised_at(excinfo) -> int | None:
    """The line of the mutated module ($MUTATION_MODULE) deepest in the traceback, or None."""
    if "MUTATION_MODULE" not in os.environ:
        return None
    module = os.path.realpath(os.environ["MUTATION_MODULE"])
    lines = [entry.lineno + 1 for entry in excinfo.traceback if os.path.realpath(str(entry.path)) == module]
    return lines[-1] if lines else None


def pytest_collectreport(report):
    """(Plugin.) A test file that cannot be collected (the mutant breaks an import) is a failure too."""
    if report.failed:
        with open(os.environ["MUTATION_FAILURES"], "a") as file:
            file.write(json.dumps({"test": report.nodeid, "when": "collect", "type": "CollectError"}) + "\n")


def failures(args: list[str], stop_early: bool, module: str | None = None) -> tuple[int, list[dict]]:
    """pytest's exit code and its failures, each with the line of `module` (the mutated one)
    that raised, if any."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as record:
        env = {**os.environ, "MUTATION_FAILURES": record.name, "OMP_NUM_THREADS": "1"}
        if module is not None:  # absolute: a test may change the working directory (monkeypatch.chdir)
            env["MUTATION_MODULE"] = os.path.abspath(module)
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
        pristine = Path(f"{prefix}.pristine.py").read_text()
        changed = _changed_lines(recorded, pristine)
        selected = covering.tests_for(recorded["lines"], pristine, changed) if changed else None
        if selected:
            code, found = failures(selected, stop_early=True)
            killer = next((f for f in found if f["type"] in ASSERTIONS), None)
            if code in (0, 1) and killer is not None:
                print(f"verdict: killed by {killer['test']} (of {len(selected)} covering tests)")
                return 1
            if code == 0 and not found:  # they passed: only the rest of the subset is left to run
                return _say(*_verdict([*args, *(f"--deselect={test}" for test in selected)], nothing_left_passes=True))
            exit_code, verdict = _verdict(args)
            if verdict.startswith("crashed") and _cannot_run(
                selected, covering.statement_lines(pristine, changed), recorded["module"]
            ):
                verdict = f"non-viable (each of the {len(selected)} tests that run the changed statement raised in it)"
            return _say(exit_code, verdict)
    return _say(*_verdict(args))


def _say(exit_code: int, verdict: str) -> int:
    print(f"verdict: {verdict}")
    return exit_code


def _cannot_run(selected: list[str], statement: set[int], module: str) -> bool:
    """Whether every one of the `selected` tests (those that run the changed statement, whose
    lines are `statement`) failed by an exception raised in it: the statement never completed."""
    code, found = failures(selected, stop_early=False, module=module)
    raised_there = {f["test"] for f in found if f["type"] not in ASSERTIONS and f["line"] in statement}
    return code == 1 and set(selected) <= raised_there and all(f["test"] in raised_there for f in found)


def _does_not_compile(module: Path) -> str | None:
    """Why the mutated module is not Python (cosmic-ray can turn `{**spec}` into `{-spec}`), or None."""
    try:
        compile(module.read_text(), str(module), "exec")
    except SyntaxError as error:
        return f"{error.msg}, line {error.lineno}"
    return None


def _changed_lines(recorded: dict, pristine: str) -> list[int]:
    """The lines of `pristine` (the unmutated module) that the mutant at recorded["module"] changed."""
    mutated = Path(recorded["module"]).read_text()
    opcodes = difflib.SequenceMatcher(None, pristine.splitlines(), mutated.splitlines()).get_opcodes()
    return sorted({i + 1 for tag, i1, i2, _, _ in opcodes if tag != "equal" for i in range(i1, max(i2, i1 + 1))})


def _verdict(args: list[str], nothing_left_passes: bool = False) -> tuple[int, str]:
    """The subset's verdict on the mutant and the exit code that says it to cosmic-ray.
    `nothing_left_passes`: the tests that run the mutant passed and are deselected; pytest's
    "no tests ran" (exit 5) then means every test of the subset passed."""
    code, found = failures(args, stop_early=True)
    if code == 5 and nothing_left_passes:
        return 0, "passed"
    if code not in (0, 1):  # collection failed (the mutant breaks an import), or pytest itself did
        return 0, f"crashed only (pytest exit {code})"
    if not found:  # exit 1 with no failure recorded would be a failure this plugin missed: not a pass
        return 0, "passed" if code == 0 else "crashed only (pytest exit 1, no failure recorded)"
    if not any(f["type"] in ASSERTIONS for f in found):
        code, found = failures(args, stop_early=False)  # the first failure crashed: does any test assert?
    killer = next((f for f in found if f["type"] in ASSERTIONS), None)
    if killer is not None:
        return 1, f"killed by {killer['test']}"
    return 0, f"crashed only ({found[0]['type']} in {found[0]['test']})"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
