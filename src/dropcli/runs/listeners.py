"""What a run tells those who follow it: the terminal display (cli/display/report.py) and TensorBoard
(tensorboard.py) are listeners, kept in one list and called from the epoch loop (loop.py)."""

from pathlib import Path

from dropcli.config import Config
from dropcli.training.records import EpochMetrics, RunResult


class StopRun(Exception):
    """Raised by a listener's epoch_finished to end a run after that epoch, which is saved: the
    run keeps its epochs, and its summary.json records `status` and `reason`. A search that
    gives up on a trial (tune's pruner) stops its run so; the loop raises it on to the caller."""

    status = "stopped"

    def __init__(self, reason: str):
        super().__init__(reason)


class Pruned(StopRun):
    """The search (tune's pruner) judged the run not worth finishing: status "pruned"."""

    status = "pruned"


class OutOfTime(StopRun):
    """The search's time ran out mid-run: status "interrupted", and the run can be continued."""

    status = "interrupted"


class Listener:
    """Hears a run as it goes; every method does nothing unless a listener overrides it."""

    def trial_started(self, number: int, total: int, remaining_seconds: float | None) -> None:
        """An experiment's trial `number` of `total` starts; `remaining_seconds`: the estimate for all left."""

    def run_started(self, config: Config, run_dir: Path) -> None:
        pass

    def batch_progress(self, epoch: int, batches_done: int, n_batches: int, loss: float | None) -> None:
        """Called with 0 batches and no loss as an epoch starts, then at every progress report."""

    def epoch_finished(self, metrics: EpochMetrics) -> None:
        pass

    def run_finished(self, result: RunResult) -> None:
        """Called however the run ended: result.summary says how (None after an unforeseen error)."""

    def notice(self, message: str) -> None:
        """Something the user should know that does not stop the run."""
