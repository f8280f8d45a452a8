"""Collect the learning curves bench-tune replays: each run of a sweep (benchmarks/tune-curves/plan.yaml)
as one row of a CSV, its space's values and its validation accuracy after every epoch.

    python benchmarks/tune_curves.py RUN_DIR [RUN_DIR ...] OUT.csv

A run that diverged keeps the epochs it had, its status says so, and its later epochs are empty;
a run still training (no summary.json) is left out.
"""

import csv
import json
import sys
from pathlib import Path

import yaml

KEYS = (
    "model.hidden",
    "model.dropout_input",
    "model.dropout_1",
    "model.dropout_2",
    "optim.lr",
    "optim.momentum_final",
    "optim.weight_decay",
    "optim.schedule",
    "data.augment.flip",
    "data.augment.shift",
)


def row(run: Path, epochs: int) -> dict | None:
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    if summary["status"] not in ("finished", "diverged"):
        return None
    config = yaml.safe_load((run / "config.yaml").read_text())
    values = {
        "model.hidden": "x".join(map(str, config["model"]["hidden"])),
        "model.dropout_input": config["model"]["dropout_input"],
        "model.dropout_1": config["model"]["dropout"][0],
        "model.dropout_2": config["model"]["dropout"][1],
        "optim.lr": config["optim"]["lr"],
        "optim.momentum_final": config["optim"]["momentum_final"],
        "optim.weight_decay": config["optim"]["weight_decay"],
        "optim.schedule": config["optim"]["schedule"],
        "data.augment.flip": config["data"]["augment"]["flip"],
        "data.augment.shift": config["data"]["augment"]["shift"],
    }
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve = {f"val_{m['epoch']}": round(m["val_acc"], 6) for m in metrics}
    return {
        "run": f"{run.parent.name}/{run.name}",
        "status": summary["status"],
        **values,
        **{f"val_{e}": curve.get(f"val_{e}", "") for e in range(1, epochs + 1)},
    }


def main() -> None:
    *sources, out = sys.argv[1:]
    rows = []
    for source in map(Path, sources):
        for run in sorted(p for p in source.iterdir() if (p / "config.yaml").is_file()):
            epochs = yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"]
            found = row(run, epochs)
            if found is not None:
                rows.append(found)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} curves written to {out}")


if __name__ == "__main__":
    main()
