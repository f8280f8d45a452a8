"""Training speed against the chapter's pipeline and the machine's GEMM limit (`make bench`).

In one process: seconds per epoch of dropcli `scratch` and `builtin` (after a warm-up epoch);
the same model and optimizer fed by the chapter's pipeline (torchvision FashionMNIST with
ToTensor and a 4-worker DataLoader); the fp32 GEMM rate measured here and the model's FLOPs,
which give the roofline time; and the peak RSS of a real `dropcli train` run. Prints a table
and writes bench.json.
"""

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch.utils import benchmark

from dropcli import data
from dropcli.config import Config, load_config, replace
from dropcli.models import build_model
from dropcli.train import compile_model, new_state, train_one_epoch


def dropcli_epoch_seconds(config: Config, dataset: data.FashionMNIST, epochs: int) -> float | None:
    """Seconds per training epoch after a warm-up epoch; None where torch.compile cannot run."""
    state = new_state(config, dataset.train.X.device)
    model = state.model
    if config.train.compile:
        model, problem = compile_model(state.model, dataset.train.X[:2])
        if problem:
            print(problem)
            return None
    for timed in (False, True):  # the warm-up epoch also pays for any compilation
        started = time.perf_counter()
        for _ in range(epochs if timed else 1):
            train_one_epoch(model, state.optimizer, dataset.train, config.train.batch_size, state.order_generator,
                            precision=config.train.precision)  # fmt: skip
    return (time.perf_counter() - started) / epochs


def reference_epoch_seconds(config: Config, source: Path) -> float:
    """One epoch the chapter's way: PIL images through ToTensor, batched by a DataLoader."""
    from torchvision import datasets, transforms

    with tempfile.TemporaryDirectory() as root:
        raw = Path(root) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for name, path in data.find_files(source).items():  # torchvision reads uncompressed files
            (raw / name).write_bytes(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
        train_set = datasets.FashionMNIST(root, train=True, transform=transforms.ToTensor(), download=False)
        # The chapter asks for 4 workers; on this 2-core machine torch warns about that. Keep the
        # chapter's number, without the warning.
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        loader = torch.utils.data.DataLoader(train_set, batch_size=config.train.batch_size, shuffle=True, num_workers=4)
        torch.manual_seed(config.seed)
        model = build_model(config.model)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr)
        model.train()
        started = time.perf_counter()
        for X, y in loader:
            loss = F.cross_entropy(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - started


def gemm_flops_per_second(size: int = 2048) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    timer = benchmark.Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
    return 2 * size**3 / timer.blocked_autorange(min_run_time=1.0).median


def training_flops_per_epoch(config: Config, n_examples: int) -> int:
    """Forward, weight gradients, and input gradients of every layer but the first."""
    sizes = [28 * 28, config.model.hidden_1, config.model.hidden_2, 10]
    macs = [n_in * n_out for n_in, n_out in zip(sizes, sizes[1:])]
    return 2 * n_examples * (2 * sum(macs) + sum(macs[1:]))


def peak_rss_of_a_training_run(config_path: str) -> float:
    """Peak resident memory (MiB) of `dropcli train` for one epoch, run as a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "dropcli", "train", "-c", config_path, "--device", "cpu", "-q",
                   "--set", "train.epochs=1", "--run-dir", f"{tmp}/run"]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per model, after one warm-up")
    parser.add_argument("--output", default="bench.json")
    args = parser.parse_args()
    config = replace(load_config(args.config), "device", "cpu")
    console = Console(width=120)

    results: dict = {"config": args.config, "torch": torch.__version__, "threads": torch.get_num_threads()}
    results["peak_rss_mib"] = peak_rss_of_a_training_run(args.config)  # first: the DataLoader's workers are children too
    cpu = torch.device("cpu")
    dataset = data.load(config.data, config.seed, cpu)
    results["gemm_gflops"] = gemm_flops_per_second() / 1e9
    flops = training_flops_per_epoch(config, len(dataset.train))
    results["train_gflop_per_epoch"] = flops / 1e9
    roofline = flops / (results["gemm_gflops"] * 1e9)
    variants = {
        "dropcli scratch": config,
        "dropcli builtin": replace(config, "model.kind", "builtin"),
        "dropcli scratch, bf16 autocast": replace(config, "train.precision", "bf16"),
        "dropcli scratch, torch.compile": replace(config, "train.compile", True),
    }
    rows = []
    for name, variant in variants.items():
        seconds = dropcli_epoch_seconds(variant, dataset, args.epochs)
        if seconds is not None:
            rows.append((name, "cpu", seconds))
    console.print("timing the chapter's pipeline (one epoch, 4 DataLoader workers) ...")
    rows.append(("chapter pipeline (scratch model)", "cpu", reference_epoch_seconds(config, dataset.source)))
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        gpu_dataset = data.load(config.data, config.seed, gpu)
        for kind in ("scratch", "builtin"):
            seconds = dropcli_epoch_seconds(replace(config, "model.kind", kind), gpu_dataset, args.epochs)
            rows.append((f"dropcli {kind}", f"cuda ({torch.cuda.get_device_name()})", seconds))

    cpu_seconds = {name: seconds for name, device, seconds in rows if device == "cpu"}
    reference = cpu_seconds["chapter pipeline (scratch model)"]
    table = Table(title=f"training epoch, {args.config}, {results['threads']} CPU threads", header_style="bold")
    for column in ("pipeline", "device", "s/epoch", "samples/s", "chapter / this", "roofline / this"):
        table.add_column(column, justify="left" if column in ("pipeline", "device") else "right")
    results["rows"] = []
    for name, device, seconds in rows:
        speedup, fraction = reference / seconds, roofline / seconds
        table.add_row(name, device, f"{seconds:.3f}", f"{len(dataset.train) / seconds:,.0f}", f"{speedup:.1f}×",
                      f"{fraction:.0%}" if device == "cpu" else "")  # fmt: skip
        results["rows"].append({"pipeline": name, "device": device, "seconds_per_epoch": seconds,
                                "samples_per_s": len(dataset.train) / seconds, "chapter_over_this": speedup})  # fmt: skip
    console.print(table)
    scratch, builtin = cpu_seconds["dropcli scratch"], cpu_seconds["dropcli builtin"]
    console.print(
        f"fp32 GEMM (2048³) here: {results['gemm_gflops']:.0f} GFLOP/s; training is {results['train_gflop_per_epoch']:.1f} "
        f"GFLOP/epoch, so the roofline is {roofline:.3f} s/epoch. scratch / builtin time: {scratch / builtin:.2f}. "
        f"Peak RSS of a `dropcli train` run: {results['peak_rss_mib']:.0f} MiB."
    )
    results.update(roofline_seconds=roofline, scratch_over_builtin=scratch / builtin)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
