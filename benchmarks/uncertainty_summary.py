"""Markdown tables for docs/uncertainty.md from benchmarks/uncertainty_study.py's outputs.

    python benchmarks/uncertainty_summary.py OUT_DIR

Reads OUT_DIR/{dropout,plain}.csv and .pt; prints the tables, and the paired differences between
methods: the same bootstrap resamples of the test set serve every method and net, so a
difference's interval is the percentile interval of the replicate-by-replicate differences.
"""

import csv
import sys
from pathlib import Path

import torch

from dropcli.uncertainty.calibration import METRICS

LEVEL = 0.95
SHOWN = ("accuracy", "nll", "brier", "ece", "ece_adaptive")
TITLES = {
    "accuracy": "accuracy",
    "nll": "NLL",
    "brier": "Brier",
    "ece": "ECE",
    "ece_adaptive": "adaptive ECE",
    "entropy": "entropy",
}


def load(out: Path):
    rows, replicates = {}, {}
    for name in ("dropout", "plain"):
        if not (out / f"{name}.csv").is_file():
            continue
        with open(out / f"{name}.csv") as file:
            for row in csv.DictReader(file):
                rows[name, row["method"], f"{row['shift']}={row['value']}", row["metric"]] = row
        for key, values in torch.load(out / f"{name}.pt").items():
            replicates[(name, *key.split("|"))] = values
    return rows, replicates


def cell(row, spread: bool = True) -> str:
    text = f"{float(row['estimate']):.4f} [{float(row['low']):.4f}, {float(row['high']):.4f}]"
    if spread and row["spread"]:
        text += f" ±{float(row['spread']):.4f}"
    return text


def table(rows, net: str, shift: str, methods: list[str]) -> str:
    lines = ["| method | passes | " + " | ".join(TITLES[m] for m in SHOWN) + " |", "|---|---:|" + "---:|" * len(SHOWN)]
    for method in methods:
        if (net, method, shift, "nll") not in rows:
            continue
        first = rows[net, method, shift, "nll"]
        cells = [cell(rows[net, method, shift, metric]) for metric in SHOWN]
        lines.append(f"| {method} | {first['passes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def difference(rows, replicates, a, b, shift: str, metric: str) -> str:
    """a - b, each (net, method): the estimate and the paired interval."""
    index = METRICS.index(metric)
    estimate = float(rows[(*a, shift, metric)]["estimate"]) - float(rows[(*b, shift, metric)]["estimate"])
    values = replicates[(*a, shift)][:, index] - replicates[(*b, shift)][:, index]
    low, high = torch.quantile(values, torch.tensor([(1 - LEVEL) / 2, (1 + LEVEL) / 2], dtype=values.dtype)).tolist()
    mark = "" if low <= 0 <= high else " *"
    return f"{estimate:+.4f} [{low:+.4f}, {high:+.4f}]{mark}"


PAIRS = [
    ("ensemble of 2 dropout nets vs MC dropout K = 2", ("dropout", "ensemble M=2"), ("dropout", "mc dropout K=2")),
    ("ensemble of 3 dropout nets vs MC dropout K = 3", ("dropout", "ensemble M=3"), ("dropout", "mc dropout K=3")),
    ("ensemble of 5 dropout nets vs MC dropout K = 5", ("dropout", "ensemble M=5"), ("dropout", "mc dropout K=5")),
    ("ensemble of 5 plain nets vs MC dropout K = 5", ("plain", "ensemble M=5"), ("dropout", "mc dropout K=5")),
    ("ensemble of 5 plain nets vs MC dropout K = 50", ("plain", "ensemble M=5"), ("dropout", "mc dropout K=50")),
    ("ensemble of 5 plain nets vs ensemble of 5 dropout nets", ("plain", "ensemble M=5"), ("dropout", "ensemble M=5")),
    ("MC dropout K = 50 vs the dropout net", ("dropout", "mc dropout K=50"), ("dropout", "deterministic")),
    ("MC dropout K = 50 vs K = 10", ("dropout", "mc dropout K=50"), ("dropout", "mc dropout K=10")),
    (
        "MC dropout K = 50 + temperature vs MC dropout K = 50",
        ("dropout", "mc dropout + temperature"),
        ("dropout", "mc dropout K=50"),
    ),
    ("temperature vs the dropout net", ("dropout", "temperature"), ("dropout", "deterministic")),
    ("last-layer MC dropout K = 50 vs MC dropout K = 50", ("dropout", "last-layer mc dropout"), ("dropout", "mc dropout K=50")),
    ("plain net vs dropout net", ("plain", "deterministic"), ("dropout", "deterministic")),
]


def main() -> None:
    out = Path(sys.argv[1])
    rows, replicates = load(out)
    shifts = list(dict.fromkeys(key[2] for key in rows))
    for net in ("dropout", "plain"):
        methods = list(dict.fromkeys(key[1] for key in rows if key[0] == net))
        for shift in shifts:
            print(f"\n#### {net} nets, {shift}\n")
            print(table(rows, net, shift, methods))
    for metric in ("nll", "brier", "accuracy", "ece"):
        print(f"\n#### paired differences, {TITLES[metric]} (A - B; * : the interval excludes 0)\n")
        print("| A vs B | " + " | ".join(shifts) + " |")
        print("|---|" + "---:|" * len(shifts))
        for title, a, b in PAIRS:
            if (*a, shifts[0], metric) in rows and (*b, shifts[0], metric) in rows:
                print(f"| {title} | " + " | ".join(difference(rows, replicates, a, b, s, metric) for s in shifts) + " |")


if __name__ == "__main__":
    main()
