"""Forward+backward time and saved bytes of each dropout implementation (`make bench-dropout`).

Prints one table: the median time of repeated fwd+bwd runs (torch.utils.benchmark), its ratio
to F.dropout measured in the same run, and the bytes autograd keeps per element for backward.
"""

import argparse

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch.utils import benchmark

from dropcli.dropout import dropout, saved_tensor_bytes

P = 0.5


def chapter_dropout(X, p):
    """d2l's from-scratch version, as printed in the chapter."""
    mask = (torch.rand(X.shape) > p).float()
    return mask * X / (1.0 - p)


IMPLEMENTATIONS = {
    "dropcli bool": lambda x: dropout(x, P, mask_mode="bool"),
    "dropcli bits": lambda x: dropout(x, P, mask_mode="bits"),
    "dropcli bernoulli": lambda x: dropout(x, P, mask_mode="bernoulli"),
    "F.dropout": lambda x: F.dropout(x, P),
    "chapter (d2l)": lambda x: chapter_dropout(x, P),
}


def forward_backward_seconds(fn, x: torch.Tensor, threads: int, min_run_time: float) -> float:
    grad = torch.randn_like(x)
    timer = benchmark.Timer(
        "torch.autograd.grad(fn(x), x, grad)",
        globals={"torch": torch, "fn": fn, "x": x, "grad": grad},
        num_threads=threads,  # Timer runs on one thread unless told otherwise
    )
    return timer.blocked_autorange(min_run_time=min_run_time).median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timing per cell")
    args = parser.parse_args()

    settings = [("cpu", threads) for threads in (1, 2)]
    if torch.cuda.is_available():
        settings.append(("cuda", torch.get_num_threads()))
    table = Table(title=f"dropout fwd+bwd, p={P}, fp32 (median of repeated runs)", header_style="bold")
    for column in ("device", "threads", "shape", "implementation", "time (µs)", "× F.dropout", "saved B/elem"):
        table.add_column(column, justify="left" if column == "implementation" else "right")
    for device, threads in settings:
        for shape in ((256, 256), (4096, 4096)):
            x = torch.randn(shape, device=device, requires_grad=True)
            # The chapter's mask is made on the CPU, so it cannot run on a GPU tensor.
            names = [n for n in IMPLEMENTATIONS if not (device == "cuda" and n == "chapter (d2l)")]
            times = {name: forward_backward_seconds(IMPLEMENTATIONS[name], x, threads, args.min_run_time) for name in names}
            for name in names:
                saved = saved_tensor_bytes(IMPLEMENTATIONS[name], x) / x.numel()
                table.add_row(
                    device, str(threads), "×".join(map(str, shape)), name, f"{times[name] * 1e6:,.0f}",
                    f"{times[name] / times['F.dropout']:.2f}", f"{saved:.3f}",
                )  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
