"""Runs you can keep: checkpoints, resume, interruption, divergence, evaluate, plot, runs."""

import json
import os
import signal

import pytest
import torch

from conftest import PATIENCE_S, accepted, only
from dropcli import runs
from dropcli.config import load_config
from dropcli.files import WriteError
from dropcli.runs import checkpoints
from dropcli.training.state import new_state

# Big enough that an epoch takes long enough to kill a run in the middle.
RUN_SIZE = {"train": 3000, "test": 500}


def test_checkpoint_holds_everything_to_continue(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(2, **RUN_SIZE), "--run-dir", "runs/r", "-q").exit_code == 0
    payload = checkpoints.load(in_tmp / "runs" / "r" / runs.LAST_CHECKPOINT)
    assert payload["epoch"] == 2 and len(payload["history"]) == 2
    assert payload["config"]["train"]["epochs"] == 2
    assert set(payload["rng"]) == {"torch", "cuda", "data_order", "augment", "workers"}
    summary = json.loads((in_tmp / "runs" / "r" / runs.SUMMARY_FILE).read_text())
    # No validation split: no best epoch, since one chosen by its test score is selected on the test set.
    assert payload["best"] is None and summary["best"] is None and not (in_tmp / "runs" / "r" / runs.BEST_CHECKPOINT).exists()
    assert summary["selection"].startswith("none: no validation split")


def test_a_crash_while_writing_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    config = load_config(None, ["device=cpu"])
    state = new_state(config, torch.device("cpu"))
    path = tmp_path / "last.pt"
    checkpoints.save(path, state, config)

    def crash(source, target):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with torch.no_grad():
        state.model[1].weight.add_(1.0)  # a change this save must not land
    with pytest.raises(WriteError, match=r"cannot write .*last.pt: disk gone"):
        checkpoints.save(path, state, config)
    saved = checkpoints.load(path)["model"]["hidden_1.weight"]
    assert torch.equal(saved + 1.0, state.model[1].weight)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


@pytest.mark.system
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    in_tmp, invoke, small_args, without_times, start_training, wait_for_epochs
):
    epochs = 12
    assert invoke("train", *small_args(epochs, **RUN_SIZE), "--run-dir", in_tmp / "whole", "-q").exit_code == 0
    killed = in_tmp / "killed"
    # Killed at some moment after epoch 3, and before epoch 7 ends whatever the machine's load:
    # there the child waits to be killed.
    process = start_training(small_args(epochs, **RUN_SIZE), killed, hold_after=7)
    wait_for_epochs(killed, 3, process)
    process.kill()
    process.wait()
    assert len(runs.read_metrics(killed)) < epochs, "the run ended before it could be killed"
    assert not (killed / runs.SUMMARY_FILE).exists()
    result = invoke("train", "--resume", killed, "-q")
    assert result.exit_code == 0, result.output
    assert without_times(runs.read_metrics(killed)) == without_times(runs.read_metrics(in_tmp / "whole"))
    assert json.loads((killed / runs.SUMMARY_FILE).read_text())["status"] == "finished"


@pytest.mark.system
def test_sigint_keeps_the_finished_epochs_and_says_how_to_resume(in_tmp, small_args, start_training, wait_for_epochs):
    run_dir = in_tmp / "interrupted"
    process = start_training(small_args(200, **RUN_SIZE), run_dir)
    wait_for_epochs(run_dir, 2, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=PATIENCE_S)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted; the finished epochs are kept in {run_dir}; continue with: dropcli train --resume {run_dir}"
    )
    assert "Traceback" not in stderr
    summary = json.loads((run_dir / runs.SUMMARY_FILE).read_text())
    done = len(runs.read_metrics(run_dir))
    assert summary["status"] == "interrupted" and summary["epochs"] == done
    assert summary["reason"] == "stopped by Ctrl-C (SIGINT)"
    assert checkpoints.load(run_dir / runs.LAST_CHECKPOINT)["epoch"] == done


