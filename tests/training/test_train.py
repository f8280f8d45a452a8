import pytest
import torch

from dropcli import data
from dropcli.config import load_config
from dropcli.runs.listeners import Listener
from dropcli.runs.loop import train_run
from dropcli.training.epoch import evaluate, run_epoch
from dropcli.training.state import new_state

CPU = torch.device("cpu")


def small_config(fake_data, *overrides):
    return load_config(
        None, [f"data.root={fake_data}", "data.train_limit=2000", "data.test_limit=500", "train.epochs=3", *overrides]
    )


def run(config):
    dataset = data.load(config.data, config.seed, CPU)
    state = new_state(config, CPU)
    return [run_epoch(state, dataset, config, epoch) for epoch in range(1, config.train.epochs + 1)], state.model, dataset


@pytest.mark.parametrize("kind", ["scratch", "builtin"])
def test_same_config_and_seed_give_identical_metrics(fake_data, kind, without_times):
    config = small_config(fake_data, f"model.kind={kind}")
    first, _, _ = run(config)
    second, _, _ = run(config)
    assert without_times(first) == without_times(second)


def test_another_seed_gives_other_metrics(fake_data, without_times):
    first, _, _ = run(small_config(fake_data))
    second, _, _ = run(small_config(fake_data, "seed=1"))
    assert without_times(first) != without_times(second)


def test_training_learns_and_reports_every_epoch(fake_data):
    history, model, dataset = run(small_config(fake_data, "data.val_split=0.1", "train.epochs=5"))
    assert [m.epoch for m in history] == [1, 2, 3, 4, 5]
    assert history[-1].train_loss < history[0].train_loss / 2
    assert history[-1].test_acc > 0.9  # ten well-separated classes; chance is 0.1
    assert history[-1].val_acc is not None
    # The reported test numbers are those of the final model, in eval mode: computed here by hand,
    # not by the evaluate() that reported them.
    model.eval()
    with torch.no_grad():
        logits = model(dataset.test.X)  # (n, 10)
    loss = torch.nn.functional.cross_entropy(logits, dataset.test.y).item()
    accuracy = (logits.argmax(dim=1) == dataset.test.y).double().mean().item()
    assert history[-1].test_loss == pytest.approx(loss, rel=1e-5) and history[-1].test_acc == pytest.approx(accuracy, abs=1e-12)
    assert evaluate(model, dataset.test) == (history[-1].test_loss, history[-1].test_acc)  # and evaluate repeats itself


class Recorder(Listener):
    """Writes down what the loop tells its listeners, in order."""

    def __init__(self):
        self.heard = []

    def run_started(self, config, run_dir):
        self.heard.append("started")

    def batch_progress(self, epoch, batches_done, n_batches, loss):
        self.heard.append((epoch, batches_done, n_batches))

    def epoch_finished(self, metrics):
        self.heard.append(("epoch", metrics.epoch))

    def run_finished(self, result):
        self.heard.append(("finished", result.summary["status"], len(result.history)))


def test_the_loop_tells_every_listener_each_batch_report_and_epoch_in_order(fake_data, tmp_path):
    config = small_config(fake_data, "train.epochs=2", "train.batch_size=100")
    dataset = data.load(config.data, config.seed, CPU)
    listeners = [Recorder(), Recorder()]
    (tmp_path / "r").mkdir()
    train_run(config, dataset, CPU, tmp_path / "r", listeners)
    epoch = lambda n: [(n, 0, 20), (n, 10, 20), (n, 20, 20), ("epoch", n)]  # noqa: E731
    assert listeners[0].heard == ["started", *epoch(1), *epoch(2), ("finished", "finished", 2)]
    assert listeners[1].heard == listeners[0].heard


def test_bf16_autocast_trains_and_evaluates(fake_data):
    history, model, dataset = run(small_config(fake_data, "train.precision=bf16", "train.epochs=5"))
    assert history[-1].test_acc > 0.9
    assert history[-1].train_loss < history[0].train_loss / 2
    assert next(model.parameters()).dtype == torch.float32  # weights stay fp32; only the forward is bf16


