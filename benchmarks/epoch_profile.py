"""Where a training epoch's time goes (`make profile`): torch.profiler over one epoch.

Prints the operators that took the most time, after a warm-up epoch, and the share of the
epoch spent in the GEMMs with the rate they ran at.
"""

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.training import matmul_flops
from dropcli import data
from dropcli.config import load_config, replace
from dropcli.training.epoch import train_one_epoch
from dropcli.training.state import new_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--engine", default="autograd", help="train.engine: autograd or fused")
    args = parser.parse_args()
    config = replace(replace(load_config(args.config), "device", "cpu"), "train.engine", args.engine)
    dataset = data.load(config.data, config.seed, torch.device("cpu"))
    state = new_state(config, torch.device("cpu"))

    def train() -> None:
        train_one_epoch(state, dataset.train, config, epoch=1)

    train()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        train()
    events = profiler.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    total = sum(event.self_cpu_time_total for event in events)
    gemm = sum(event.self_cpu_time_total for event in events if event.key in ("aten::mm", "aten::addmm", "aten::addmm_"))
    flops = matmul_flops(config, len(dataset.train), training=True)
    print(f"GEMMs: {gemm / total:.0%} of the epoch's operator time, at {flops / (gemm / 1e6) / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
