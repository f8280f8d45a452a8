"""What a checkpoint file must be before a run continues from it: its format, its epochs, nothing
that runs code on load, weights and optimizer that fit, CUDA's generator touched only on CUDA."""

import datetime

import pytest
import torch

from conftest import refusal
from dropcli import runs
from dropcli.config import load_config
from dropcli.errors import DropcliError
from dropcli.runs import checkpoints
from dropcli.training.state import new_state


@pytest.fixture
def saved(tmp_path):
    """A checkpoint as `save` writes it after two epochs (history made up), and its state."""
    state = new_state(load_config(None, ["seed=0"]), torch.device("cpu"))
    checkpoints.save(tmp_path / "last.pt", state, load_config(None, ["seed=0"]))
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    payload["epoch"], payload["history"] = 2, [{}, {}]  # what load checks is their number
    return payload, state


def write(tmp_path, payload):
    torch.save(payload, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


def test_a_file_of_another_format_is_refused_for_its_format(tmp_path, saved):
    payload, _ = saved
    for other in (checkpoints.FORMAT + 1, checkpoints.FORMAT - 1, None):
        with pytest.raises(DropcliError, match=f"not a dropcli checkpoint of format {checkpoints.FORMAT}$"):
            checkpoints.load(write(tmp_path, {**payload, "format": other}))
    with pytest.raises(DropcliError, match="not a dropcli checkpoint of format"):
        checkpoints.load(write(tmp_path, [payload]))


@pytest.mark.parametrize("epoch", [1, 3])
def test_a_file_whose_epoch_is_not_its_historys_length_is_damaged(tmp_path, saved, epoch):
    payload, _ = saved
    with pytest.raises(DropcliError, match=r"damaged checkpoint \(epoch and history not as saved\)"):
        checkpoints.load(write(tmp_path, {**payload, "epoch": epoch}))
    assert checkpoints.load(write(tmp_path, payload))["epoch"] == 2  # as saved, it loads


def test_a_file_that_would_run_code_to_load_is_refused(tmp_path, saved):
    # Only tensors and plain containers load: anything else is an object whose class pickle calls.
    payload, _ = saved
    with pytest.raises(DropcliError, match=r"not a readable dropcli checkpoint \(UnpicklingError\)"):
        checkpoints.load(write(tmp_path, {**payload, "note": datetime.date(2026, 12, 7)}))


def test_weights_or_an_optimizer_that_do_not_fit_are_one_error(saved):
    payload, state = saved
    wrong_shape = {**payload, "model": {key: value[:1] for key, value in payload["model"].items()}}  # RuntimeError
    groups = payload["optimizer"]["param_groups"]
    two_groups = {**payload, "optimizer": {**payload["optimizer"], "param_groups": groups + groups}}  # ValueError
    no_weights = {key: value for key, value in payload.items() if key != "model"}  # KeyError
    a_list = {**payload, "model": list(payload["model"].values())}  # TypeError
    for damaged in (wrong_shape, two_groups, no_weights, a_list):
        assert "does not fit its own config" in refusal(checkpoints.restore, state, damaged)  # not a KeyError from inside


def test_a_model_whose_weights_are_missing_or_of_another_kind_is_one_error(saved):
    payload, _ = saved
    for damaged in (
        {key: value for key, value in payload.items() if key != "model"},  # KeyError
        {**payload, "model": list(payload["model"].values())},  # TypeError
        {**payload, "model": {key: value[:1] for key, value in payload["model"].items()}},  # RuntimeError
    ):
        assert "does not fit its own config" in refusal(checkpoints.load_model, damaged, torch.device("cpu"))


def test_an_averaged_runs_file_without_its_average_is_damaged():
    config = load_config(None, ["train.average=ema"])
    state = new_state(config, torch.device("cpu"))
    payload = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "data_order": state.order_generator.get_state()},
        "history": [],
        "config": {"seed": 0},
        "epoch": 0,
    }
    saved = torch.get_rng_state()
    with pytest.raises(DropcliError, match="does not fit its own config"):
        checkpoints.restore(state, payload)  # rather than an average silently begun again
    checkpoints.restore(state, {**payload, "averaged": state.averaged.state_dict()})
    torch.set_rng_state(saved)


@pytest.mark.parametrize("device", ["cpu", "meta"])  # meta stands in for mps: any device but CUDA
def test_cudas_generator_is_read_and_set_on_cuda_alone(monkeypatch, device):
    touched = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda *args: touched.append("get") or torch.zeros(8, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *args: touched.append("set"))
    state = new_state(load_config(None, ["seed=0"]), torch.device("cpu"))
    state.model.to(device)
    assert checkpoints.rng_state(state)["cuda"] is None
    saved = torch.get_rng_state()
    checkpoints._set_rng(state, {"torch": saved, "cuda": torch.zeros(8, dtype=torch.uint8)})  # a CUDA run's, resumed here
    assert touched == []


def test_cudas_generator_is_set_from_the_checkpoint_on_a_cuda_model(monkeypatch):
    """The CUDA branch, run on a CPU machine: a model whose parameters say cuda (torch.device("cuda")
    needs no GPU to be named), CUDA's set_rng_state recorded instead of called."""
    from types import SimpleNamespace

    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda saved, device: restored.append((saved, device)))
    monkeypatch.setattr(torch, "set_rng_state", lambda saved: None)
    on_cuda = SimpleNamespace(model=SimpleNamespace(parameters=lambda: iter([SimpleNamespace(device=torch.device("cuda", 0))])))
    checkpoints._set_rng(on_cuda, {"torch": None, "cuda": "the run's CUDA state"})
    assert restored == [("the run's CUDA state", torch.device("cuda", 0))]
    restored.clear()
    checkpoints._set_rng(on_cuda, {"torch": None, "cuda": None})  # saved off CUDA: nothing to set
    assert restored == []


def test_a_run_of_more_than_256_epochs_is_told_it_has_finished(in_tmp, invoke, small_args):
    # 300 epochs written into a one-epoch run's checkpoint: counts past 256 are distinct int objects.
    assert invoke("train", *small_args(1), "--run-dir", "r", "-q").exit_code == 0
    path = in_tmp / "r" / runs.LAST_CHECKPOINT
    payload = torch.load(path, weights_only=True)
    payload["config"]["train"]["epochs"] = 300
    payload["epoch"], payload["history"] = 300, payload["history"] * 300
    torch.save(payload, path)
    result = invoke("train", "--resume", "r")
    assert result.exit_code == 2
    assert "the run has finished all 300 epochs; to train on, raise the total, e.g. --set train.epochs=310" in result.stderr


def test_a_resume_from_an_unreadable_file_says_how_to_train_the_run_again(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(1), "--run-dir", "r", "-q").exit_code == 0
    (in_tmp / "r" / runs.LAST_CHECKPOINT).write_bytes(b"not a checkpoint")
    result = invoke("train", "--resume", "r")
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("a run continues only from last.pt: train it again with dropcli train -c r/config.yaml")
