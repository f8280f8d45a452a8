"""The chapter's exercises: the noise variants, activation statistics, MC dropout, sweeps."""

import json
import math

import pytest
import torch

from conftest import mc_dropout_by_hand
from dropcli import runs
from dropcli.config import load_config
from dropcli.config.vocabulary import MODEL_KINDS
from dropcli.model.mlp import DropConnectLinear
from dropcli.model.noise import GaussianNoise, gaussian_noise
from dropcli.training.stats import ActivationStats

KINDS = list(MODEL_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_the_same_shapes_and_initial_weights(kind, build):
    model = build(kind)
    assert model(torch.rand(3, 784)).shape == (3, 10)
    reference = build("scratch").state_dict()
    assert all(torch.equal(value, reference[name]) for name, value in model.state_dict().items())


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_deterministic_in_eval_mode_and_equal_to_none(kind, build):
    X = torch.rand(16, 784)
    model, baseline = build(kind).eval(), build("none").eval()
    assert torch.equal(model(X), model(X))
    # In eval mode every noise layer hands its input through untouched: the very same numbers.
    assert torch.equal(model(X), baseline(X))


@pytest.mark.parametrize("kind", ["dropconnect", "gaussian"])
def test_noise_variants_are_stochastic_in_training_and_reach_the_weights(kind, build):
    model = build(kind).train()
    X = torch.rand(16, 784)
    assert not torch.equal(model(X), model(X))
    model(X).sum().backward()
    for name in ("hidden_1", "hidden_2", "output"):
        assert getattr(model, name).weight.grad.abs().sum() > 0


def test_dropconnect_masks_the_weights_with_one_mask_per_batch():
    layer = DropConnectLinear(50, 40, p=0.5).train()
    x = torch.eye(50)  # row i of the output is column i of the (masked) weight, plus bias
    torch.manual_seed(1)
    out = layer(x) - layer.bias
    zeroed = (out == 0).float().mean().item()
    assert abs(zeroed - 0.5) < 0.05
    kept = out != 0
    assert torch.allclose(out[kept], 2 * layer.weight.t()[kept])  # survivors scaled by 1 / (1 - p)
    # The gradient reaches the real weight, through the same mask and scale.
    torch.manual_seed(1)
    layer(x).sum().backward()
    assert torch.equal(layer.weight.grad.t() != 0, kept)
    assert torch.allclose(layer.weight.grad.t()[kept], torch.full_like(layer.weight.t()[kept], 2.0))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropconnect_and_gaussian_preserve_the_expectation(p):
    n = 1_000_000
    torch.manual_seed(0)
    x = torch.ones(n)
    y = gaussian_noise(x, p)
    sigma = math.sqrt(p / (1 - p))
    assert abs(y.mean().item() - 1) < 4 * sigma / math.sqrt(n)
    assert abs(y.var().item() - sigma**2) < 0.02 * sigma**2 + 0.01  # variance matches dropout's
    layer = DropConnectLinear(1000, 1, p=p).train()
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
    out = torch.stack([layer(torch.ones(1, 1000)) for _ in range(200)])
    # Each output sums 1000 weights, each kept with 1 - p and scaled by 1 / (1 - p).
    assert abs(out.mean().item() - 1000) < 4 * math.sqrt(1000 * p / (1 - p)) / math.sqrt(200)


def test_gaussian_noise_rules():
    x = torch.randn(5, requires_grad=True)
    assert gaussian_noise(x, 0.0) is x and gaussian_noise(x, 0.5, training=False) is x
    with pytest.raises(ValueError, match="p < 1"):
        GaussianNoise(1.0)
    torch.manual_seed(2)
    y = gaussian_noise(x, 0.5)
    g = torch.randn(5)
    y.backward(g)
    assert torch.allclose(x.grad, g * (y / x).detach())  # same noise forward and backward


def test_activation_variance_grows_after_dropout_in_train_mode(build):
    model = build("scratch").train()
    stats = ActivationStats(model)
    for _ in range(3):
        model(torch.rand(128, 784))
    values = stats.read()
    for slot in ("noise_1", "noise_2"):
        assert values[f"{slot}.var_after"] > values[f"{slot}.var_before"] > 0
        assert 0.5 <= values[f"{slot}.zeros"] < 1  # dropout's half plus the ReLU's zeros
    model.eval()
    stats.reset()
    model(torch.rand(8, 784))
    assert stats.read() == {}  # only training batches count
    stats.remove()


def test_stats_are_logged_per_epoch(in_tmp, invoke, small_args):
    result = invoke("train", *small_args(train=1000, test=300), "--run-dir", "r", "--stats")
    assert result.exit_code == 0, result.output
    metrics = runs.read_metrics(in_tmp / "r")
    assert set(metrics[0]["activations"]) == {f"noise_{i}.{s}" for i in (1, 2) for s in ("var_before", "var_after", "zeros")}
    assert "noise_1 var" in result.stdout


def test_stats_cover_the_inputs_and_every_hidden_layer(in_tmp, invoke, small_args):
    args = [*small_args(epochs=1, train=600, test=200), "--set", "model.hidden=32x24x16", "--set", "model.dropout_input=0.2"]
    result = invoke("train", *args, "--run-dir", "r", "--stats")
    assert result.exit_code == 0, result.output
    activations = runs.read_metrics(in_tmp / "r")[0]["activations"]
    slots = ["input_noise", "noise_1", "noise_2", "noise_3"]
    assert list(dict.fromkeys(key.rsplit(".", 1)[0] for key in activations)) == slots
    for slot in slots:
        assert activations[f"{slot}.var_after"] > activations[f"{slot}.var_before"] > 0
    assert "noise_3 var" in result.stdout and "input_noise var" in result.stdout


def test_weight_decay_reaches_the_optimizer():
    from dropcli.training.state import new_state

    config = load_config(None, ["optim.weight_decay=0.001"])
    assert new_state(config, torch.device("cpu")).optimizer.param_groups[0]["weight_decay"] == 0.001


def test_mc_dropout_evaluate(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(train=1000, test=300), "--run-dir", "r", "-q").exit_code == 0
    report = json.loads(invoke("evaluate", "r", "--json", "--mc-samples", "4").stdout)
    accuracy, nll = mc_dropout_by_hand(in_tmp / "r", passes=4)
    assert report["mc_samples"] == 4 and report["mc_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert report["mc_loss"] == pytest.approx(nll, rel=1e-5)
    again = json.loads(invoke("evaluate", "r", "--json", "--mc-samples", "4").stdout)
    assert again["mc_accuracy"] == report["mc_accuracy"]  # seeded
    one_pass = json.loads(invoke("evaluate", "r", "--json", "--mc-samples", "1").stdout)
    assert one_pass["mc_accuracy"] != report["accuracy"] or one_pass["mc_loss"] != report["loss"]  # noise was on
    text = invoke("evaluate", "r", "--mc-samples", "4").stdout
    assert "Monte Carlo dropout (4 passes" in text


@pytest.mark.parametrize("kind", ["none", "dropconnect", "gaussian"])
def test_compare_accepts_every_variant(in_tmp, kind, invoke, small_args):
    result = invoke("compare", kind, "scratch", *small_args(epochs=1, train=1000, test=300), "--run-dir", "c", "-q")
    assert result.exit_code == 0, result.output
    cells = json.loads((in_tmp / "c" / "results.json").read_text())["cells"]
    assert [cell["values"]["model.kind"] for cell in cells] == [kind, "scratch"]


def test_sweep_runs_the_grid_and_resumes(in_tmp, invoke, small_args):
    args = [
        "sweep",
        *small_args(train=1000, test=300),
        "--grid",
        "model.dropout_1=0,0.5",
        "--grid",
        "model.dropout_2=0,0.2,0.5",
        "--run-dir",
        "s",
    ]
    result = invoke(*args, "-q")
    assert result.exit_code == 0, result.output
    report = json.loads((in_tmp / "s" / "results.json").read_text())
    assert [tuple(c["values"].values()) for c in report["cells"]] == [(a, b) for a in (0, 0.5) for b in (0, 0.2, 0.5)]
    for cell in report["cells"]:
        assert cell["gap"]["mean"] == pytest.approx(cell["train_acc"]["mean"] - cell["test_acc"]["mean"])
        summary = json.loads((in_tmp / "s" / cell["runs"][0] / runs.SUMMARY_FILE).read_text())
        assert summary["final"]["test_acc"] == cell["test_acc"]["mean"]
    assert (in_tmp / "s" / "results.csv").read_text().count("\n") == 7
    assert "final test accuracy" in result.stdout and "generalisation gap" in result.stdout
    # Interrupt one cell (as a kill after its first epoch leaves it), then run the sweep again.
    cut = in_tmp / "s" / report["cells"][4]["runs"][0]
    (cut / runs.SUMMARY_FILE).unlink()
    record = in_tmp / "s" / "trials.jsonl"
    record.write_text("".join(line + "\n" for line in record.read_text().splitlines() if cut.name not in line))
    finished = {p.name: p.stat().st_mtime_ns for p in (in_tmp / "s").glob("*/summary.json")}
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert again.stdout.count("epochs ->") == 1  # only the interrupted cell trained
    assert {p.name: p.stat().st_mtime_ns for p in (in_tmp / "s").glob("*/summary.json") if p.parent != cut} == finished
    assert json.loads((in_tmp / "s" / "results.json").read_text())["cells"] == report["cells"]


def test_sweep_refuses_another_sweep_in_the_same_directory(in_tmp, invoke, small_args):
    assert (
        invoke(
            "sweep", *small_args(epochs=1, train=1000, test=300), "--grid", "optim.lr=0.1,0.2", "--run-dir", "s", "-q"
        ).exit_code
        == 0
    )
    result = invoke("sweep", *small_args(epochs=1, train=1000, test=300), "--grid", "optim.lr=0.1,0.3", "--run-dir", "s", "-q")
    assert result.exit_code == 2 and "holds a different experiment" in result.stderr
    (in_tmp / "other").mkdir()
    (in_tmp / "other" / "notes.txt").write_text("mine")
    result = invoke(
        "sweep", *small_args(epochs=1, train=1000, test=300), "--grid", "optim.lr=0.1,0.2", "--run-dir", "other", "-q"
    )
    assert result.exit_code == 2 and "is not an experiment directory" in result.stderr


@pytest.mark.parametrize(
    "grid, message",
    [
        ("model.dropout_1", "bad --grid 'model.dropout_1': expected KEY=V1,V2"),
        ("model.dropot_1=0,1", "unknown key 'model.dropot_1'"),
        ("model.dropout_1=0,2", "--grid model.dropout_1: model.dropout must be rates between 0 and 1, got [2.0, 0.5]"),
        ("model.hidden=64x64,64x0", "--grid model.hidden: model.hidden must be widths >= 1, got [64, 0]"),
    ],
)
def test_sweep_checks_every_cell_before_training(in_tmp, grid, message, invoke, small_args):
    result = invoke("sweep", *small_args(train=1000, test=300), "--grid", grid)
    assert result.exit_code == 2 and message in result.stderr
    assert not (in_tmp / "runs").exists()


@pytest.mark.parametrize("grids", [["model.dropout_1=0,0.5"], ["model.dropout_1=0,0.5", "optim.weight_decay=0,0.001"]])
def test_sweep_plot(in_tmp, invoke, small_args, grids):
    import matplotlib.image

    args = ["sweep", *small_args(epochs=1, train=1000, test=300), *(f"--grid={grid}" for grid in grids)]
    result = invoke(*args, "--run-dir", "s", "--plot", "-q")
    assert result.exit_code == 0 and "figure saved to s/sweep.png" in result.stdout.splitlines(), result.output
    pixels = matplotlib.image.imread(in_tmp / "s" / "sweep.png")
    assert pixels.shape[1] >= 600 and pixels[..., :3].std() > 0.05
