"""Sweep throughput: one process against torchrun workers (`make bench-sweep`).

Times the same 8-trial sweep (configs/smoke.yaml, a 2×4 grid) run by one process and by
`torchrun --standalone --nproc-per-node K` for K = 1 up to the core count, each into a fresh
directory, and prints trials per minute and the speed-up over one process. Wall time includes
start-up and data loading, as a user sees it.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from rich.console import Console
from rich.table import Table

GRID = ["--grid", "model.dropout_1=0,0.5", "--grid", "optim.lr=0.025,0.05,0.1,0.2"]
TRIALS = 8


def timed(command: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=os.path.abspath("configs/smoke.yaml"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to dropcli sweep")
    args = parser.parse_args()
    overrides = [part for value in args.set for part in ("--set", value)]
    sweep = ["-m", "dropcli", "sweep", "-c", args.config, "--device", args.device, *GRID, *overrides, "-q"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        seconds = timed([sys.executable, *sweep, "--run-dir", "one"], scratch)
        rows.append(("one process", seconds))
        for workers in range(1, args.max_workers + 1):
            torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(workers)]
            rows.append(
                (
                    f"torchrun, {workers} worker{'s' * (workers > 1)}",
                    timed([*torchrun, *sweep, "--run-dir", f"k{workers}"], scratch),
                )
            )
    title = f"{TRIALS}-trial sweep ({os.path.basename(args.config)} {' '.join(args.set)}), {os.cpu_count()} cores, {args.device}"
    table = Table(title=title, header_style="bold")
    for column in ("launch", "seconds", "trials/minute", "speed-up"):
        table.add_column(column, justify="right" if column != "launch" else "left")
    for name, seconds in rows:
        table.add_row(name, f"{seconds:.1f}", f"{TRIALS * 60 / seconds:.1f}", f"{rows[0][1] / seconds:.2f}×")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
