"""Training a tune study's trials: ask Optuna, train the run, tell Optuna how it ended.

Each trial is a normal run directory (trial-NNNN) in the study directory. A listener reports
each epoch's validation accuracy to the trial and stops the run (status "pruned") when the
pruner says so. The study's budget is its total number of trials: trials interrupted by
Ctrl-C, SIGTERM or --timeout do not count, and the next session continues their run directories
first. Several processes may share one study: each takes the next trial from the storage
(with a journal file, the count and the ask happen under a lock on that file, so together they
train exactly the budget); under torchrun each worker does the same on its own device.
"""

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli import files, runs
from dropcli.config import to_dict
from dropcli.errors import DropcliError
from dropcli.experiments import tune_enqueue, tune_objectives, tune_pruning, tune_sampling
from dropcli.experiments.trials import Datasets
from dropcli.experiments.tune import Search, label, open_study, optuna_module, trial_config
from dropcli.experiments.tune_storage import (
    ask,
    beats,
    budget_lock,
    database_errors,
    database_fault,
    fail_stale,
    give_up,
    give_up_lost,
    heartbeats,
    lease,
    open_storage,
)
from dropcli.parallel.workers import Workers
from dropcli.runs import checkpoints
from dropcli.runs.listeners import Listener, OutOfTime, Pruned
from dropcli.runs.loop import train_run
from dropcli.runtime import derived_seed, interrupts_deferred
from dropcli.training.epoch import Diverged


@dataclass(frozen=True)
class Progress:
    """Where the study stands as a trial starts: what the display shows."""

    position: int  # this trial is the position-th of the budget
    total: int
    number: int  # Optuna's trial number
    best_value: float | None
    best_number: int | None
    pruned: int
    remaining_seconds: float | None  # the study's mean trial time times the trials left, over the workers
    objective: str = "accuracy"  # the first objective, which best_value is of


def search(
    search: Search,
    listeners: list[Listener],
    on_trial: Callable[[Progress], None],
    workers: Workers,
    scorer: tune_objectives.Scorer | None = None,
) -> tuple[Any, int, str | None]:
    """Train trials until the study holds search.trials of them (or --timeout). Returns the
    study, the number of trials this process trained, and why it stopped early ("timeout") or None.
    `scorer` scores each finished trial's model on the validation split (needed for ECE objectives)."""
    optuna = optuna_module()
    storage = open_storage(optuna, search.storage, _notice_to(listeners))
    study = open_study(search, _sampler(optuna, search, -1), _pruner(optuna, search), _notice_to(listeners), storage)
    deadline = None if search.timeout is None else time.monotonic() + search.timeout
    datasets, trained = Datasets(workers), 0
    with database_errors(search.storage):
        with budget_lock(storage, search.storage, search.study):
            tune_enqueue.enqueue(study, search.enqueue)
            _enqueue_interrupted(study)
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return study, trained, "timeout"
            trial, existing = _next_trial(optuna, storage, study, search)
            if trial is None:
                if not _running_elsewhere(existing):
                    return study, trained, None
                # A trial running in another process may yet lose its worker and be retried: wait for it.
                time.sleep(storage.get_heartbeat_interval())
                continue
            try:
                # A sampler seeded by the trial's number: the same study draws the same values, and
                # processes that ask at the same moment still draw different ones.
                study.sampler = _sampler(optuna, search, trial.number)
                position = len(counted(existing)) + 1
                on_trial(_progress(existing, position, search.trials, trial.number, workers.world_size, search.objectives[0]))
                # Optuna's Trial names its storage id only privately.
                with heartbeats(storage, trial._trial_id), lease(storage, search.storage, trial):
                    try:
                        stopped = _run_trial(study, trial, search, datasets, listeners, deadline, scorer)
                    except optuna.exceptions.UpdateFinishedTrialError:
                        _notice_to(listeners)(
                            f"trial {trial.number}: another process found its heartbeat late and retries it; this one goes on",
                        )
                        continue
            except KeyboardInterrupt as interrupt:
                # _run_trial tells the study itself; a Ctrl-C before its run began leaves the trial
                # running, to be marked here so that the next process continues it.
                give_up(storage, trial, type(interrupt).__name__)
                raise
            trained += 1
            if stopped:
                return study, trained, "timeout"


