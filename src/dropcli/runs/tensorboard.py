"""TensorBoard event files beside a run's own files (metrics.tensorboard / --tensorboard).

An optional extra: `pip install 'dropcli[tensorboard]'`. metrics.jsonl stays the record; this
writes the same numbers where `tensorboard --logdir runs` shows them: per-epoch metrics and the
learning rate, the training loss at each progress report, and the run's hyperparameters with its
final metrics (the hparams plugin), so runs and sweep trials can be compared there.
"""

from pathlib import Path
from typing import Any

from dropcli.config import Config, flatten, to_dict
from dropcli.config.architecture import short
from dropcli.errors import DropcliError
from dropcli.runs.listeners import Listener
from dropcli.training.records import EpochMetrics, RunResult

INSTALL = "pip install 'dropcli[tensorboard]' (or pip install tensorboard)"


class Board(Listener):
    """Writes what the loop tells it as TensorBoard events in the run directory."""

    def __init__(self, run_dir: Path, config: Config):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise DropcliError(f"metrics.tensorboard needs the tensorboard package: {INSTALL}") from None
        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.config = config

    def batch_progress(self, epoch: int, batches_done: int, n_batches: int, loss: float | None) -> None:
        if loss is not None:
            self.writer.add_scalar("batch/train_loss", loss, (epoch - 1) * n_batches + batches_done)

    def epoch_finished(self, metrics: EpochMetrics) -> None:
        for split in ("train", "test", "val"):
            for name in ("loss", "acc"):
                value = getattr(metrics, f"{split}_{name}")
                if value is not None:
                    self.writer.add_scalar(f"{split}/{name}", value, metrics.epoch)
        if metrics.lr is not None:
            self.writer.add_scalar("optim/lr", metrics.lr, metrics.epoch)
        self.writer.flush()

    def run_finished(self, result: RunResult) -> None:
        """A finished run's hyperparameters, with the reported epoch's metrics and the gap, for
        the hparams plugin; then the files are closed, however the run ended."""
        summary = result.summary or {}
        if summary.get("status") == "finished":
            final = summary.get("final") or {}
            results = {
                f"hparam/{name}": final[name]
                for name in ("test_acc", "test_loss", "val_acc", "train_loss")
                if final.get(name) is not None
            }
            if "train_eval" in summary:
                results["hparam/gap"] = summary["train_eval"]["acc"] - final.get("test_acc", 0.0)
            self.writer.add_hparams(_hparams(self.config), results, run_name=".")
        self.writer.close()


def check_available() -> None:
    """Fail before any training if metrics.tensorboard cannot be honoured."""
    import importlib

    try:
        importlib.import_module("tensorboard")
    except ImportError:
        raise DropcliError(f"metrics.tensorboard needs the tensorboard package: {INSTALL}") from None


def _hparams(config: Config) -> dict[str, Any]:
    """The config as TensorBoard takes hyperparameters: numbers, strings and booleans only."""
    return {
        key: value if isinstance(value, (int, float, str, bool)) else short(value)
        for key, value in flatten(to_dict(config)).items()
    }