def test_resume_can_train_longer_but_not_change_the_run(in_tmp, invoke, small_args):
    run_dir = in_tmp / "r"
    assert invoke("train", *small_args(2, **RUN_SIZE), "--run-dir", run_dir, "-q").exit_code == 0
    result = invoke("train", "--resume", run_dir)
    assert result.exit_code == 2 and "has finished all 2 epochs" in result.stderr and "--set train.epochs=12" in result.stderr
    result = invoke("train", "--resume", run_dir, "--set", "train.epochs=1")
    assert result.exit_code == 2 and "has already trained 2 epochs, more than train.epochs 1" in result.stderr
    result = invoke("train", "--resume", run_dir / runs.LAST_CHECKPOINT)
    assert result.exit_code == 2 and f"--resume takes the run's directory, e.g. --resume {run_dir}" in result.stderr
    result = invoke("train", "--resume", in_tmp)  # holds the run, is not one
    assert result.exit_code == 2 and "not a run directory (no config.yaml)" in result.stderr
    result = invoke("train", "--resume", run_dir, "--set", "optim.lr=0.5", "--set", "train.epochs=3")
    assert result.exit_code == 2 and "cannot change optim.lr" in result.stderr
    result = invoke("train", "--resume", run_dir, "--model", "builtin", "--set", "train.epochs=3")
    assert result.exit_code == 2 and "cannot change model.kind" in result.stderr
    assert invoke("train", "--resume", run_dir, "--set", "train.epochs=3", "-q").exit_code == 0
    assert [m["epoch"] for m in runs.read_metrics(run_dir)] == [1, 2, 3]
    result = invoke("train", "--resume", in_tmp / "nowhere")
    assert result.exit_code == 2 and "no such run directory" in result.stderr