def _next_trial(optuna, storage, study, search: Search) -> tuple[Any, list]:
    """Under the study's lock: the trials as they stand and the next trial to train (None once
    the study holds its budget). Trials whose heartbeat went stale are failed and retried first."""
    with budget_lock(storage, search.storage, search.study):
        fail_stale(optuna, storage, study)
        give_up_lost(storage, study, search.storage)
        existing = study.get_trials(deepcopy=False)
        room = search.trials - len(counted(existing))
        if room <= 0:
            return None, existing
        # A trial another process left interrupted (Ctrl-C) is taken up here, while this one runs.
        if _enqueue_interrupted(study):
            existing = study.get_trials(deepcopy=False)
        trial = None
        try:
            with interrupts_deferred():  # a Ctrl-C here lands once the trial is made and known
                trial = ask(study)
                if beats(storage):
                    storage.record_heartbeat(trial._trial_id)  # before the lock goes: never a running trial without one
                    trial.set_user_attr("heartbeat", True)
        except KeyboardInterrupt as interrupt:
            if trial is not None:
                give_up(storage, trial, type(interrupt).__name__)
            raise
        return trial, existing


def _notice_to(listeners: list[Listener]) -> Callable[[str], None]:
    def notice(message: str) -> None:
        for listener in listeners:
            listener.notice(message)

    return notice


def interrupted(trial) -> bool:
    """A trial stopped by Ctrl-C, SIGTERM, --timeout or a fault: continued by a later session, not counted."""
    return trial.state.name == "FAIL" and bool(trial.user_attrs.get("interrupted"))


def counted(trials: list) -> list:
    """The trials that count towards --trials: not those interrupted, nor those another trial
    retries (a worker killed outright: its trial is failed once its heartbeat is stale, and
    retried); a waiting trial (a continuation, a config enqueued) counts once it starts."""
    retried = {t.user_attrs.get("retry_of") for t in trials}
    return [t for t in trials if not interrupted(t) and t.number not in retried and t.state.name != "WAITING"]


def _running_elsewhere(trials: list) -> bool:
    """Whether a trial with a heartbeat is still running (in another process): it is either
    finished there or, if its worker dies, retried here. A trial begun without heartbeats (a
    journal file, an older dropcli) is not waited for: nothing would ever say it is lost."""
    return any(t.state.name == "RUNNING" and t.user_attrs.get("heartbeat") for t in trials)


def _progress(existing: list, position: int, total: int, number: int, workers: int, objective: str = "accuracy") -> Progress:
    # The best so far on the first objective, in its direction.
    sign = 1 if tune_objectives.DIRECTIONS[objective] == "maximize" else -1
    complete = [t for t in existing if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: sign * _first_value(t), default=None)
    # The pace of every trial that ended, in any session: pruned ones count, as the trials left
    # will be pruned as often. Fewer than three say too little to estimate from.
    ended = [t.duration.total_seconds() for t in existing if t.state.name in ("COMPLETE", "PRUNED") and t.duration]
    pace = sum(ended) / len(ended) if len(ended) >= 3 else None
    return Progress(
        position=position,
        total=total,
        number=number,
        best_value=_first_value(best) if best else None,
        best_number=best.number if best else None,
        pruned=sum(1 for t in existing if t.state.name == "PRUNED"),
        remaining_seconds=None if pace is None else pace * (total - position + 1) / workers,
        objective=objective,
    )


def _first_value(trial) -> float:
    """A complete trial's value on the first objective (Optuna's `value` is for one objective only)."""
    values = getattr(trial, "values", None)
    return values[0] if values else trial.value


