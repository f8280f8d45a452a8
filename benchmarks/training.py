"""Training speed against the machine's limit and against the loops a user would write (`make bench`).

Each row is one epoch as dropcli runs it, training and then test evaluation, timed after a
warm-up epoch. Rows take turns, epoch by epoch, so a noisy neighbour slows them all alike; the
table shows each row's median. The rows:

- dropcli `scratch` and `builtin`, on both engines (train.engine autograd and fused);
- the plain in-memory loop a user would write: nn.Sequential with nn.Dropout, index_select
  batches, F.cross_entropy, torch.optim.SGD, the test set in eval mode;
- the roofline: the same epoch's matrix products alone, at the training's own shapes (the
  products the fused engine runs), which is as fast as this machine multiplies these matrices;
- the chapter's pipeline (torchvision Splits, ToTensor, 4-worker DataLoaders), once.

Then the same rows (but the chapter's pipeline) for the dropout paper's 784-1024-1024-1024-10
net, the rest of the config unchanged, with the roofline at that net's own shapes.

Prints the table, the fp32 GEMM rate at the training's shapes and at 2048³, the targets, and
the peak RSS of a real `dropcli train` run; writes it all to bench.json.
"""

import argparse
import gzip
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils import benchmark

from dropcli import data
from dropcli.config import Config, load_config, replace
from dropcli.model.mlp import IN_FEATURES, N_CLASSES
from dropcli.training.epoch import EVAL_BATCH_SIZE, evaluate, train_one_epoch
from dropcli.training.state import new_state

ROOFLINE = "roofline: the matrix products alone"
PEER = "plain in-memory loop (nn.Dropout)"
# Targets per row: (share of the roofline, speed-up over the plain loop or None). Only scratch
# rows have one: builtin keeps nn.Dropout's exact masks, so its targets are retired.
CHAPTER_TARGETS = {"dropcli scratch, fused": (0.65, 1.4)}  # issue 14's, for the chapter's net
PAPER_TARGETS = {  # issue 18's, for the 3 x 1024 net
    "dropcli scratch, fused": (0.75, 1.4),
    "dropcli scratch, autograd": (0.55, None),
}
PAPER_HIDDEN = "1024x1024x1024"  # the dropout paper's MNIST net (Srivastava et al. 2014, Table 2)


def dropcli_epoch(config: Config, dataset: data.Splits) -> Callable[[], None]:
    """One dropcli epoch: train_one_epoch, then evaluate on the test set (in the config's precision, as a run does)."""
    state = new_state(config, dataset.train.X.device)

    def epoch() -> None:
        train_one_epoch(state, dataset.train, config, epoch=1)
        evaluate(state.model, dataset.test, precision=config.train.precision)

    return epoch


