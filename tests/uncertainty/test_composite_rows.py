"""The line-up's composite rows against references built here by hand: ensemble + MC dropout,
MC dropout + temperature, ensemble + temperature (each temperature fitted at the largest K, or on
the ensemble's mean), and the bootstrap's interval at the level asked for."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import only
from dropcli.config import load_config
from dropcli.uncertainty import bootstrap, calibration, lineup, methods

K = [1, 2, 3]  # a sweep: the composite rows use the largest K, never the first or one between


def mc_by_hand(model, X, passes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean softmax, mean entropy of the passes) of `passes` passes with dropout on: stacked pass
    k is rows k*n ... k*n+n-1 of one forward, as MC dropout draws its masks."""
    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        p = torch.softmax(model(X.repeat(passes, 1)), dim=1).view(passes, len(X), -1).double()  # (passes, n, classes)
    model.eval()
    entropy = -(p * p.clamp_min(1e-300).log()).sum(dim=2)  # (passes, n)
    return p.mean(dim=0), entropy.mean(dim=0)


@torch.no_grad()
def mean_softmax(members, group: list[int], X: torch.Tensor) -> torch.Tensor:
    """The deterministic ensemble of `group`: its members' mean softmax, in eval mode."""
    return sum(torch.softmax(members[i].model.eval()(X), dim=1).double() for i in group) / len(group)


