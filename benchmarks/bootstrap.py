"""Time of the bootstrap arithmetic behind one row of an uncertainty study (`make bench-bootstrap`).

For one run, one method and one test set of 10,000 images with 1,000 resamples (the study's
sizes), each piece that evaluate computes replicate by replicate: every calibration metric
(bootstrap.replicates, AURC and the equal-mass ECE being the costly ones), the selective
accuracies, the threshold accuracies, and AUROC/AUPR/FPR@95 of one score against an
out-of-distribution set of 10,000. Each is timed with the replicate weights in float32 (the
default) and in float64, and with the replicates scored all at once and CHUNK at a time,
alternating, the fastest of `--repeats` kept: the ratios are the point, on whatever machine.
The probabilities are random (softmax of scaled Gaussian logits): the arithmetic does not
depend on what they are.
"""

import argparse
import time
from functools import partial

import torch

from dropcli.uncertainty import bootstrap, ood


def pieces(n: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    p = torch.softmax(3 * torch.randn(n, 10, generator=generator), dim=1)
    labels = torch.randint(0, 10, (n,), generator=generator)
    part = bootstrap.per_example(p, labels)
    inside, outside = torch.rand(n, generator=generator).double(), torch.rand(n, generator=generator).double() + 0.3

    def measures(w_in, w_out):
        return bootstrap.in_chunks(partial(ood.measures, inside, outside), w_in, w_out)

    return {
        "metrics (replicates)": lambda w, w2: bootstrap.replicates([part], w),
        "selective accuracies": lambda w, w2: bootstrap.selective_accuracies([part], w),
        "threshold accuracies": lambda w, w2: bootstrap.threshold_accuracies([part], w),
        "OOD measures": measures,
    }


def fastest(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--replicates", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = {
        f"float32, {bootstrap.CHUNK} at a time": (torch.float32, bootstrap.CHUNK),
        "float64, all at once": (torch.float64, args.replicates),
    }
    print(
        f"{args.replicates} resamples of {args.n:,} examples, {torch.get_num_threads()} threads; seconds, fastest of {args.repeats}"
    )
    print(f"{'piece':24s}" + "".join(f"{name:>28s}" for name in settings) + "   ratio")
    chunk = bootstrap.CHUNK
    for name, function in pieces(args.n).items():
        times = []
        for dtype, rows in settings.values():
            w_in = bootstrap.weights(args.n, args.replicates, dtype=dtype)
            w_out = bootstrap.weights(args.n, args.replicates, seed=bootstrap.SEED + 1, dtype=dtype)
            bootstrap.CHUNK = rows
            try:
                times.append(fastest(lambda: function(w_in, w_out), args.repeats))  # noqa: B023 (called at once)
            finally:
                bootstrap.CHUNK = chunk
        print(f"{name:24s}" + "".join(f"{t:28.3f}" for t in times) + f"   {times[1] / times[0]:5.2f}x")


if __name__ == "__main__":
    main()
