"""Forward+backward time and saved bytes of each dropout implementation (`make bench-dropout`).

Prints two tables: the median time of repeated fwd+bwd runs (torch.utils.benchmark), its ratio
to F.dropout measured in the same run, and the bytes autograd keeps per element for backward;
then the time to draw one mask alone, each mask mode against torch's own draws.
"""

import argparse

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch.utils import benchmark

from dropcli.model.dropout import draw_keep, dropout, saved_tensor_bytes

P = 0.5


def chapter_dropout(X, p):
    """d2l's from-scratch version, as printed in the chapter."""
    mask = (torch.rand(X.shape) > p).float()
    return mask * X / (1.0 - p)


IMPLEMENTATIONS = {
    "dropcli bool": lambda x: dropout(x, P, mask_mode="bool"),
    "dropcli bits": lambda x: dropout(x, P, mask_mode="bits"),
    "dropcli bernoulli": lambda x: dropout(x, P, mask_mode="bernoulli"),
    "dropcli int16": lambda x: dropout(x, P, mask_mode="int16"),
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
                    device,
                    str(threads),
                    "×".join(map(str, shape)),
                    name,
                    f"{times[name] * 1e6:,.0f}",
                    f"{times[name] / times['F.dropout']:.2f}",
                    f"{saved:.3f}",
                )
    console = Console(width=120)
    console.print(table)
    console.print(draw_table(args.min_run_time))


# One (256, 256) mask, p = 0.5: each mode's draw, and torch's draws that the modes replace,
# with the random bits each spends on an element (torch's CPU generator makes 32 at a time).
DRAWS = {
    "torch.rand(shape) > p (the chapter's)": ("torch.rand(x.shape) > 0.5", 32),
    "bool-tensor.bernoulli_(1 - p) (as F.dropout)": ("torch.empty_like(x, dtype=torch.bool).bernoulli_(0.5)", 64),
    "draw_keep, mask_mode=bool": ("draw_keep(x, 0.5, 'bool')", 32),
    "draw_keep, mask_mode=bernoulli": ("draw_keep(x, 0.5, 'bernoulli')", 64),
    "draw_keep, mask_mode=int16": ("draw_keep(x, 0.5, 'int16')", 16),
}


def draw_table(min_run_time: float) -> Table:
    x = torch.empty(256, 256)
    table = Table(title="one 256×256 mask, p=0.5, cpu (median of repeated runs)", header_style="bold")
    for column in ("draw", "1 thread (µs)", "2 threads (µs)", "random bits / element"):
        table.add_column(column, justify="left" if column == "draw" else "right")
    for name, (statement, bits) in DRAWS.items():
        times = [
            benchmark.Timer(statement, globals={"torch": torch, "x": x, "draw_keep": draw_keep}, num_threads=threads)
            .blocked_autorange(min_run_time=min_run_time)
            .median
            for threads in (1, 2)
        ]
        table.add_row(name, *(f"{t * 1e6:,.0f}" for t in times), str(bits))
    return table


if __name__ == "__main__":
    main()
