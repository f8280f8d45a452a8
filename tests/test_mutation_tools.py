"""The parts of `make mutate` (mutation/) that decide a mutant's fate: which are left out before
the draw, which tests try it first, what counts as a kill, and the bound on the kill rate."""

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mutation import covering, filters, kill, raise_or_right
from mutation.run import _lower_bound

SOURCE = textwrap.dedent(
    """\
    def f(x: int | None, y: float = 2.0) -> list[int] | None:
        z = x * y
        return [z,
                z - 1]

    LIMIT: int | None = 3
    Part = tuple[int, float | None]
    MASK = 1 | 2
    """
)


def test_arithmetic_made_bitwise_and_annotations_are_left_out_and_nothing_else():
    spans = filters.annotation_spans(SOURCE)
    reason = filters.reason_left_out
    assert reason("core/ReplaceBinaryOperator_Mul_BitXor", 2, 8, spans) == "arithmetic made bitwise: raises on floats and tensors"
    assert reason("core/ReplaceUnaryOperator_USub_Invert", 2, 8, spans) is not None
    assert reason("core/ReplaceBinaryOperator_Mul_Div", 2, 8, spans) is None
    assert reason("core/ReplaceBinaryOperator_BitOr_BitAnd", 2, 8, spans) is None  # sets and masks
    assert reason("core/ReplaceBinaryOperator_BitOr_Add", 1, 12, spans) == "inside a type annotation"  # int | None
    assert reason("core/ReplaceBinaryOperator_BitOr_Add", 1, 44, spans) == "inside a type annotation"  # return
    assert reason("core/ReplaceBinaryOperator_BitOr_Add", 6, 11, spans) == "inside a type annotation"  # LIMIT: ...
    assert reason("core/NumberReplacer", 1, 34, spans) is None  # the default 2.0 is no annotation
    assert reason("core/ReplaceBinaryOperator_BitOr_Sub", 7, 24, spans) == "inside a type annotation"  # a type alias
    assert reason("core/ReplaceBinaryOperator_BitOr_Sub", 8, 9, spans) is None  # MASK = 1 | 2 is a number


def test_a_mutant_is_tried_first_on_the_tests_that_run_its_statement():
    lines = {"2": ["t::a", "t::b"], "3": ["t::b"], "4": ["t::c"], "1": [""], "6": [""]}
    assert covering.tests_for(lines, SOURCE, [2]) == ["t::a", "t::b"]
    # the return statement spans lines 3-4: a change on its second line reaches the tests of both
    assert covering.tests_for(lines, SOURCE, [4]) == ["t::b", "t::c"]
    assert covering.tests_for(lines, SOURCE, [1]) is None  # run at import: the whole subset
    assert covering.tests_for({"2": ["t::a"]}, SOURCE, [3]) is None  # run by no test: the whole subset