def _run_trial(
    study, trial, search: Search, datasets: Datasets, listeners: list[Listener], deadline: float | None, scorer=None
) -> bool:
    """Train one trial and tell the study how it ended; True when --timeout stopped it."""
    from optuna.trial import TrialState

    try:
        config, _ = trial_config(search, trial)
    except DropcliError as error:  # values that do not go together (rates for another depth): said once, not retried
        trial.set_user_attr("reason", str(error))
        study.tell(trial, state=TrialState.FAIL)
        raise
    run = trial.user_attrs.get("run") or f"trial-{trial.number:04d}"
    trial.set_user_attr("run", run)
    trial.set_user_attr("config", to_dict(config))
    run_dir = search.directory / run
    reported = tune_objectives.PER_EPOCH[search.objectives[0]] if tune_objectives.prunable(search.objectives) else None
    judge = _Judge(trial, search.pruner, config.train.epochs, deadline, reported)
    if "retry_of" in trial.user_attrs:
        _wait_until_free(run_dir)
    try:
        resume_from = _resumed(study, trial, run_dir)
        if (
            resume_from is not None
            and reported is not None
            and _replayed_prunes(study, trial, run_dir, resume_from["epoch"], config.train.epochs, reported)
        ):
            _summary_says_pruned(run_dir, f"pruned by the {search.pruner} pruner after epoch {resume_from['epoch']}")
            raise Pruned("judged on the epochs it had")
        device, data = datasets.get(config)
        data = dataclasses.replace(data, test=None)  # chosen on validation: the test set is not scored at all
        run_dir.mkdir(parents=True, exist_ok=True)
        result = train_run(config, data, device, run_dir, [*listeners, judge], resume_from=resume_from)
        scores = _scores(scorer, run_dir, device, data, config)
        if scores is not None:
            trial.set_user_attr(tune_objectives.SCORES_ATTR, scores)
        _tell(
            study, trial, run_dir, TrialState.COMPLETE, tune_objectives.values(search.objectives, result.summary["final"], scores)
        )
    except Pruned:
        _tell(study, trial, run_dir, TrialState.PRUNED)
    except Diverged as error:
        _notice_to(listeners)(f"trial {trial.number}: {error}; the search goes on")
        _tell(study, trial, run_dir, TrialState.FAIL, reason="diverged")
    except OutOfTime:
        _tell(study, trial, run_dir, TrialState.FAIL, reason="--timeout", interrupted=True)
        return True
    except (KeyboardInterrupt, DropcliError) as error:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            _tell(study, trial, run_dir, TrialState.FAIL, reason=type(error).__name__, interrupted=True)
        except Exception as fault:
            # Ctrl-C in mid-query leaves the connection unusable: the trial stays running, and once
            # its heartbeat is stale another worker (or the next session) retries it. A trial another
            # worker already took over (its heartbeat was late) needs no telling. Either way the
            # interruption, not the failed tell, is what this process reports (was: exit 0 on Ctrl-C).
            if not isinstance(fault, UpdateFinishedTrialError) and database_fault(fault) is None:
                raise
        raise
    return False


def _wait_until_free(run_dir: Path) -> None:
    """A retried trial whose run still trains in another process (its heartbeat was late, not
    lost) waits for that process to find its trial taken over, at its next epoch, and let go."""
    while files.in_use(run_dir):
        time.sleep(0.5)


def _scores(scorer, run_dir: Path, device, data, config) -> dict[str, float] | None:
    """The finished trial's scores on the validation split, of the model its summary reports:
    the last epoch's, or with early stopping the best one's."""
    if scorer is None:
        return None
    checkpoint = runs.BEST_CHECKPOINT if config.train.early_stopping is not None else runs.LAST_CHECKPOINT
    model = checkpoints.load_model(checkpoints.load(run_dir / checkpoint), device)
    return scorer(model, data.val.X, data.val.y)


