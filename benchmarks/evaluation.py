"""Time of `evaluate --mc-samples 50 --shift rotate=0:180:15` against plain forward passes (`make bench-eval`).

The chapter's net (scratch, 784-256-256-10, dropout 0.5/0.5) is trained for one epoch in a
temporary run, so the timed code is dropcli's own: study.run loads the checkpoint and the test
set, makes each rotated copy of the 10,000 test images on the device, and scores the
deterministic net and MC dropout (K passes batched) with every calibration metric. The roofline
is the same number of plain forward passes (13 angles x K passes over the 10,000 images, eval
mode, no rotation, no softmax, no metrics): what evaluation cannot beat. Target: within 1.5x.
Each is timed `--repeats` times, alternating, and the fastest kept.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from dropcli.config import load_config
from dropcli.model.mlp import build_model
from dropcli.uncertainty import shifts, study

TARGET = 1.5


def plain_forwards(X: torch.Tensor, passes: int) -> float:
    """Seconds for `passes` eval-mode forward passes of the chapter's net over X."""
    model = build_model(load_config().model).to(X.device).eval()
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(passes):
            model(X)
    _sync(X.device)
    return time.perf_counter() - start


def evaluate(run_dir: Path, samples: int, angles: str | None, device: str) -> tuple[float, int]:
    """Seconds for dropcli's study, and the test images it scored (no angles, no samples: the
    fixed cost of loading the checkpoint and data and one deterministic pass)."""
    request = study.Request([run_dir], mc_samples=samples, shifts=shifts.parse_all([f"rotate={angles}"] if angles else []))
    flags = {"device": ("--device", device)}
    start = time.perf_counter()
    result, (torch_device, _) = study.run(request, flags)
    _sync(torch_device)
    return time.perf_counter() - start, len(result.labels)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=50, help="MC dropout passes K")
    parser.add_argument("--angles", default="0:180:15", help="rotation angles, START:STOP:STEP")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    angles = len(shifts.parse(f"rotate={args.angles}"))
    with tempfile.TemporaryDirectory() as directory:
        run_dir = Path(directory) / "run"
        # One epoch is enough: the time of evaluation does not depend on the weights.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "dropcli",
                "train",
                "--set",
                "train.epochs=1",
                "--device",
                args.device,
                "--run-dir",
                str(run_dir),
                "-q",
            ],
            check=True,
        )
        X = torch.rand(10_000, 784, device=torch.device(args.device))
        passes = angles * args.samples
        timings = {"evaluate": [], "plain": [], "setup": []}
        for _ in range(args.repeats):
            seconds, examples = evaluate(run_dir, args.samples, args.angles, args.device)
            timings["evaluate"].append(seconds)
            timings["plain"].append(plain_forwards(X[:examples], passes))
            timings["setup"].append(evaluate(run_dir, 0, None, args.device)[0])
    best = {name: min(values) for name, values in timings.items()}
    ratio = best["evaluate"] / best["plain"]
    print(
        f"threads: {torch.get_num_threads()}, device: {args.device}, {examples:,} test images x {angles} angles x K = {args.samples}"
    )
    print(
        f"evaluate --mc-samples {args.samples} --shift rotate={args.angles}: {best['evaluate']:.2f} s "
        f"(checkpoint and data loading, rotations, deterministic + MC passes, every metric)"
    )
    print(f"  of which the fixed cost (checkpoint, data, one unshifted deterministic pass): {best['setup']:.2f} s")
    print(f"plain forward passes ({passes} x {examples:,} images): {best['plain']:.2f} s")
    print(
        f"ratio: {ratio:.2f}x (target within {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'}); "
        f"without the fixed cost: {(best['evaluate'] - best['setup']) / best['plain']:.2f}x"
    )


if __name__ == "__main__":
    main()
