"""The suite tests this checkout's dropcli, in its own process and in the processes it starts;
pointed at another copy of the package, it refuses to run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dropcli
from conftest import CHECKOUT_SRC

REPOSITORY = CHECKOUT_SRC.parent


def test_the_suite_imports_this_checkout():
    assert Path(dropcli.__file__).resolve() == CHECKOUT_SRC / "dropcli" / "__init__.py"


def test_a_child_process_imports_this_checkout(tmp_path):
    # Whatever dropcli the environment has installed: PYTHONPATH puts the checkout first.
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(CHECKOUT_SRC)
    # From an empty directory, as the suite's `python -m dropcli` and torchrun children run.
    child = subprocess.run(
        [sys.executable, "-c", "import dropcli; print(dropcli.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(child.stdout.strip()).resolve() == CHECKOUT_SRC / "dropcli" / "__init__.py"


@pytest.mark.system
def test_pointed_at_another_copy_the_suite_refuses_to_run(tmp_path):
    other = tmp_path / "other" / "dropcli"  # another clone's package, whole
    shutil.copytree(CHECKOUT_SRC / "dropcli", other, ignore=shutil.ignore_patterns("__pycache__"))
    # Another copy imported first (as a plugin or an editable install of another clone would).
    code = (
        f"import sys; sys.path.insert(0, {str(other.parent)!r}); import dropcli; import pytest\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--collect-only', 'tests/test_layout.py']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"imported dropcli from {other}, not this checkout's {CHECKOUT_SRC}" in result.stderr
