"""Which tests run which lines of a mutated module, so that a mutant is tried first on the tests
that can reach it (mutation/kill.py); a mutant they do not kill still faces the rest of the
module's subset, so the selection saves time and never turns a kill into a survivor.

Loaded as a pytest plugin (`-p mutation.covering`) in a run of the module's subset on the
unmutated code: coverage.py measures the module with one context per test (setup, call and
teardown), and the plugin writes {line: [test ids]} to $MUTATION_COVERING. Lines run outside any
test (at import, at collection) are listed under the id "" and make the whole subset run.
"""

import ast
import json
import os

_measure = None
if "MUTATION_COVERING" in os.environ:  # started at import, before the tests import the module
    import coverage  # the `mutate` extra; tests_for below needs nothing of it

    _measure = coverage.Coverage(data_file=None, include=[os.environ["MUTATION_MODULE"]])
    _measure.start()


def pytest_runtest_setup(item):
    _measure.switch_context(item.nodeid)


def pytest_runtest_teardown(item, nextitem):
    _measure.switch_context(item.nodeid)


def pytest_runtest_logfinish(nodeid, location):
    _measure.switch_context("")


def pytest_unconfigure(config):
    _measure.stop()
    data = _measure.get_data()
    module = os.path.realpath(os.environ["MUTATION_MODULE"])
    measured = next((name for name in data.measured_files() if os.path.realpath(name) == module), None)
    lines = data.contexts_by_lineno(measured) if measured else {}
    with open(os.environ["MUTATION_COVERING"], "w") as file:
        json.dump({str(line): sorted(set(tests)) for line, tests in lines.items()}, file)


def tests_for(covering: dict[str, list[str]], source: str, changed: list[int]) -> list[str] | None:
    """The tests that run any line of the statements holding the `changed` lines (numbered in
    `source`, the unmutated module); None where the whole subset must run (a line run outside
    any test, or no test at all: a child process may still run it)."""
    tree = ast.parse(source)
    tests: set[str] = set()
    for line in changed:
        first, last = _statement_span(tree, line)
        found = [test for number in range(first, last + 1) for test in covering.get(str(number), [])]
        if not found or "" in found:
            return None
        tests.update(found)
    return sorted(tests)


def statement_lines(source: str, changed: list[int]) -> set[int]:
    """Every line of the statements holding the `changed` lines of `source`."""
    tree = ast.parse(source)
    return {n for line in changed for first, last in [_statement_span(tree, line)] for n in range(first, last + 1)}


def _statement_span(tree: ast.AST, line: int) -> tuple[int, int]:
    """The lines of the smallest statement that holds `line`."""
    spans = [
        (node.lineno, node.end_lineno or node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or node.lineno)
    ]
    return min(spans, key=lambda span: span[1] - span[0], default=(line, line))