def softmax_of_log(p: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(p.double().clamp_min(1e-30).log() / temperature, dim=1)


@pytest.fixture
def study(build):
    """Four nets (seeds 0-3, dropout on), a shared validation set and test images; the line-up's outputs."""
    members = [
        SimpleNamespace(model=build("builtin", seed=seed), config=load_config(None, [f"seed={seed}"])) for seed in range(4)
    ]
    generator = torch.Generator().manual_seed(5)
    val = SimpleNamespace(X=torch.rand(200, 784, generator=generator), y=torch.randint(0, 10, (200,), generator=generator))
    X = torch.rand(100, 784, generator=generator)
    plan = lineup.plan(
        K, [2], temperature=True, last_layer=False, swept_mc=True, swept_ensembles=False, ensemble_temperature=True
    )
    fitted = lineup.fit_temperatures(plan, members, [val] * 4, shared=True)
    outputs, _ = lineup.all_outputs(plan, members, X, fitted)
    return SimpleNamespace(members=members, val=val, X=X, fitted=fitted, outputs=outputs)


def test_mc_dropout_plus_temperature_is_fitted_and_applied_at_the_largest_k(study):
    for i, member in enumerate(study.members):
        p_val, _ = mc_by_hand(member.model, study.val.X, K[-1], seed=i)
        temperature = methods.fit_temperature(p_val.clamp_min(1e-30).log(), study.val.y)
        assert study.fitted["members"][i]["mc"] == pytest.approx(temperature, rel=1e-4)
        p_test, _ = mc_by_hand(member.model, study.X, K[-1], seed=i)
        row, inner = study.outputs["mc dropout + temperature"][i]
        assert inner is None and torch.allclose(row.double(), softmax_of_log(p_test, temperature), atol=1e-5)
    # Not vacuous: at K = 1 the temperature is another one.
    p_one, _ = mc_by_hand(study.members[0].model, study.val.X, 1, seed=0)
    assert abs(methods.fit_temperature(p_one.log(), study.val.y) - study.fitted["members"][0]["mc"]) > 1e-3


def test_ensemble_plus_mc_dropout_averages_every_members_mc_dropout(study):
    parts = study.outputs["ensemble + mc dropout"]
    assert len(parts) == 2  # four runs: two disjoint ensembles of two
    for group, (p, inner) in zip([[0, 1], [2, 3]], parts):
        by_hand = [mc_by_hand(study.members[i].model, study.X, K[-1], seed=i) for i in group]
        assert torch.allclose(p.double(), sum(q for q, _ in by_hand) / 2, atol=1e-6)
        assert torch.allclose(inner.double(), sum(e for _, e in by_hand) / 2, atol=1e-6)
        assert not torch.allclose(p.double(), by_hand[0][0], atol=1e-3)  # not one member's


def test_ensemble_plus_temperature_is_fitted_on_the_ensembles_mean(study):
    for g, group in enumerate([[0, 1], [2, 3]]):
        temperature = methods.fit_temperature(mean_softmax(study.members, group, study.val.X).log(), study.val.y)
        assert study.fitted["ensembles"]["ensemble"][g] == pytest.approx(temperature, rel=1e-4)
        one_member = methods.fit_temperature(torch.log_softmax(study.members[group[0]].model(study.val.X), dim=1), study.val.y)
        assert abs(one_member - temperature) > 1e-3  # not vacuous: one member's temperature is another
        p, _ = study.outputs["ensemble + temperature"][g]
        assert torch.allclose(p.double(), softmax_of_log(mean_softmax(study.members, group, study.X), temperature), atol=1e-5)


def quantile_by_hand(values: list[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


@pytest.mark.parametrize("level", [0.5, 0.8, 0.95])  # 0.5: the lowest --level takes
def test_the_interval_is_the_replicates_quantiles_at_the_level_asked(level):
    values = torch.randn(101, 3, generator=torch.Generator().manual_seed(int(level * 100)), dtype=torch.float64)
    for column, interval in enumerate(bootstrap.intervals(values, level)):
        replicates = values[:, column].tolist()
        assert interval.low == pytest.approx(quantile_by_hand(replicates, (1 - level) / 2), abs=1e-12)
        assert interval.high == pytest.approx(quantile_by_hand(replicates, (1 + level) / 2), abs=1e-12)


def test_an_interval_is_95_percent_unless_asked():
    values = torch.randn(101, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    at_95 = bootstrap.intervals(values, 0.95)
    try:
        plain = (bootstrap.intervals(values), bootstrap.interval(values[:, 0]), bootstrap.nan_intervals(values))
    except RuntimeError as error:  # e.g. a quantile past 1
        pytest.fail(f"an interval without a level is not the 95 % one: {error}")
    assert plain == (at_95, at_95[0], at_95)


@pytest.mark.parametrize("level", [0.5, 0.8, 0.95])
def test_an_interval_over_replicates_with_gaps_is_the_quantiles_of_those_present(level):
    values = torch.randn(61, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    values[::4, 0] = float("nan")  # a threshold no example reaches in some replicates
    values[:, 2] = float("nan")  # nor in any
    first, second, none = bootstrap.nan_intervals(values, level)
    present = [v for v in values[:, 0].tolist() if v == v]
    assert (first.low, first.high) == pytest.approx(
        (quantile_by_hand(present, (1 - level) / 2), quantile_by_hand(present, (1 + level) / 2)), abs=1e-12
    )
    column = values[:, 1].tolist()
    assert second.high == pytest.approx(quantile_by_hand(column, (1 + level) / 2), abs=1e-12)
    assert none is None
    assert first.half_width == pytest.approx((first.high - first.low) / 2)


def test_evaluate_level_gives_the_intervals_of_that_level(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(1), "--run-dir", "r", "-q").exit_code == 0
    result = invoke("evaluate", "r", "--bootstrap", 60, "--level", 0.8, "--predictions", "p.npz", "--json")
    assert result.exit_code == 0, result.output
    row = only(json.loads(result.stdout)["uncertainty"]["results"])
    saved = np.load(in_tmp / "p.npz")
    p, y = torch.from_numpy(saved["probabilities"]), torch.from_numpy(saved["label"]).long()
    replicates = bootstrap.replicates([bootstrap.per_example(p, y)], bootstrap.weights(len(y), 60))
    for column, metric in enumerate(calibration.METRICS):
        values = replicates[:, column].tolist()
        assert row["interval"][metric] == pytest.approx([quantile_by_hand(values, 0.1), quantile_by_hand(values, 0.9)], abs=1e-9)


@pytest.mark.parametrize("last_layer", [True, False])
def test_the_monte_carlo_progress_of_a_member_runs_from_0_to_1(build, last_layer):
    member = SimpleNamespace(model=build("builtin"), config=load_config(None, ["seed=0"]))
    plan = lineup.plan(
        [5], [], temperature=False, last_layer=last_layer, swept_mc=False, swept_ensembles=False, ensemble_temperature=False
    )
    heard = []
    lineup.member_outputs(plan, member, torch.rand(40, 784, generator=torch.Generator().manual_seed(1)), None, heard.append)
    assert heard == sorted(heard) and heard[-1] == 1.0 and heard[0] > 0
    # With --last-layer two sweeps (all noise layers, then the last only), each of its share: up to 1/2, then up to 1.
    assert (0.5 in heard) == last_layer


def test_the_last_layer_row_is_mc_dropout_with_only_the_last_layers_noise(build):
    members = [
        SimpleNamespace(model=build("builtin", seed=seed), config=load_config(None, [f"seed={seed}"])) for seed in range(2)
    ]
    X = torch.rand(100, 784, generator=torch.Generator().manual_seed(6))
    plan = lineup.plan(
        K, [], temperature=False, last_layer=True, swept_mc=True, swept_ensembles=False, ensemble_temperature=False
    )
    outputs, _ = lineup.all_outputs(plan, members, X, None)
    for i, member in enumerate(members):
        torch.manual_seed(member.config.seed)  # the line-up's draws: the full sweep first, then the last layer's
        full = methods.mc_sweep(member.model, X, K)
        ((last, last_inner),) = methods.mc_sweep(member.model, X, K[-1:], last_layer_only=True)
        row, inner = outputs[f"last-layer {methods.MC_DROPOUT}"][i]
        assert torch.allclose(row, last) and torch.allclose(inner, last_inner)
        assert not torch.allclose(row, full[-1][0], atol=1e-3)  # not the full MC dropout of the same K


def test_a_plain_ensemble_carries_its_members_mean_entropy_and_an_ensemble_of_one_none():
    plan = lineup.plan([], [1, 2], False, False, swept_mc=False, swept_ensembles=True, ensemble_temperature=False)
    generator = torch.Generator().manual_seed(3)
    members = [torch.softmax(torch.randn(5, 10, generator=generator, dtype=torch.float64), dim=1) for _ in range(2)]
    out = lineup.ensemble_outputs(plan, [{methods.DETERMINISTIC: (p, None)} for p in members], None)
    assert [inner for _, inner in out[lineup.ensemble_name(plan, 1)]] == [None, None]  # one member: no mutual information
    p, inner = only(out[lineup.ensemble_name(plan, 2)])
    assert torch.allclose(p, (members[0] + members[1]) / 2)
    assert inner is not None and torch.allclose(
        inner, (calibration.entropy_of(members[0]) + calibration.entropy_of(members[1])) / 2
    )


def test_a_line_up_of_one_run_has_that_runs_rows(build):
    """`evaluate RUN` on a single run: each row is the run's own output, MC dropout its passes."""
    member = SimpleNamespace(model=build("builtin", seed=0), config=load_config(None, ["seed=0"]))
    X = torch.rand(50, 784, generator=torch.Generator().manual_seed(7))
    plan = lineup.plan(
        K, [], temperature=False, last_layer=False, swept_mc=False, swept_ensembles=False, ensemble_temperature=False
    )
    try:
        outputs, per_member = lineup.all_outputs(plan, [member], X, None)
    except Exception as error:  # a row list built from a second member that is not there
        pytest.fail(f"a line-up of one run raised {error!r}")
    assert set(outputs) == set(per_member[0]) and all(len(parts) == 1 for parts in outputs.values())
    ((deterministic, _),) = outputs[methods.DETERMINISTIC]
    assert torch.allclose(deterministic, mean_softmax([member], [0], X).float())
    ((mc, mc_entropy),) = outputs[lineup.mc_name(plan, K[-1])]
    reference, reference_entropy = mc_by_hand(member.model, X, K[-1], seed=0)
    assert torch.allclose(mc.double(), reference, atol=1e-6) and torch.allclose(mc_entropy, reference_entropy, atol=1e-6)
