"""The round-2 study's plan runs end to end on stand-in data, and a rerun skips what is done.

The plan is docs/studies/uncertainty/plan-tiny.yaml cut further (fewer runs and shifts, fewer
resamples): every step and group of the real plan, at a size a loaded test machine can run twice.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import yaml

from conftest import PATIENCE_S

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.system  # it starts dropcli processes


def smaller_plan(tmp_path: Path) -> Path:
    plan = yaml.safe_load((ROOT / "docs/studies/uncertainty/plan-tiny.yaml").read_text())
    plan["bootstrap"] = 40  # the fewest that give a 95 % interval
    plan["shifts"] = ["rotate=0,60", "blur=1"]
    plan["train"]["plain"]["seeds"] = plan["train"]["dropout"]["seeds"] = 4
    for spec in plan["evaluate"].values():
        spec["mc_sweep"] = [k for k in spec.get("mc_sweep", []) if k in (1, 5)] or spec.get("mc_sweep", [])
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def run_plan(fake_data: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "benchmarks.uncertainty_plan",
        str(smaller_plan(tmp_path)),
        *("--data-dir", str(fake_data), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")),
        *("--figures", str(tmp_path / "figures" / "u")),
        *("--set", "data.train_limit=900", "--set", "data.test_limit=200", "--set", "train.epochs=2"),
        *extra,
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=8 * PATIENCE_S)


@pytest.mark.timeout(8 * PATIENCE_S)  # two passes of the plan: about 30 dropcli processes on a loaded machine
def test_the_tiny_plan_writes_every_output_and_a_rerun_skips_the_work(fake_data, tmp_path):
    first = run_plan(fake_data, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "out"
    for name in ("dropout", "plain", "ll-dropout", "open-dropout"):
        report = json.loads((out / f"{name}.json").read_text())
        assert report["compute"]["multiply_adds_per_example"]["deterministic"] == 784 * 256 + 256 * 256 + 256 * 10
        assert all(seconds > 0 for seconds in report["compute"]["seconds_per_example"].values())
        assert all(row["bins"] for row in report["results"])  # the reliability bins, for the figure
        assert (out / f"{name}.csv").is_file() and (out / f"{name}-runs.csv").is_file()
    rate = json.loads((out / "select.json").read_text())["rate"]
    assert rate in (0.2, 0.5)
    ll_config = (tmp_path / "runs" / "ll-dropout" / "kind=scratch_seed0" / "config.yaml").read_text()
    assert f"- 0.0\n  - {rate}" in ll_config  # dropout on the last hidden layer only, at the chosen rate
    ood = {row["data"] for row in csv.DictReader(open(out / "open-dropout-ood.csv"))}
    assert ood == {"held-out classes [6, 7, 8, 9]", "inverted"}
    tables = (out / "tables.md").read_text()
    assert "Seed-level comparisons" in tables and "equal multiply-adds" in tables and "trained LL-dropout" in tables
    for figure in ("u-dropout-compute.png", "u-headline.png"):
        pixels = matplotlib.image.imread(tmp_path / "figures" / figure)  # decodes, and is not one colour
        assert pixels.shape[1] >= 600 and pixels[..., :3].std() > 0.05, (figure, pixels.shape)
    # A rerun trains and evaluates nothing again: the evaluations are skipped, the runs are continued as done.
    before = (out / "dropout.json").stat().st_mtime_ns
    second = run_plan(fake_data, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (out / "dropout.json").stat().st_mtime_ns == before
    assert (out / "commands.sh").read_text().count("# skipped") == 4
    # Each group was scored a shifted set at a time, each set kept: a stopped group keeps them,
    # and its rerun scores nothing again, giving the same numbers as one evaluate of every shift.
    parts = tmp_path / "runs" / ".study-parts" / "plain"
    assert sorted(path.name for path in parts.iterdir()) == ["00-rotate=0.pt", "01-rotate=60.pt", "02-blur=1.pt"]
    (out / "plain.json").unlink()
    third = run_plan(fake_data, tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "scored" not in third.stdout, third.stdout
    whole = json.loads((out / "plain.json").read_text())["results"]
    line = next(
        line
        for line in (out / "commands.sh").read_text().splitlines()
        if line.startswith("dropcli evaluate") and "/plain " in line
    )
    words = [word for word in line.split() if word != "dropcli"]
    data = ["--data-dir", str(fake_data)]
    once = subprocess.run(
        [sys.executable, "-m", "dropcli", *words[:-2], *data, "-o", str(tmp_path / "once.png")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=4 * PATIENCE_S,
    )
    assert once.returncode == 0, once.stderr[-3000:]
    single = json.loads(once.stdout)["uncertainty"]["results"]
    by_key = {(row["method"], row["shift"]["family"], row["shift"]["value"]): row for row in single}
    assert len(whole) == len(single) > 2
    for row in whole:  # every number the same, intervals included: the parts share the resamples
        assert row == by_key[row["method"], row["shift"]["family"], row["shift"]["value"]], row["method"]

    # --redraw draws the figures again from the kept sets, and touches nothing else.
    compute = tmp_path / "figures" / "u-dropout-compute.png"
    compute.unlink()
    written = {path: path.stat().st_mtime_ns for path in out.iterdir()}
    redrawn = run_plan(fake_data, tmp_path, "--redraw")
    assert redrawn.returncode == 0, redrawn.stderr[-3000:]
    assert compute.is_file() and "scored" not in redrawn.stdout and "+ dropcli" not in redrawn.stdout
    assert {path: path.stat().st_mtime_ns for path in out.iterdir()} == written
