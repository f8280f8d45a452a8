"""train.precision bf16 and auto: the bf16 fused step against the fp32 one, the refusal where the
CPU has no bf16 products, auto's choice and where the run records it."""

import json

import pytest
import torch

from dropcli import data, runs
from dropcli.config import load_config
from dropcli.errors import DropcliError
from dropcli.training import fused, precision
from dropcli.training.epoch import evaluate, train_one_epoch
from dropcli.training.state import new_state

CPU = torch.device("cpu")
NEEDS_BF16 = pytest.mark.skipif(not precision.bf16_offer(CPU).bf16, reason="this CPU has no native bf16 products")


def trained(fake_data, *overrides: str, epochs: int = 2):
    """(weights, last epoch's train loss, test loss) after `epochs` fused epochs on 1,000 stand-in images."""
    config = load_config(
        None,
        [
            f"data.root={fake_data}",
            "data.train_limit=1000",
            "data.test_limit=500",
            "train.batch_size=64",
            "train.engine=fused",
            *overrides,
        ],
    )
    dataset = data.load(config.data, config.seed, CPU)
    state = new_state(config, CPU)
    for epoch in range(1, epochs + 1):
        loss, _ = train_one_epoch(state, dataset.train, config, epoch)
    test_loss, _ = evaluate(state.model, dataset.test, precision=config.train.precision)
    return [parameter.detach().clone() for parameter in state.model.parameters()], loss, test_loss


MASK_CASES = [
    ["model.mask_mode=int16"],
    ["model.mask_mode=bool", "model.dropout_input=0.2"],
    ["model.kind=builtin", "model.hidden=64x48x32", "model.dropout=0.5"],
]


@NEEDS_BF16
@pytest.mark.parametrize("overrides", MASK_CASES, ids=[" ".join(case) for case in MASK_CASES])
def test_the_bf16_fused_step_draws_the_fp32_steps_masks(fake_data, monkeypatch, overrides):
    masks: dict[str, list[torch.Tensor]] = {"fp32": [], "bf16": []}
    draw_keep = fused.draw_keep
    for name, drawn in masks.items():

        def recording(*args, _drawn=drawn, **kwargs):
            keep = draw_keep(*args, **kwargs)
            _drawn.append(keep.bool())
            return keep

        monkeypatch.setattr(fused, "draw_keep", recording)
        trained(fake_data, f"train.precision={name}", *overrides, epochs=1)
    assert len(masks["bf16"]) == len(masks["fp32"]) > 0
    for fp32_mask, bf16_mask in zip(masks["fp32"], masks["bf16"], strict=True):
        assert torch.equal(fp32_mask, bf16_mask)


PARITY_CASES = [
    ["model.mask_mode=int16"],
    ["model.kind=builtin", "model.dropout_input=0.2"],
    ["model.kind=none"],
    ["model.kind=scratch", "model.hidden=64x48x32", "model.dropout=[0.2,0.5,0.3]"],
    ["optim.momentum=0.5"],  # through optimizer.step()
]


@NEEDS_BF16
@pytest.mark.parametrize("overrides", PARITY_CASES, ids=[" ".join(case) for case in PARITY_CASES])
def test_bf16_training_differs_from_fp32_by_rounding_only(fake_data, overrides):
    # The same masks and data order: what is left is bf16's rounding, 1-3 % of each weight tensor's
    # norm after two epochs, where another seed gives weights 140 % of the norm away.
    from dropcli.training.epoch import Diverged

    fp32, fp32_loss, fp32_test_loss = trained(fake_data, *overrides)
    try:
        bf16, bf16_loss, bf16_test_loss = trained(fake_data, "train.precision=bf16", *overrides)
    except Diverged as diverged:  # where fp32 trained: not a difference of rounding
        pytest.fail(f"bf16 diverged where fp32 trains: {diverged}")
    for expected, actual in zip(fp32, bf16, strict=True):
        assert actual.dtype == torch.float32  # the master weights stay fp32
        assert (actual - expected).norm() <= 0.05 * expected.norm()
    assert any(not torch.equal(a, b) for a, b in zip(fp32, bf16))  # bf16 did run: its rounding shows
    assert bf16_loss == pytest.approx(fp32_loss, abs=0.02)
    assert bf16_test_loss == pytest.approx(fp32_test_loss, abs=0.02)