def test_divergence_stops_with_one_line_and_keeps_the_run(in_tmp, invoke, small_args):
    run_dir = in_tmp / "diverged"
    result = invoke("train", *small_args(3, **RUN_SIZE), "--set", "optim.lr=1e6", "--run-dir", run_dir)
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "training diverged: the loss became NaN or infinite at epoch 1, step" in lines[0]
    assert "--set optim.lr=100000" in lines[0]
    summary = json.loads((run_dir / runs.SUMMARY_FILE).read_text())
    assert summary["status"] == "diverged" and "epoch 1, step" in summary["reason"]
    assert (run_dir / runs.CONFIG_FILE).exists()
    # Diverged in its first epoch, it is still a diverged run, and says why it has no checkpoint.
    listed = json.loads(invoke("runs", in_tmp, "--status", "diverged", "--json").stdout)
    assert [record["run"] for record in listed] == ["diverged"] and listed[0]["epochs"] == 0
    result = invoke("evaluate", run_dir)
    assert result.exit_code == 2 and "the run diverged before saving any checkpoint (training diverged" in result.stderr


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_evaluate_matches_what_training_reported(in_tmp, invoke, small_args, precision):
    run_dir = in_tmp / "r"
    options = [*small_args(2, **RUN_SIZE), "--set", f"train.precision={precision}"]
    assert invoke("train", *options, "--run-dir", run_dir, "-q").exit_code == 0
    result = invoke("evaluate", run_dir, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["precision"] == precision
    final = runs.read_metrics(run_dir)[-1]
    assert (report["loss"], report["accuracy"]) == (final["test_loss"], final["test_acc"])
    assert report["class_names"][0] == "T-shirt/top" and report["class_names"][9] == "Ankle boot"
    assert sum(map(sum, report["confusion"])) == 500
    assert (report["images"], report["file_images"]) == (500, 10_000)
    correct = sum(report["confusion"][i][i] for i in range(10))
    assert correct / 500 == report["accuracy"]
    text = invoke("evaluate", run_dir / runs.LAST_CHECKPOINT)  # a checkpoint named, in words
    assert text.exit_code == 0 and "confusion matrix" in text.stdout and "Ankle boot" in text.stdout
    assert "scored 500 of the 10,000 images of the test file (set by data.test_limit)" in text.stdout


def test_evaluate_bad_target_is_one_line(in_tmp, invoke):
    (in_tmp / "junk.pt").write_bytes(b"not a checkpoint")
    result = invoke("evaluate", in_tmp / "junk.pt")
    assert result.exit_code == 2 and "not a readable dropcli checkpoint" in result.stderr
    result = invoke("evaluate", in_tmp / "missing.pt")
    assert result.exit_code == 2 and "checkpoint not found" in result.stderr


def test_plot_draws_seeds_of_one_setting_as_one_colour(in_tmp, invoke, small_args):
    from dropcli.cli.display import plots

    for name, seed, kind in (("a", 1, "scratch"), ("b", 2, "scratch"), ("c", 1, "builtin")):
        args = [*small_args(2, **RUN_SIZE), "--run-dir", f"runs/{name}", "-q", "--seed", seed, "--model", kind]
        assert invoke("train", *args).exit_code == 0
    run_dirs = [in_tmp / "runs" / name for name in ("a", "b", "c")]
    groups = plots.run_groups(run_dirs)
    assert groups == [("scratch", run_dirs[:2]), ("builtin", run_dirs[2:])]
    figure = plots.runs_figure(groups)
    assert len({line.get_color() for line in figure.axes[1].get_lines()}) == 2
    captions = [" ".join(text.get_text().split()) for text in figure.texts]  # wrapped to the figure's width
    assert any("3,000 train / 500 test images" in text and "seeds 1-2" in text for text in captions)
    result = invoke("plot", *run_dirs, "-o", in_tmp / "curves.pdf")
    assert result.exit_code == 0
    assert (in_tmp / "curves.pdf").read_bytes()[:4] == b"%PDF"
    result = invoke("plot", in_tmp / "runs" / "a", "-o", in_tmp / "nowhere" / "c.png")
    assert result.exit_code == 2 and "no directory" in result.stderr
    result = invoke("plot", in_tmp / "runs" / "a", "-o", in_tmp / "c.jpg")
    assert result.exit_code == 2 and "'.jpg' is none of .png, .pdf, .svg" in result.stderr
    assert not (in_tmp / "c.jpg").exists()
    result = invoke("plot", in_tmp)
    assert result.exit_code == 2 and "is not a run directory" in result.stderr


def test_compare_plot_writes_a_png_that_decodes_and_is_not_blank(in_tmp, invoke, small_args):
    import matplotlib.image

    result = invoke("compare", "scratch", "builtin", *small_args(2, **RUN_SIZE), "--run-dir", "cmp", "--plot", "-q")
    assert result.exit_code == 0, result.output
    assert "figure saved to cmp/curves.png" in result.stdout.splitlines()  # where it went, even with -q
    pixels = matplotlib.image.imread(in_tmp / "cmp" / "curves.png")  # (height, width, channels)
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 400
    assert pixels[..., :3].std() > 0.05  # lines and text on a white background, not one colour


def test_runs_lists_finished_and_a_run_whose_summary_is_lost(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(2, **RUN_SIZE), "--run-dir", "runs/done", "-q").exit_code == 0
    assert invoke("train", *small_args(2, **RUN_SIZE), "--run-dir", "runs/cut", "-q").exit_code == 0
    (in_tmp / "runs" / "cut" / runs.SUMMARY_FILE).unlink()  # every epoch on disk, the summary gone
    infos = {info.path.name: info for info in runs.list_runs(in_tmp / "runs")}
    assert infos["done"].status == "finished" and infos["cut"].status == "summary missing (2 epochs on disk)"
    assert infos["done"].epochs_done == 2 and infos["done"].final_test_acc is not None
    result = invoke("runs", in_tmp / "runs")
    assert result.exit_code == 0 and "finished" in result.stdout and "summary missing" in result.stdout


def test_evaluate_other_splits(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(1, **RUN_SIZE), "--run-dir", "plain", "-q").exit_code == 0
    result = invoke("evaluate", "plain", "--split", "val")
    assert result.exit_code == 2 and "has no val split" in result.stderr
    result = invoke("evaluate", "plain", "--split", "everything")
    assert result.exit_code == 2 and "--split must be one of test, train, val" in result.stderr
    train = json.loads(invoke("evaluate", "plain", "--split", "train", "--json").stdout)
    assert sum(map(sum, train["confusion"])) == 3000
    assert invoke("train", *small_args(1, **RUN_SIZE), "--set", "data.val_split=0.2", "--run-dir", "val", "-q").exit_code == 0
    val = json.loads(invoke("evaluate", "val", "--split", "val", "--json").stdout)
    final = runs.read_metrics(in_tmp / "val")[-1]
    assert (val["loss"], val["accuracy"]) == (final["val_loss"], final["val_acc"])
    assert sum(map(sum, val["confusion"])) == 600


def test_a_relative_data_dir_is_saved_resolved_and_moved_data_resumes(in_tmp, invoke, fake_data, no_system_data):
    import shutil

    import yaml

    shutil.copytree(fake_data, in_tmp / "data")
    options = ["--device", "cpu", "--set", "data.train_limit=600", "--set", "data.test_limit=200", "-q"]
    assert invoke("train", "--data-dir", "data", *options, "--set", "train.epochs=1", "--run-dir", "r").exit_code == 0
    saved = yaml.safe_load((in_tmp / "r" / runs.CONFIG_FILE).read_text())
    assert saved["data"]["root"] == str(in_tmp / "data")
    (in_tmp / "data").rename(in_tmp / "moved")
    result = invoke("train", "--resume", "r", "--set", "train.epochs=2", "-q")
    assert result.exit_code == 2 and f"could not download Fashion-MNIST into {in_tmp / 'data'}" in result.stderr
    result = invoke("train", "--resume", "r", "--set", "train.epochs=2", "--data-dir", "moved", "-q")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((in_tmp / "r" / runs.CONFIG_FILE).read_text())["data"]["root"] == str(in_tmp / "moved")


@pytest.mark.parametrize(
    "changes, epochs, new_epochs, done, first_changed",
    [
        ({}, 2, 4, 2, None),  # constant: the rate never depends on the total
        ({"schedule": "step", "step_epochs": 1, "step_gamma": 0.5}, 2, 4, 2, None),
        ({"warmup_epochs": 1}, 2, 4, 2, None),  # a warm-up is counted from the start
        ({"schedule": "cosine"}, 2, 4, 2, 2),  # epoch 1 is lr either way; epoch 2 is not
        ({"schedule": "cosine"}, 4, 6, 1, None),  # only epoch 1 trained, and it had lr
        ({"schedule": "onecycle"}, 4, 8, 2, 1),  # the rise is 30% of the total
    ],
)
def test_which_schedules_depend_on_the_total(changes, epochs, new_epochs, done, first_changed):
    from dropcli.config import OptimConfig
    from dropcli.training.schedules import first_changed_epoch

    assert first_changed_epoch(OptimConfig(**changes), epochs, new_epochs, done) == first_changed


def test_resume_refuses_a_longer_schedule_planned_over_the_total(in_tmp, invoke, small_args):
    # The first epochs of a 2-epoch cosine had lr 0.1, 0.05; a 4-epoch one has 0.1, 0.085, ...:
    # continuing would be neither run, so it is refused and nothing is written.
    run_dir = in_tmp / "cos"
    assert (
        invoke("train", *small_args(2, **RUN_SIZE), "--set", "optim.schedule=cosine", "--run-dir", run_dir, "-q").exit_code == 0
    )
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = invoke("train", "--resume", run_dir, "--set", "train.epochs=4")
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = only(result.stderr.strip().splitlines())
    assert "the cosine learning-rate schedule was planned for 2 epochs" in line
    assert f"dropcli train -c {run_dir / 'config.yaml'} --set train.epochs=4" in line
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    # The way out it names works.
    assert (
        invoke("train", "-c", run_dir / runs.CONFIG_FILE, "--set", "train.epochs=4", "--run-dir", in_tmp / "new", "-q").exit_code
        == 0
    )


def test_resume_continues_a_schedule_that_does_not_depend_on_the_total(in_tmp, invoke, small_args, without_times):
    step = ["--set", "optim.schedule=step", "--set", "optim.step_epochs=1", "--set", "optim.step_gamma=0.5"]
    assert invoke("train", *small_args(2, **RUN_SIZE), *step, "--run-dir", in_tmp / "r", "-q").exit_code == 0
    assert invoke("train", "--resume", in_tmp / "r", "--set", "train.epochs=3", "-q").exit_code == 0
    assert invoke("train", *small_args(3, **RUN_SIZE), *step, "--run-dir", in_tmp / "whole", "-q").exit_code == 0
    assert without_times(runs.read_metrics(in_tmp / "r")) == without_times(runs.read_metrics(in_tmp / "whole"))


def test_a_checkpoint_names_its_run_whether_or_not_it_lies_in_checkpoints(tmp_path):
    from dropcli.runs.resume import _run_of

    assert _run_of(tmp_path / "run" / runs.CHECKPOINT_DIR / "last.pt") == tmp_path / "run"
    for folder in ("a", "zz"):  # names either side of "checkpoints": a checkpoint kept elsewhere
        assert _run_of(tmp_path / folder / "last.pt") == tmp_path / folder


def test_swa_refuses_a_new_total_only_where_it_moves_an_averaged_epoch_already_trained(tmp_path):
    from dropcli.config import load_config
    from dropcli.errors import DropcliError
    from dropcli.runs.resume import _check_average

    def moves_nothing(new, done):
        accepted(f"a total of {new.train.epochs} after {done} epochs", _check_average, tmp_path, saved, new, done=done)

    saved = load_config(None, ["train.epochs=8", "train.average=swa"])  # averages from epoch 6's end
    moves_nothing(saved, done=7)  # the same total: nothing moves
    moves_nothing(load_config(None, ["train.epochs=12", "train.average=swa"]), done=4)  # not yet trained
    with pytest.raises(DropcliError, match="averages from epoch"):
        _check_average(tmp_path, saved, load_config(None, ["train.epochs=12", "train.average=swa"]), done=7)
    longer = load_config(None, ["train.epochs=12", "train.average=swa"])  # averages from epoch 9's end
    with pytest.raises(DropcliError, match="averages from epoch 9 of 12; with train.epochs=8 it would start at epoch 6"):
        _check_average(tmp_path, longer, saved, done=7)  # a shorter total moves the start back onto a trained epoch
    with pytest.raises(DropcliError, match="epoch 6 is already trained"):
        _check_average(tmp_path, saved, longer, done=6)  # the start moves off epoch 6, which is trained
    saved = load_config(None, ["train.epochs=400", "train.average=swa"])  # its start is past 256: an int of its own
    moves_nothing(load_config(None, ["train.epochs=400", "train.average=swa"]), done=350)  # the same total again


def test_resume_refuses_a_shorter_schedule_that_changes_the_rates_of_epochs_trained(tmp_path):
    from dropcli.config import load_config
    from dropcli.errors import DropcliError
    from dropcli.runs.resume import _check_schedule

    saved = load_config(None, ["train.epochs=10", "optim.schedule=cosine"])
    with pytest.raises(DropcliError, match="planned for 10 epochs; with train.epochs=6 epoch 2"):
        _check_schedule(tmp_path, saved, load_config(None, ["train.epochs=6", "optim.schedule=cosine"]), done=3)


def test_a_resumed_worker_continues_its_own_random_stream_or_a_fresh_one_for_another_world():
    from types import SimpleNamespace

    from dropcli.runs.checkpoints import _restore
    from dropcli.runtime import derived_seed
    from dropcli.training.state import new_state

    state = new_state(load_config(None, ["seed=0"]), torch.device("cpu"))
    saved = torch.get_rng_state()  # _restore sets the global stream: given back at the end

    def streams(count: int) -> list[dict]:  # a distinct torch stream for each worker the checkpoint had
        return [{"torch": torch.Generator().manual_seed(100 + index).get_state()} for index in range(count)]

    def payload(workers: list[dict]) -> dict:
        rng = {"torch": torch.Generator().manual_seed(7).get_state(), "data_order": state.order_generator.get_state()}
        return {
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "rng": {**rng, "workers": workers},
            "history": [],
            "config": {"seed": 0},
            "epoch": 3,
        }

    _restore(state, payload(streams(2)))  # one process: the checkpoint's own stream
    assert torch.equal(torch.get_rng_state(), torch.Generator().manual_seed(7).get_state())
    state.workers = SimpleNamespace(rank=1, world_size=2)
    _restore(state, payload(streams(2)))  # worker 1 of the same 2: its own stream
    assert torch.equal(torch.get_rng_state(), streams(2)[1]["torch"])
    _restore(state, payload(streams(3)))  # 2 workers now, 3 then: a fresh stream for this worker and epoch
    assert torch.initial_seed() == derived_seed(0, "worker 1 from epoch 3")
    torch.manual_seed(1)
    state.workers = SimpleNamespace(rank=1, world_size=4)
    _restore(state, payload(streams(2)))  # 4 workers now, 2 then: a fresh stream too, not worker 1's of 2
    assert torch.initial_seed() == derived_seed(0, "worker 1 from epoch 3")
    torch.set_rng_state(saved)