def peer_model(config: Config) -> nn.Sequential:
    """The config's MLP as a user writes it, with torch's own dropout."""
    torch.manual_seed(config.seed)
    widths = [IN_FEATURES, *config.model.hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for n_in, n_out, p in zip(widths, widths[1:], config.model.dropout):
        layers += [nn.Linear(n_in, n_out), nn.ReLU(), nn.Dropout(p)]
    return nn.Sequential(*layers, nn.Linear(widths[-1], N_CLASSES))


def plain_loop_epoch(config: Config, dataset: data.Splits) -> Callable[[], None]:
    """The peer: the same model, data and epoch written the way the PyTorch tutorials do."""
    model = peer_model(config).to(dataset.train.X.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr)
    train, test, batch_size = dataset.train, dataset.test, config.train.batch_size

    def epoch() -> None:
        model.train()
        order = torch.randperm(len(train), device=train.X.device)
        for start in range(0, len(train), batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(model(train.X.index_select(0, index)), train.y.index_select(0, index))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            (model(test.X).argmax(dim=1) == test.y).sum().item()

    return epoch


def layer_sizes(config: Config) -> list[int]:
    return [IN_FEATURES, *config.model.hidden, N_CLASSES]


def matmul_flops(config: Config, n_examples: int, training: bool) -> int:
    """FLOPs of the matrix products for `n_examples`: the forward pass, and in training also the
    weight gradients and the input gradients of every layer but the first."""
    sizes = layer_sizes(config)
    macs = [n_in * n_out for n_in, n_out in zip(sizes, sizes[1:])]
    return 2 * n_examples * (sum(macs) + (sum(macs) + sum(macs[1:])) * training)


def roofline_epoch(
    config: Config, n_train: int, n_test: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> tuple[Callable[[], None], int]:
    """The epoch's matrix products and nothing else, in `dtype`, and their FLOPs: per training
    batch a forward product and a weight update (W.addmm_) per layer and the input gradient of
    every layer but the first; per evaluation batch the forward products."""
    sizes = layer_sizes(config)
    weights = [(torch.randn(n_out, n_in, device=device) * 0.01).to(dtype) for n_in, n_out in zip(sizes, sizes[1:])]
    biases = [torch.zeros(n_out, device=device, dtype=dtype) for n_out in sizes[1:]]
    batch, last = config.train.batch_size, n_train % config.train.batch_size
    plan = [(batch, True)] * (n_train // batch) + [(last, True)] * (last > 0)
    plan += [(min(EVAL_BATCH_SIZE, n_test - start), False) for start in range(0, n_test, EVAL_BATCH_SIZE)]
    # Each layer's input and output gradient, one set per batch size, made once.
    tensors = {
        size: (
            [torch.rand(size, n, device=device).to(dtype) for n in sizes[:-1]],
            [torch.randn(size, n, device=device).to(dtype) for n in sizes[1:]],
        )
        for size, _ in plan
    }

    def epoch() -> None:
        for size, training in plan:
            inputs, grads = tensors[size]
            for A, W, b in zip(inputs, weights, biases):
                torch.addmm(b, A, W.t())
            if training:
                for index in range(len(weights) - 1, -1, -1):
                    if index > 0:
                        torch.addmm(inputs[index], grads[index], weights[index], beta=0)
                    weights[index].addmm_(grads[index].t(), inputs[index], alpha=-1e-9)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return epoch, matmul_flops(config, n_train, training=True) + matmul_flops(config, n_test, training=False)


def chapter_epoch_seconds(config: Config, source: Path) -> float:
    """One epoch the chapter's way: PIL images through ToTensor, batched by DataLoaders, then
    the test set through one."""
    from torchvision import datasets, transforms

    with tempfile.TemporaryDirectory() as root:
        raw = Path(root) / "Splits" / "raw"
        raw.mkdir(parents=True)
        for name, path in data.find_files(source).items():  # torchvision reads uncompressed files
            (raw / name).write_bytes(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
        # The chapter asks for 4 workers; on a 2-core machine torch warns about that. Keep the
        # chapter's number, without the warning.
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        loaders = [
            torch.utils.data.DataLoader(
                datasets.Splits(root, train=train, transform=transforms.ToTensor()),
                batch_size=config.train.batch_size,
                shuffle=train,
                num_workers=4,
            )
            for train in (True, False)
        ]
        model = peer_model(config)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr)
        started = time.perf_counter()
        model.train()
        for X, y in loaders[0]:
            loss = F.cross_entropy(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            sum((model(X).argmax(dim=1) == y).sum().item() for X, y in loaders[1])
        return time.perf_counter() - started


def gemm_rate_2048(device: torch.device) -> float:
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    timer = benchmark.Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
    return 2 * 2048**3 / timer.blocked_autorange(min_run_time=1.0).median


def peak_rss_of_a_training_run(config_path: str) -> float:
    """Peak resident memory (MiB) of `dropcli train` for one epoch, run as a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "dropcli",
            "train",
            "-c",
            config_path,
            "--device",
            "cpu",
            "-q",
            "--set",
            "train.epochs=1",
            "--run-dir",
            f"{tmp}/run",
        ]
        subprocess.run(command, check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux reports KiB


def time_in_turns(rows: dict[str, Callable[[], None]], epochs: int) -> dict[str, float]:
    """Median seconds per epoch of each row, after a warm-up epoch each, the rows taking turns."""
    for epoch in rows.values():
        epoch()
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(epochs):
        for name, epoch in rows.items():
            started = time.perf_counter()
            epoch()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def device_rows(config: Config, device: torch.device, epochs: int) -> tuple[dict[str, float], int, data.Splits]:
    """Seconds per epoch of every row on `device`, the roofline's FLOPs, and the data."""
    dataset = data.load(config.data, config.seed, device)
    roofline, flops = roofline_epoch(config, len(dataset.train), len(dataset.test), device)
    rows = {ROOFLINE: roofline}
    for kind in ("scratch", "builtin"):
        for engine in ("autograd", "fused"):
            variant = replace(replace(config, "model.kind", kind), "train.engine", engine)
            rows[f"dropcli {kind}, {engine}"] = dropcli_epoch(variant, dataset)
    rows[PEER] = plain_loop_epoch(config, dataset)
    return time_in_turns(rows, epochs), flops, dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per row, after one warm-up")
    parser.add_argument("--no-chapter", action="store_true", help="skip the chapter's DataLoader pipeline (slow)")
    parser.add_argument("--no-paper", action="store_true", help="skip the rows of the paper's 3 x 1024 net (slow)")
    parser.add_argument("--output", default="bench.json")
    args = parser.parse_args()
    config = replace(load_config(args.config), "device", "cpu")
    console = Console(width=130)
    threads = torch.get_num_threads()
    results: dict = {"config": args.config, "torch": torch.__version__, "threads": threads, "devices": {}}
    results["peak_rss_mib"] = peak_rss_of_a_training_run(args.config)  # first: DataLoader workers are children too

    devices = [torch.device("cpu")] + [torch.device("cuda")] * torch.cuda.is_available()
    for device in devices:
        console.print(f"timing on {device.type}: {args.epochs} epochs a row, after a warm-up ...")
        seconds, flops, dataset = device_rows(config, device, args.epochs)
        if device.type == "cpu" and not args.no_chapter:
            console.print("timing the chapter's pipeline (one epoch, 4 DataLoader workers) ...")
            seconds["chapter pipeline (DataLoader)"] = chapter_epoch_seconds(config, dataset.source)
        name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {threads} threads"
        rate_2048 = gemm_rate_2048(device)
        results["devices"][device.type] = report(console, name, seconds, flops, rate_2048, len(dataset.train), CHAPTER_TARGETS)
        if not args.no_paper:
            paper = replace(config, "model.hidden", PAPER_HIDDEN)
            console.print(f"timing the {PAPER_HIDDEN} net on {device.type} ...")
            seconds, flops, dataset = device_rows(paper, device, args.epochs)
            results["devices"][f"{device.type}, {PAPER_HIDDEN}"] = report(
                console, f"{name}, {PAPER_HIDDEN} net", seconds, flops, rate_2048, len(dataset.train), PAPER_TARGETS
            )
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"Peak RSS of a `dropcli train` run: {results['peak_rss_mib']:.0f} MiB. Written to {args.output}")


def report(
    console: Console,
    device_name: str,
    seconds: dict[str, float],
    flops: int,
    rate_2048: float,
    n_train: int,
    targets: dict[str, tuple[float, float | None]],
) -> dict:
    """Print one device's table and each dropcli row's targets, met or not; return them for bench.json."""
    roofline, peer = seconds[ROOFLINE], seconds[PEER]
    table = Table(title=f"one epoch (training + test evaluation), {device_name}", header_style="bold")
    for column in ("row", "s/epoch", "% of roofline", "peer / this", "samples/s"):
        table.add_column(column, justify="left" if column == "row" else "right")
    rows = []
    for name, value in seconds.items():
        row = {"row": name, "seconds_per_epoch": value, "of_roofline": roofline / value, "peer_over_this": peer / value}
        rows.append(row)
        table.add_row(
            name, f"{value:.3f}", f"{row['of_roofline']:.0%}", f"{row['peer_over_this']:.2f}×", f"{n_train / value:,.0f}"
        )
    console.print(table)
    rate = flops / roofline
    console.print(
        f"fp32 GEMM at the training's shapes: {rate / 1e9:.0f} GFLOP/s ({flops / 1e9:.1f} GFLOP an epoch); "
        f"at 2048³: {rate_2048 / 1e9:.0f} GFLOP/s."
    )
    for name, (least_share, least_speedup) in targets.items():
        share, speedup = roofline / seconds[name], peer / seconds[name]
        met = share >= least_share and (least_speedup is None or speedup >= least_speedup)
        wanted = f" (target {least_speedup}×)" if least_speedup is not None else ""
        console.print(
            f"{name}: {share:.0%} of the roofline (target {least_share:.0%}), {speedup:.2f}× the plain loop"
            f"{wanted}: {'met' if met else 'NOT met'}"
        )
    return {
        "rows": rows,
        "gemm_gflops_training_shapes": rate / 1e9,
        "gemm_gflops_2048": rate_2048 / 1e9,
        "roofline_gflop_per_epoch": flops / 1e9,
    }


if __name__ == "__main__":
    main()
