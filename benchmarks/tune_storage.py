"""tune on a PostgreSQL study: trials per hour with one and two worker processes, and what the
database costs per trial against a journal file (`make bench-tune-storage`).

Two measurements, on a slice of the real Fashion-MNIST:

- end to end: `dropcli tune` with 1 worker, then 2 workers (the same command twice), on one
  PostgreSQL study of N trials (started from the system's binaries in a temporary directory,
  as the tests do); trials per hour is N over the wall time from the first start to the last exit;
- the storage alone: the calls one trial makes to its storage (the lock, the count, ask, the
  user attributes, a report per epoch, the heartbeat, tell), timed in one process against a
  journal file and against PostgreSQL, alternately, R rounds each; the difference is the
  database's overhead per trial.

On a 2-core machine two workers can at best double the rate, and only where nothing else runs:
other load shares the cores, so the ratio says more about the machine than about dropcli.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # the tests' PostgreSQL server

SPACE = ["--space", "optim.lr=0.01:1:log", "--space", "model.dropout=0:0.8"]


def run_workers(count: int, url: str, args, scratch: Path) -> float:
    command = [sys.executable, "-m", "dropcli", "tune", "-c", "smoke", "--device", "cpu", *SPACE, "--trials", str(args.trials)]
    command += [
        "--set",
        "data.val_split=0.2",
        "--set",
        f"data.train_limit={args.train_limit}",
        "--set",
        f"train.epochs={args.epochs}",
    ]
    command += ["--pruner", "none", "--sampler", "random", "--storage", url, "--run-dir", str(scratch / f"w{count}"), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // count))}
    started = time.perf_counter()
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(count)]
    if any(process.wait() != 0 for process in processes):
        raise SystemExit("a worker failed")
    return time.perf_counter() - started


def opened(storage_url: str):
    import optuna

    from dropcli.experiments import tune_storage

    storage = tune_storage.open_storage(optuna, storage_url)
    return storage, optuna.create_study(storage=storage, study_name="s", direction="maximize", load_if_exists=True)


def one_trial(storage_url: str, storage, study, epochs: int) -> float:
    """The storage calls of one trial, as tune_search makes them (the storage opened once per session, as there); seconds."""
    import optuna

    from dropcli.experiments import tune_storage

    study_name = "s"
    started = time.perf_counter()
    with tune_storage.budget_lock(storage, storage_url, study_name):
        tune_storage.fail_stale(optuna, storage, study)
        study.get_trials(deepcopy=False)
        trial = tune_storage.ask(study)
        if tune_storage.beats(storage):
            storage.record_heartbeat(trial._trial_id)
    trial.suggest_float("lr", 0.01, 1, log=True)
    for key in ("heartbeat", "run", "config"):
        trial.set_user_attr(key, key)
    for epoch in range(1, epochs + 1):
        trial.report(0.5, epoch)
        trial.should_prune()
        if tune_storage.beats(storage):
            storage.record_heartbeat(trial._trial_id)
    trial.set_user_attr("epochs", epochs)
    study.tell(trial, 0.5)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=30, help="storage-only trials per storage")
    args = parser.parse_args()
    from postgres_server import running_server

    with running_server() as server, tempfile.TemporaryDirectory() as scratch_text:
        scratch = Path(scratch_text)
        for count in (1, 2):
            seconds = run_workers(count, server.url(f"workers{count}"), args, scratch)
            print(
                f"postgresql, {count} worker(s): {args.trials} trials in {seconds:.1f} s = {args.trials * 3600 / seconds:.0f} trials/hour"
            )
        journal, database = str(scratch / "storage.journal"), server.url("storage")
        times: dict[str, list[float]] = {"journal": [], "postgresql": []}
        sessions = {"journal": (journal, *opened(journal)), "postgresql": (database, *opened(database))}
        for _ in range(args.rounds):  # alternately, so that a change in the machine's load falls on both
            for name, session in sessions.items():
                times[name].append(one_trial(*session, args.epochs))
        for name, seconds in times.items():
            seconds.sort()
            print(
                f"storage only, {name}: median {1000 * seconds[len(seconds) // 2]:.1f} ms per trial ({args.rounds} trials, {args.epochs} epochs each)"
            )
        overhead = times["postgresql"][args.rounds // 2] - times["journal"][args.rounds // 2]
        print(f"the database's overhead per trial: {1000 * overhead:+.1f} ms (median against median)")


if __name__ == "__main__":
    main()
