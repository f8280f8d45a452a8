"""Each row's cost per test example, counted from the architecture."""

import pytest

from dropcli.uncertainty import compute
from dropcli.uncertainty import lineup as lineup_module

FIRST, SECOND, OUT = 784 * 256, 256 * 256, 256 * 10  # the chapter's 784-256-256-10 net
FULL = FIRST + SECOND + OUT


def full_lineup():
    return lineup_module.plan([1, 3, 50], [2, 5], True, True, True, True, True)


def test_mc_dropout_pays_the_first_layer_once(build):
    costs = compute.multiply_adds(full_lineup(), build("scratch"))
    assert costs["deterministic"] == costs["temperature"] == FULL
    for k in (1, 3, 50):
        assert costs[f"mc dropout K={k}"] == FIRST + k * (SECOND + OUT)
    assert costs["mc dropout K=50"] / FULL == pytest.approx(0.7467 + 0.2533 * 50, abs=0.01)  # about 0.75 + 0.25 K
    assert costs["mc dropout + temperature"] == costs["mc dropout K=50"]
    # Last-layer: only what follows the last noise layer is repeated.
    assert costs["last-layer mc dropout"] == FIRST + SECOND + 50 * OUT
    assert costs["ensemble M=5"] == costs["ensemble M=5 + temperature"] == 5 * FULL
    assert costs["ensemble M=2 + mc dropout"] == 2 * costs["mc dropout K=50"]
    assert compute.runs_trained(full_lineup())["ensemble M=5 + mc dropout"] == 5
    assert compute.runs_trained(full_lineup())["mc dropout K=50"] == 1


def test_noise_on_the_inputs_or_weights_makes_every_pass_full(build):
    lineup = lineup_module.plan([10], [], False, False, False, False, False)
    assert compute.multiply_adds(lineup, build("scratch", dropout_input=0.2))["mc dropout"] == 10 * FULL
    assert compute.multiply_adds(lineup, build("dropconnect"))["mc dropout"] == 10 * FULL


def test_the_count_follows_the_architecture(build):
    lineup = lineup_module.plan([4], [], False, False, False, False, False)
    costs = compute.multiply_adds(lineup, build("scratch", hidden=(100,), dropout=(0.5,)))
    assert costs == {"deterministic": 784 * 100 + 100 * 10, "mc dropout": 784 * 100 + 4 * 100 * 10}
