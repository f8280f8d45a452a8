"""benchmarks/tune.py, the replay behind `make bench-tune`: the table's lookup and a replay's books."""

import csv
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("optuna")
BENCH = Path(__file__).parents[2] / "benchmarks" / "tune.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_tune", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_table(path: Path, rows: list[dict], curves: list[list[float]]) -> Path:
    fields = ["run", "status", *rows[0], *(f"val_{e}" for e in range(1, len(curves[0]) + 1))]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        for number, (row, curve) in enumerate(zip(rows, curves, strict=True)):
            writer.writerow({"run": f"r{number}", "status": "finished", **row, **{f"val_{e}": v for e, v in enumerate(curve, 1)}})
    return path


def row(lr: float, rate: float, hidden: str = "256x256") -> dict:
    return {
        "model.hidden": hidden,
        "model.dropout_input": rate,
        "model.dropout_1": rate,
        "model.dropout_2": rate,
        "optim.lr": lr,
        "optim.momentum_final": 0.9,
        "optim.weight_decay": 0.0,
        "optim.schedule": "step",
        "data.augment.flip": "True",
        "data.augment.shift": 0,
    }


def test_the_nearest_row_weighs_every_key_not_the_categorical_ones_first(bench, tmp_path):
    rows = [row(0.01, 0.0), row(0.5, 0.5, hidden="512x512"), row(0.5, 0.5, hidden="128x128")]
    table = bench.read_table(write_table(tmp_path / "t.csv", rows, [[0.5, 0.6]] * 3))
    asked = {**row(0.5, 0.5), "data.augment.flip": "True", "data.augment.shift": "0"}
    # Row 0 has every categorical value asked for, but each real key at the far end of its range
    # (4 of 4 away); row 1 differs in the widths alone (1 away).
    assert bench.nearest(table, {key: (float(v) if key in bench.FLOATS else v) for key, v in asked.items()}) == 1
    asked["optim.lr"], asked["model.dropout_input"] = 0.01, 0.0  # now row 0 is 2 away, row 1 still 1 + 2
    assert bench.nearest(table, {key: (float(v) if key in bench.FLOATS else v) for key, v in asked.items()}) == 0


def test_a_replay_counts_every_epoch_it_spends_and_the_best_of_its_complete_trials(bench, tmp_path):
    from dropcli.config import load_config

    rows = [row(0.01, 0.1), row(0.1, 0.3), row(0.5, 0.5)]
    curves = [[0.5, 0.6, 0.7], [0.4, 0.5, 0.8], [0.3, 0.35, 0.9]]
    table = bench.read_table(write_table(tmp_path / "t.csv", rows, curves))
    strategy = bench.Strategy("random, no pruner", "random", "none", None)
    history = bench.replay(table, strategy, seed=0, budget=12, config=load_config(base=bench._plan_config()))
    assert [spent for spent, _ in history] == [3, 6, 9, 12]  # no pruner: every trial to its last epoch
    finals = {curve[-1] for curve in curves}
    assert all(best in finals for _, best in history) and [b for _, b in history] == sorted(b for _, b in history)
    assert bench.epochs_to(history, 0.9) == next((spent for spent, best in history if best >= 0.9), float("inf"))


def test_the_reduction_and_start_up_given_reach_the_pruner_and_the_sampler(bench, tmp_path, monkeypatch):
    from dropcli.config import load_config

    table = bench.read_table(write_table(tmp_path / "t.csv", [row(0.01, 0.1), row(0.5, 0.5)], [[0.5, 0.6]] * 2))
    config = load_config(base=bench._plan_config())
    built = []
    real = bench.tune_pruning.pruner
    monkeypatch.setattr(
        bench.tune_pruning,
        "pruner",
        lambda optuna, name, pruning, *rest: built.append(pruning) or real(optuna, name, pruning, *rest),
    )
    strategy = bench.Strategy("tpe + asha, grace", "tpe", "asha", None, reduction=4, startup=7)
    bench.replay(table, strategy, seed=0, budget=4, config=config)
    assert [pruning.reduction for pruning in built] == [4]
    assert bench.sampler_of(strategy, 0, built[0], config, table, 40)._n_startup_trials == 7
    default = bench.Strategy("tpe + asha, grace", "tpe", "asha", None)  # as tune chooses: at least 10
    assert bench.sampler_of(default, 0, built[0], config, table, 40)._n_startup_trials == 10