def test_a_skip_or_an_expected_failure_is_no_failure_and_only_an_assertion_kills(tmp_path, monkeypatch):
    tests = tmp_path / "test_sample.py"
    tests.write_text(
        textwrap.dedent(
            """\
            import pytest

            def test_skipped():
                pytest.skip("no device")

            @pytest.mark.xfail(strict=False)
            def test_expected_to_fail():
                assert False

            def test_raises():
                raise TypeError("a crash")

            def test_asserts():
                assert 1 == 2
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    code, found = kill.failures([str(tests)], stop_early=False)
    assert code == 1
    assert sorted((f["test"].split("::")[1], f["type"]) for f in found) == [
        ("test_asserts", "AssertionError"),
        ("test_raises", "TypeError"),
    ]


def test_the_kill_rate_bound_is_the_one_sided_clopper_pearson_bound():
    assert abs(_lower_bound(4, 4) - 0.05 ** (1 / 4)) < 1e-9  # all killed: p**n = 0.05
    assert _lower_bound(0, 10) == 0.0
    low = _lower_bound(45, 50)
    tail = sum(math.comb(50, k) * low**k * (1 - low) ** (50 - k) for k in range(45, 51))
    assert abs(tail - 0.05) < 1e-6 and low < 0.9


def test_the_kill_module_runs_as_a_command(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    done = subprocess.run(
        [sys.executable, "-m", "mutation.kill", str(tmp_path / "test_ok.py")],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "verdict: passed" in done.stdout


def test_a_mutant_that_does_not_compile_is_incompetent_not_a_crash(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "module.py").write_text("spec = {}\nout = {-spec, 'a': 1}\n")  # cosmic-ray's `{**spec}` -> `{-spec}`
    (tmp_path / "m.covering.json").write_text(json.dumps({"module": "module.py", "lines": {}}))
    (tmp_path / "m.pristine.py").write_text("spec = {}\nout = {**spec, 'a': 1}\n")
    assert kill.main(["--covering", str(tmp_path / "m"), "tests"]) == 0
    assert capsys.readouterr().out.startswith("verdict: incompetent (the mutant does not compile")


def test_pytest_failing_with_no_failure_recorded_is_a_crash_not_a_pass(monkeypatch, capsys):
    """A test file that cannot be collected once made pytest exit 1 with nothing recorded, which
    read as "passed": a mutant that breaks an import survived."""
    monkeypatch.setattr(kill, "failures", lambda args, stop_early: (1, []))
    assert kill.main(["tests"]) == 0
    assert capsys.readouterr().out.startswith("verdict: crashed only (pytest exit 1, no failure recorded)")


def test_a_test_file_that_cannot_be_imported_is_recorded_as_a_collection_error(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    (tmp_path / "test_broken.py").write_text("import no_such_module_anywhere\n")
    code, found = kill.failures([str(tmp_path / "test_ok.py"), str(tmp_path / "test_broken.py")], stop_early=False)
    assert code != 0 and {"test": "test_broken.py", "when": "collect", "type": "CollectError"} in [
        {**f, "test": Path(f["test"]).name} for f in found
    ], found


def test_a_stopped_run_resumes_with_the_drawn_mutants_not_yet_tested(tmp_path):
    """A sampled run of every module outlasts a session: --resume tests only what is left."""
    pytest.importorskip("cosmic_ray")
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult
    from mutation.run import _pending, _sample, _session_is_done

    (tmp_path / "module.py").write_text("def f(a, b):\n    return a + b if a < b else a - b\n")
    (tmp_path / "m.toml").write_text(
        '[cosmic-ray]\nmodule-path = "module.py"\ntimeout = 10.0\nexcluded-modules = []\n'
        'test-command = "true"\n[cosmic-ray.distributor]\nname = "local"\n'
    )
    cosmic = Path(sys.executable).parent / "cosmic-ray"
    subprocess.run([str(cosmic), "init", "m.toml", "m.sqlite"], cwd=tmp_path, check=True, capture_output=True)
    session = tmp_path / "m.sqlite"
    total, left_out, drawn = _sample(session, (tmp_path / "module.py").read_text(), 3, seed=0)
    assert drawn == 3 and total > left_out + 3
    assert _pending(session) == 3 and not _session_is_done(tmp_path / "m")
    with use_db(str(session)) as db:
        first = next(iter(db.pending_work_items))
        db.set_result(first.job_id, WorkResult(output="verdict: killed", worker_outcome=WorkerOutcome.NORMAL))
    assert _pending(session) == 2
    with use_db(str(session)) as db:
        for item in list(db.pending_work_items):
            db.set_result(item.job_id, WorkResult(output="verdict: passed", worker_outcome=WorkerOutcome.NORMAL))
    assert _session_is_done(tmp_path / "m")


def test_a_mutant_its_covering_tests_pass_faces_only_the_rest_of_the_subset(tmp_path, monkeypatch, capsys):
    """The covering tests are not run twice: the rest of the subset runs with them deselected, and
    a subset with nothing left is a pass (pytest's "no tests ran"), not a crash."""
    import json

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))  # for pytest's -p mutation.kill
    (tmp_path / "module.py").write_text("x = 2\n")  # the mutant of "x = 1"
    (tmp_path / "m.pristine.py").write_text("x = 1\n")
    (tmp_path / "m.covering.json").write_text(json.dumps({"module": "module.py", "lines": {"1": ["test_a.py::test_runs_it"]}}))
    (tmp_path / "test_a.py").write_text("def test_runs_it():\n    open('runs.log', 'a').write('ran\\n')\n")
    (tmp_path / "test_b.py").write_text("def test_elsewhere():\n    assert False\n")
    assert kill.main(["--covering", str(tmp_path / "m"), "test_a.py", "test_b.py"]) == 1
    assert capsys.readouterr().out.startswith("verdict: killed by test_b.py::test_elsewhere")
    assert (tmp_path / "runs.log").read_text() == "ran\n"  # once, as a covering test
    assert kill.main(["--covering", str(tmp_path / "m"), "test_a.py"]) == 0
    assert capsys.readouterr().out.startswith("verdict: passed")


def test_a_module_changed_since_its_draw_is_not_tested_again(tmp_path, capsys):
    """cosmic-ray finds a mutant by operator and position: --retest on changed code would mutate other lines."""
    pytest.importorskip("cosmic_ray")
    from argparse import Namespace

    from mutation import run

    copy, out = tmp_path / "copy", tmp_path / "out"
    (copy / run.PACKAGE).mkdir(parents=True)
    out.mkdir()
    (copy / run.PACKAGE / "m.py").write_text("def f(a, b):\n    return a - b\n")  # the module now
    (out / "m.py.pristine.py").write_text("def f(a, b):\n    return a + b\n")  # as its mutants were drawn
    (out / "m.toml").write_text(
        f'[cosmic-ray]\nmodule-path = "{copy / run.PACKAGE / "m.py"}"\ntimeout = 10.0\nexcluded-modules = []\n'
        'test-command = "false"\n[cosmic-ray.distributor]\nname = "local"\n'
    )
    cosmic = Path(sys.executable).parent / "cosmic-ray"
    subprocess.run([str(cosmic), "init", str(out / "m.toml"), str(out / "m.py.sqlite")], check=True, capture_output=True)
    args = Namespace(out=out, retest=True, resume=False, sample=None, seed=0)
    result = run._module(copy, "m.py", ["test_nothing.py"], args)
    assert "changed since its mutants were drawn; not tested again" in capsys.readouterr().out
    assert (out / "m.py.pristine.py").read_text() == "def f(a, b):\n    return a + b\n"  # the draw's code kept
    assert not (out / "m.py.covering.json").exists() and "mutants" in result


def _mutant(tmp_path, monkeypatch, pristine: str, mutated: str, covering: dict, tests: str) -> list[str]:
    """A mutant of module.py and its tests in tmp_path, set up as mutation/run.py leaves them:
    the arguments of `python -m mutation.kill` for it."""
    import json

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))  # for pytest's -p mutation.kill
    (tmp_path / "module.py").write_text(mutated)
    (tmp_path / "m.pristine.py").write_text(pristine)
    (tmp_path / "m.covering.json").write_text(json.dumps({"module": "module.py", "lines": covering}))
    (tmp_path / "test_a.py").write_text(tests)
    return ["--covering", str(tmp_path / "m"), "test_a.py"]


