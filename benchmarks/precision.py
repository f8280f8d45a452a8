"""The fused engine in fp32 and in bf16 against each precision's own roofline (part of `make bench`).

For each net (the chapter's 256-256, 1024x1024, 2048x2048 and the paper's 3x1024), four rows take
turns epoch by epoch, so a noisy neighbour slows them all alike (each row's median is shown):

- the roofline in fp32 and in bf16: the epoch's matrix products alone at the training's shapes
  (benchmarks/training.py's roofline_epoch), as fast as this machine multiplies these matrices;
- dropcli's fused engine (scratch dropout) with train.precision fp32 and bf16: one epoch of
  training and the test set's evaluation, as a run does.

On CUDA a third precision, TF32 (fp32 storage, TF32 tensor-core products), joins. Prints the
host's CPU flags, the table, the bf16/fp32 speed-up per net, each fused row's share of its own
precision's roofline and the targets of issue 38; writes bench-precision.json. On a host without
native bf16 products the bf16 rows are skipped and it says why (`auto` stays fp32 there).

Run it as `python -m benchmarks.precision`, from the repository's root.
"""

import argparse
import contextlib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.training import dropcli_epoch, roofline_epoch, time_in_turns
from dropcli import data
from dropcli.config import Config, load_config, replace
from dropcli.training.precision import bf16_offer, shown_cpu_flags

NETS = ("256x256", "1024x1024", "2048x2048", "1024x1024x1024")
CHAPTER_NET, BIG_NET = "256x256", "2048x2048"
# Issue 38's targets: the big net's bf16 fused epoch at least this many times faster than its fp32
# one; the chapter net's faster at all; every fused row at least this share of its own roofline.
BIG_NET_SPEEDUP, ROOFLINE_SHARE = 2.0, 0.80
DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}


def with_tf32(epoch: Callable[[], None]) -> Callable[[], None]:
    """`epoch` with CUDA's fp32 products on TF32 tensor cores."""

    def run() -> None:
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            epoch()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous

    return run


def net_rows(config: Config, dataset: data.Splits, precisions: list[str]) -> dict[str, Callable[[], None]]:
    """The rows of one net: the roofline and the fused epoch per precision."""
    device = dataset.train.X.device
    rows = {}
    for name in precisions:
        roofline, _ = roofline_epoch(config, len(dataset.train), len(dataset.test), device, DTYPES[name])
        fused = dropcli_epoch(replace(config, "train.precision", "fp32" if name == "tf32" else name), dataset)
        wrap = with_tf32 if name == "tf32" else (lambda epoch: epoch)
        rows[f"roofline {name}"], rows[f"fused {name}"] = wrap(roofline), wrap(fused)
    return rows


def precisions_on(device: torch.device, console: Console) -> list[str]:
    offer = bf16_offer(device)
    names = ["fp32", "tf32"] if device.type == "cuda" else ["fp32"]
    if offer.bf16:
        return [*names, "bf16"]
    console.print(f"[bold]no bf16 rows[/]: {device} has {offer.what}; train.precision auto stays fp32 here")
    return names


def report(console: Console, net: str, seconds: dict[str, float], precisions: list[str]) -> dict:
    """One net's table (seconds, share of the row's own roofline, speed-up over fp32) and its numbers."""
    table = Table(title=f"{net} net: one epoch (training + test evaluation)", header_style="bold")
    for column in ("row", "s/epoch", "% of own roofline", "× fp32"):
        table.add_column(column, justify="left" if column == "row" else "right")
    numbers: dict = {"seconds": seconds}
    for name in precisions:
        for kind in ("roofline", "fused"):
            value = seconds[f"{kind} {name}"]
            share = seconds[f"roofline {name}"] / value
            speedup = seconds[f"{kind} fp32"] / value
            table.add_row(f"{kind} {name}", f"{value:.3f}", f"{share:.0%}", f"{speedup:.2f}×")
            numbers[f"{kind} {name}"] = {"seconds": value, "of_own_roofline": share, "speedup_over_fp32": speedup}
    console.print(table)
    return numbers


def targets(console: Console, results: dict) -> None:
    """Issue 38's targets, each met or not."""
    lines = []
    for net, numbers in results.items():
        for name in ("fp32", "bf16"):
            if f"fused {name}" in numbers:
                share = numbers[f"fused {name}"]["of_own_roofline"]
                lines.append(
                    (f"{net} fused {name}: {share:.0%} of its roofline (target {ROOFLINE_SHARE:.0%})", share >= ROOFLINE_SHARE)
                )
        if "fused bf16" in numbers:
            speedup = numbers["fused bf16"]["speedup_over_fp32"]
            if net == BIG_NET:
                lines.append(
                    (f"{net} fused bf16: {speedup:.2f}× fp32 fused (target {BIG_NET_SPEEDUP}×)", speedup >= BIG_NET_SPEEDUP)
                )
            if net == CHAPTER_NET:
                lines.append((f"{net} fused bf16: {speedup:.2f}× fp32 fused (target: faster)", speedup > 1))
    for text, met in lines:
        console.print(f"{text}: {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per row, after one warm-up")
    parser.add_argument("--nets", default=",".join(NETS), help="comma-separated model.hidden values")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", default=[], help="config overrides, e.g. data.train_limit=2000 for a smoke run")
    parser.add_argument("--output", default="bench-precision.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=130)
    device = torch.device(args.device)
    config = replace(replace(load_config(args.config, args.set), "device", args.device), "train.engine", "fused")
    header = {
        "machine": platform.processor() or platform.machine(),
        "cpu_flags": shown_cpu_flags(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_before": os.getloadavg(),
    }
    console.print(f"cpu flags: {header['cpu_flags']}; {header['threads']} torch threads; torch {torch.__version__}")
    console.print(f"load average before: {', '.join(f'{load:.1f}' for load in header['load_average_before'])}")
    precisions = precisions_on(device, console)
    dataset = data.load(config.data, config.seed, device)
    results = {}
    for net in args.nets.split(","):
        console.print(f"timing the {net} net on {device}: {args.epochs} epochs a row after a warm-up, rows in turns ...")
        net_config = replace(config, "model.hidden", net)
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            seconds = time_in_turns(net_rows(net_config, dataset, precisions), args.epochs)
        results[net] = report(console, net, seconds, precisions)
    targets(console, results)
    header["load_average_after"] = os.getloadavg()
    console.print(f"load average after: {', '.join(f'{load:.1f}' for load in header['load_average_after'])}")
    Path(args.output).write_text(json.dumps({**header, "nets": results}, indent=2) + "\n")
    console.print(f"Written to {args.output}")


if __name__ == "__main__":
    main()