@NEEDS_BF16
def test_each_bf16_step_reads_the_weights_as_they_are_when_it_starts():
    # Max-norm (optim.max_norm) moves the fp32 weights between steps: the next step's products
    # must see them so, not bf16 copies from before.
    config = load_config(None, ["model.kind=none", "train.engine=fused", "train.precision=bf16"])
    state = new_state(config, CPU)
    step = fused.FusedStep(state.model, state.optimizer, "bf16")
    X, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
    step(X, y, 32)
    with torch.no_grad():
        for parameter in state.model.parameters():
            parameter.mul_(0.5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = state.model(X).float()  # (32, 10)
    _, logits = step(X, y, 32)
    torch.testing.assert_close(logits, expected, rtol=0.02, atol=0.01)


@NEEDS_BF16
@pytest.mark.parametrize("engine", ["fused", "autograd"])
def test_a_few_epochs_in_bf16_score_as_fp32_does(in_tmp, invoke, small_args, engine):
    # The parity test: the chapter's net, 3 epochs each way on the stand-in data.
    finals = {}
    for name in ("fp32", "bf16"):
        args = [*small_args(epochs=3, train=1000, test=500), "--engine", engine, "--set", f"train.precision={name}"]
        assert invoke("train", *args, "-q", "--run-dir", name).exit_code == 0
        finals[name] = runs.read_summary(in_tmp / name / runs.SUMMARY_FILE)["final"]
    assert finals["bf16"]["test_acc"] == pytest.approx(finals["fp32"]["test_acc"], abs=0.02)
    assert finals["bf16"]["test_loss"] == pytest.approx(finals["fp32"]["test_loss"], rel=0.05, abs=0.01)
    assert finals["bf16"]["test_loss"] != finals["fp32"]["test_loss"]  # two precisions, not one twice


@NEEDS_BF16
def test_a_bf16_fused_run_resumes_exactly(in_tmp, invoke, small_args, without_times):
    options = ["--set", "train.engine=fused", "--set", "train.precision=bf16", "-q"]
    assert invoke("train", *small_args(epochs=3), *options, "--run-dir", "whole").exit_code == 0
    assert invoke("train", *small_args(epochs=1), *options, "--run-dir", "part").exit_code == 0
    assert invoke("train", "--resume", "part", "--set", "train.epochs=3", "-q").exit_code == 0
    whole = [json.loads(line) for line in (in_tmp / "whole" / runs.METRICS_FILE).read_text().splitlines()]
    resumed = [json.loads(line) for line in (in_tmp / "part" / runs.METRICS_FILE).read_text().splitlines()]
    assert without_times(resumed) == without_times(whole)


@pytest.fixture
def no_bf16(monkeypatch):
    """A CPU like the AVX2-only hosts: no AVX512_BF16, no AMX."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma", "avx512f"}))


@pytest.mark.parametrize("engine", ["fused", "autograd"])
def test_bf16_is_refused_in_one_line_where_the_cpu_would_emulate_it(in_tmp, invoke, small_args, no_bf16, engine):
    result = invoke("train", *small_args(epochs=1), "--engine", engine, "--set", "train.precision=bf16", "--run-dir", "r")
    assert result.exit_code == 2
    assert "train.precision=bf16 would run slower than fp32 on cpu: no AVX512_BF16 or AMX-BF16" in result.output
    assert "Traceback" not in result.output and not (in_tmp / "r").exists()


def test_auto_trains_in_fp32_where_the_cpu_has_no_bf16_and_says_why(in_tmp, invoke, small_args, no_bf16):
    result = invoke("train", *small_args(epochs=1), "--engine", "fused", "--set", "train.precision=auto", "-q", "--run-dir", "r")
    assert result.exit_code == 0, result.output
    recorded = runs.read_summary(in_tmp / "r" / runs.SUMMARY_FILE)["precision"]
    assert recorded["asked"] == "auto" and recorded["used"] == "fp32" and "no AVX512_BF16" in recorded["why"]
    assert "precision: fp32" in (in_tmp / "r" / runs.CONFIG_FILE).read_text()  # what evaluate and --resume follow


@NEEDS_BF16
@pytest.mark.parametrize("fp32_seconds, used", [(2.0, "bf16"), (0.5, "fp32")])
def test_auto_takes_bf16_only_where_its_products_measured_faster(in_tmp, invoke, small_args, monkeypatch, fp32_seconds, used):
    monkeypatch.setattr(precision, "probe_products", lambda sizes, batch, device: (fp32_seconds, 1.0))
    result = invoke("train", *small_args(epochs=1), "--engine", "fused", "--set", "train.precision=auto", "-q", "--run-dir", "r")
    assert result.exit_code == 0, result.output
    recorded = runs.read_summary(in_tmp / "r" / runs.SUMMARY_FILE)["precision"]
    assert recorded["used"] == used and f"{fp32_seconds:.2f}x" in recorded["why"]
    assert f"precision: {used}" in (in_tmp / "r" / runs.CONFIG_FILE).read_text()


def test_a_resumed_auto_run_keeps_the_precision_it_started_with(no_bf16):
    config = load_config(None, ["train.precision=auto"])
    assert precision.choose_precision(config, CPU, resumed="bf16").used == "bf16"
    assert precision.choose_precision(config, CPU).used == "fp32"


def test_probing_leaves_the_runs_random_numbers_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    precision.training_products((784, 16, 10), 8, torch.float32, CPU)()
    assert torch.equal(torch.rand(3), expected)


def test_what_the_machine_offers_is_named(no_bf16):
    assert precision.shown_cpu_flags() == "avx2 fma avx512f"
    with pytest.raises(DropcliError, match="use train.precision=fp32, or auto"):
        precision.check_precision("bf16", CPU)
    precision.check_precision("fp32", CPU)  # fp32 runs anywhere


def test_a_dry_run_says_what_the_machine_offers_and_what_auto_picks(in_tmp, invoke, small_args, no_bf16):
    result = invoke("train", *small_args(epochs=1), "--set", "train.precision=auto", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "cpu flags: avx2 fma avx512f\n" in result.output
    assert "bf16 products: not native, no AVX512_BF16 or AMX-BF16" in result.output
    assert "precision: fp32 (auto: cpu has no AVX512_BF16" in result.output
    refused = invoke("train", *small_args(epochs=1), "--set", "train.precision=bf16", "--dry-run")
    assert "precision: bf16 would be refused here" in refused.output


@NEEDS_BF16
def test_mc_dropout_passes_run_in_bf16_and_score_in_fp32():
    from dropcli.model.mlp import build_model
    from dropcli.uncertainty import methods

    model = build_model(load_config(None, ["model.hidden=64x32"]).model)
    X = torch.rand(200, 784)
    probabilities = {}
    for name in ("fp32", "bf16"):
        torch.manual_seed(1)  # the same masks both ways
        probabilities[name] = methods.mc_probabilities(model, X, 8, name)
    bf16 = probabilities["bf16"]
    assert bf16.dtype == torch.float32  # averaged and scored in fp32, whatever the passes ran in
    torch.testing.assert_close(bf16.sum(dim=1), torch.ones(200))
    assert not torch.equal(bf16, probabilities["fp32"])  # the passes did run in bf16
    torch.testing.assert_close(bf16, probabilities["fp32"], rtol=0, atol=0.02)


def test_a_sweeps_trials_resolve_auto_each_and_record_it(in_tmp, invoke, small_args, no_bf16):
    # tune and the uncertainty study train through the same train_run: auto is theirs too.
    result = invoke(
        "sweep", *small_args(epochs=1), "--set", "train.precision=auto", "--grid", "model.dropout=0.2,0.5", "--run-dir", "s", "-q"
    )
    assert result.exit_code == 0, result.output
    trials = sorted(path.parent for path in (in_tmp / "s").glob(f"*/{runs.SUMMARY_FILE}"))
    assert len(trials) == 2
    for trial in trials:
        assert runs.read_summary(trial / runs.SUMMARY_FILE)["precision"]["used"] == "fp32"
        assert "precision: fp32" in (trial / runs.CONFIG_FILE).read_text()