def _resumed(study, trial, run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint of an interrupted trial's run (None for a new run). The trial records the
    epoch it continues from, so that the epochs before it are counted once (trained_epochs)."""
    last = run_dir / runs.LAST_CHECKPOINT
    if not last.is_file():
        return None
    checkpoint = checkpoints.load(last)
    trial.set_user_attr("resumed_at", checkpoint["epoch"])
    retry_of = trial.user_attrs.get("retry_of")
    if retry_of is not None and study.trials[retry_of].user_attrs.get("epochs") is None:
        # Its process died before it could record the epochs it trained: they count with this trial.
        trial.set_user_attr("counts_earlier_epochs", True)
    return checkpoint


def _replayed_prunes(study, trial, run_dir: Path, last: int, epochs: int, reported: str = "val_acc") -> bool:
    """Reports the continued run's epochs to the trial one by one, each judged as it was the first
    time (so each rung holds its own epoch's value, as in a trial never interrupted). An epoch the
    interrupted trial had been judged at was not pruned then and is not now; one it saved but was
    not judged at (stopped in between) is judged now. True when the pruner stops the trial."""
    retry_of = trial.user_attrs.get("retry_of")
    judged = set(study.trials[retry_of].intermediate_values) if retry_of is not None else set()
    for record in runs.read_metrics(run_dir, allow_empty=True)[:last]:
        trial.report(record[reported], record["epoch"])
        prune = record["epoch"] < epochs and trial.should_prune()
        if prune and record["epoch"] not in judged:
            return True
    return False


def trained_epochs(trial) -> int:
    """The epochs this trial trained itself: a continued run's earlier epochs belong to the trial
    that was interrupted (unless its process died before it could count them), so that the
    study's compute counts each epoch once."""
    earlier = 0 if trial.user_attrs.get("counts_earlier_epochs") else trial.user_attrs.get("resumed_at") or 0
    return max(0, (trial.user_attrs.get("epochs") or 0) - earlier)


def _summary_says_pruned(run_dir: Path, reason: str) -> None:
    """A run its pruner stops as it is taken up again keeps its epochs; its summary (written when it
    was interrupted) now says pruned, so that `dropcli runs` agrees with the study."""
    path = run_dir / runs.SUMMARY_FILE
    if path.is_file():
        files.write_json(path, {**runs.read_summary(path), "status": Pruned.status, "reason": reason})


def _tell(study, trial, run_dir: Path, state, value: float | None = None, reason: str | None = None, interrupted: bool = False):
    """Record how the trial ended, with the epochs its run trained (the compute it cost)."""
    summary_path = run_dir / runs.SUMMARY_FILE
    with contextlib.suppress(DropcliError):
        if summary_path.is_file():
            trial.set_user_attr("epochs", runs.read_summary(summary_path).get("epochs"))
    if reason is not None:
        trial.set_user_attr("reason", reason)
    if interrupted:
        trial.set_user_attr("interrupted", True)
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as error:
        # The grid sampler calls study.stop() once its grid is done, which only works inside
        # study.optimize(); Optuna has stored the trial by then, and --trials never exceeds the grid.
        if "Study.stop" not in str(error):
            raise


def _enqueue_interrupted(study) -> int:
    """Each interrupted trial not yet taken up again becomes a waiting trial with its values and
    run directory, so the next trials asked for continue it (in this session, or in another
    process still running). Returns how many."""
    trials = study.get_trials(deepcopy=False)
    taken = {t.user_attrs.get("retry_of") for t in trials}
    waiting = [t for t in trials if interrupted(t) and t.number not in taken and "run" in t.user_attrs]
    for trial in waiting:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "run": trial.user_attrs["run"]})
    return len(waiting)


class _Judge(Listener):
    """Reports each epoch's validation accuracy to the trial; stops the run when the pruner says
    so, or when --timeout has passed (the run is then continued by the next session)."""

    def __init__(self, trial, pruner: str, epochs: int, deadline: float | None, reported: str | None = "val_acc"):
        self.trial, self.pruner, self.epochs, self.deadline = trial, pruner, epochs, deadline
        self.reported = reported  # the epoch's metric the pruner judges; None where it cannot prune

    def epoch_finished(self, metrics) -> None:
        if self.reported is not None:
            self.trial.report(getattr(metrics, self.reported), metrics.epoch)
        # Never judged at its last epoch: stopping the trial then would save nothing.
        if self.reported is not None and metrics.epoch < self.epochs and self.trial.should_prune():
            raise Pruned(f"pruned by the {self.pruner} pruner after epoch {metrics.epoch} (val acc {metrics.val_acc:.4f})")
        # The trial's last epoch ends it whatever the time: nothing would be left to continue.
        if self.deadline is not None and time.monotonic() >= self.deadline and metrics.epoch < self.epochs:
            raise OutOfTime(f"stopped by --timeout after epoch {metrics.epoch}; the next tune session continues it")


def _sampler(optuna, search: Search, number: int):
    seed = derived_seed(search.config.seed, f"tune-sampler-{number}") % 2**32  # numpy's seeds are 32-bit
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "grid":
        # One seed for every trial: it shuffles the grid, and trial k takes the k-th point of that order.
        grid = {g.key: [label(v) for v in g.values] for g in search.space}
        return optuna.samplers.GridSampler(grid, seed=search.config.seed)
    startup = tune_sampling.startup_trials(search.pruner, search.pruning, search.config, search.max_epochs, search.trials)
    return tune_sampling.tpe(optuna, seed, startup)


def _pruner(optuna, search: Search):
    return tune_pruning.pruner(optuna, search.pruner, search.pruning, search.config, search.max_epochs)
