"""The study of docs/uncertainty.md: `dropcli evaluate` through its Python API, keeping the bootstrap
replicates (paired: the same resampled test examples for every method, shift and net) so that
differences between methods get intervals too.

    python benchmarks/uncertainty_study.py NAME OUT_DIR RUN... [--mc-sweep 1,3,10,50] [--ensemble-sizes 1,3,5]
        [--shift rotate=0,15,45,90] [--bootstrap 1000] [--last-layer] [--temperature] [--figures PREFIX]

writes OUT_DIR/NAME.json (evaluate --json's uncertainty part), OUT_DIR/NAME.csv (a row per method,
shift and metric: value, interval, spread) and OUT_DIR/NAME.pt (the replicates, for differences).
"""

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from dropcli.cli.display import uncertainty_plots
from dropcli.cli.options import flags
from dropcli.uncertainty import calibration, shifts, study


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--mc-sweep", default="")
    parser.add_argument("--ensemble-sizes", default="")
    parser.add_argument("--shift", action="append", default=[])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--last-layer", action="store_true")
    parser.add_argument("--temperature", action="store_true")
    parser.add_argument("--figures", type=Path)
    args = parser.parse_args()
    counts = lambda text: tuple(int(v) for v in text.split(",")) if text else ()  # noqa: E731
    request = study.Request(
        args.runs,
        shifts=shifts.parse_all(args.shift),
        temperature=args.temperature,
        mc_sweep=counts(args.mc_sweep),
        ensemble_sizes=counts(args.ensemble_sizes),
        last_layer=args.last_layer,
        bootstrap=args.bootstrap,
    )
    started = time.perf_counter()
    result, _ = study.run(request, flags({"device": "cpu", "data_dir": None}))
    print(f"{args.name}: {time.perf_counter() - started:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    report = study.to_json(result)
    for row in report["results"]:
        row.pop("bins")
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    with open(args.out / f"{args.name}.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["method", "passes", "shift", "value", "metric", "estimate", "low", "high", "spread", "parts"])
        for (method, shift), scores in result.scores.items():
            for index, metric in enumerate(calibration.METRICS):
                interval = result.intervals[method, shift][index]
                spread = result.spread.get((method, shift))
                writer.writerow(
                    [
                        method,
                        result.passes[method],
                        shift.family,
                        f"{shift.value:g}",
                        metric,
                        f"{getattr(scores, metric):.6f}",
                        f"{interval.low:.6f}",
                        f"{interval.high:.6f}",
                        f"{spread[index]:.6f}" if spread else "",
                        len(result.member_scores[method, shift]),
                    ]
                )
    torch.save({f"{m}|{s.family}={s.value:g}": v for (m, s), v in result.bootstrap_values.items()}, args.out / f"{args.name}.pt")
    if args.figures:
        for path in uncertainty_plots.write(result, args.figures):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