def test_compile_falls_back_with_a_warning_where_it_cannot_run(fake_data, in_tmp, monkeypatch, invoke):
    from typer.testing import CliRunner

    from dropcli.cli import app

    def broken_compile(model):
        raise RuntimeError("no working C++ compiler\nmore detail")

    monkeypatch.setattr(torch, "compile", broken_compile)
    args = [
        "train",
        "--data-dir",
        str(fake_data),
        "--device",
        "cpu",
        "--set",
        "data.train_limit=500",
        "--set",
        "data.test_limit=100",
        "--set",
        "train.epochs=1",
        "--set",
        "train.compile=true",
        "--run-dir",
        "r",
        "-q",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "warning: torch.compile cannot run here (no working C++ compiler); training without it"


def test_bits_mask_mode_trains_exactly_like_bool(fake_data, without_times):
    # The same uniform draws, only stored packed: every number must come out the same.
    with_bool, _, _ = run(small_config(fake_data, "model.mask_mode=bool"))
    with_bits, _, _ = run(small_config(fake_data, "model.mask_mode=bits"))
    assert without_times(with_bool) == without_times(with_bits)


class _Shard:
    """Rank `rank` of `world_size` workers whose sums are this worker's alone (all_reduce is the identity)."""

    local_rank, local_world_size = 0, 1

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size

    def all_reduce(self, tensor):
        return tensor


def test_each_worker_scores_its_share_and_the_shares_add_up_to_the_whole(fake_data):
    from dropcli.training.epoch import flip_averaged_accuracy

    config = load_config(None, [f"data.root={fake_data}", "data.train_limit=300", "data.test_limit=101"])
    model, split = new_state(config, torch.device("cpu")).model, data.load(config.data, config.seed, torch.device("cpu")).test
    whole = evaluate(model, split, batch_size=16)
    halves = [evaluate(model, split, batch_size=16, workers=_Shard(rank, 2)) for rank in (0, 1)]
    assert sum(loss for loss, _ in halves) == pytest.approx(whole[0]) and sum(acc for _, acc in halves) == pytest.approx(whole[1])
    assert halves[0][1] != pytest.approx(whole[1])  # a share is not the whole
    flips = [flip_averaged_accuracy(model, split, 16, workers=_Shard(rank, 2)) for rank in (0, 1)]
    assert sum(flips) == pytest.approx(flip_averaged_accuracy(model, split, 16))


def test_an_epochs_reported_train_loss_and_accuracy_are_those_of_its_batches(fake_data):
    from dropcli.training.epoch import train_one_epoch

    # No dropout and a vanishing learning rate: every batch sees the starting net, in train mode as in eval mode.
    config = load_config(None, [f"data.root={fake_data}", "data.train_limit=300", "model.kind=none", "optim.lr=1e-12"])
    dataset = data.load(config.data, config.seed, torch.device("cpu"))
    state = new_state(config, torch.device("cpu"))
    expected_loss, expected_accuracy = evaluate(state.model, dataset.train)
    loss, accuracy = train_one_epoch(state, dataset.train, config, epoch=1)
    assert loss == pytest.approx(expected_loss, rel=1e-5) and accuracy == pytest.approx(expected_accuracy)
    assert 0 < accuracy < 1  # neither a floor nor a ceiling


def test_under_data_parallel_a_steps_loss_is_scaled_to_the_global_batchs_mean():
    import copy

    import torch.nn.functional as F

    from dropcli.training.epoch import _AutogradStep

    model = torch.nn.Sequential(torch.nn.Linear(784, 10))
    before = copy.deepcopy(model)
    X, y = torch.rand(6, 784, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3, 4, 5])
    step = _AutogradStep(model, torch.optim.SGD(model.parameters(), lr=0.1), "fp32", world=2)
    loss, _ = step(X, y, global_size=9)  # this worker's 6 of a global batch of 9 (DDP then averages over 2)
    with torch.no_grad():
        assert float(loss) == pytest.approx(float(F.cross_entropy(before(X), y, reduction="sum")) * 2 / 9, rel=1e-5)