TESTS_OF_F = (
    "from pathlib import Path\nimport module\n\n"
    "def test_f():\n    assert module.f(Path('a')).name == 'x'\n\n"
    "def test_g(tmp_path, monkeypatch):\n    monkeypatch.chdir(tmp_path)\n    assert module.f(Path('b')).parent == Path('b')\n"
)
BOTH = ["test_a.py::test_f", "test_a.py::test_g"]


def test_a_mutant_whose_statement_raises_in_every_test_that_runs_it_is_non_viable(tmp_path, monkeypatch, capsys):
    """`path / "x"` made `path * "x"` never computes a value: no assertion could check one."""
    args = _mutant(
        tmp_path,
        monkeypatch,
        "def f(path):\n    return path / 'x'\n",
        "def f(path):\n    return path * 'x'\n",
        {"2": BOTH},
        TESTS_OF_F,
    )
    assert kill.main(args) == 0
    assert capsys.readouterr().out.startswith(
        "verdict: non-viable (each of the 2 tests that run the changed statement raised in it)"
    )


def test_a_mutant_whose_wrong_value_raises_further_on_is_a_crash(tmp_path, monkeypatch, capsys):
    """The changed statement completes (a wrong index); the IndexError comes from the next line."""
    pristine = "def f(path):\n    k = 0\n    return (path / 'x', path)[k]\n"
    args = _mutant(tmp_path, monkeypatch, pristine, pristine.replace("k = 0", "k = 2"), {"2": BOTH, "3": BOTH}, TESTS_OF_F)
    assert kill.main(args) == 0
    assert capsys.readouterr().out.startswith("verdict: crashed only (IndexError in test_a.py::test_f)")


def test_a_mutant_one_test_runs_through_is_a_crash_not_non_viable(tmp_path, monkeypatch, capsys):
    """Where a test gets past the changed statement, it computed a value there: not non-viable."""
    tests = (
        "from pathlib import Path\nimport module\n\n"
        "def test_f():\n    assert module.f(Path('a'), 'x').name == 'x'\n\n"
        "def test_h():\n    assert module.f(6, 3) > 0\n"  # 6 * 3 passes it
    )
    covering = {"2": ["test_a.py::test_f", "test_a.py::test_h"]}
    args = _mutant(tmp_path, monkeypatch, "def f(a, b):\n    return a / b\n", "def f(a, b):\n    return a * b\n", covering, tests)
    assert kill.main(args) == 0
    assert capsys.readouterr().out.startswith("verdict: crashed only (TypeError in test_a.py::test_f)")


def _dropout_mutant(source: str, removed: str, added: str) -> dict:
    number = next(i for i, line in enumerate(source.splitlines(), 1) if removed in line)
    return {"line": number, "removed": removed, "added": added}


def test_a_mutant_of_the_packed_mask_is_told_wrong_where_it_returns_a_wrong_number_and_not_where_it_only_raises():
    source = raise_or_right.SOURCE.read_text()
    original = raise_or_right._module(source)
    weighted = "rows * _bit_values(mask.device)"
    powers = raise_or_right._mutated(source, _dropout_mutant(source, weighted, "rows ** _bit_values(mask.device)"))
    assert raise_or_right.tally(original, powers)["wrong"] > 0  # each byte the count of its bits: wrong masks
    filled = "rows.view(-1)[: flat.numel()]"
    overlong = raise_or_right._mutated(source, _dropout_mutant(source, filled, "rows.view(-1)[: flat.numel() + 1]"))
    counts = raise_or_right.tally(original, overlong)
    assert counts["wrong"] == 0 and counts["raised"] > 0 and counts["right"] > 0  # right where 8 divides n, and in int16 mode
