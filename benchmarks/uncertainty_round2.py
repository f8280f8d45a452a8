"""tables.md and seed_level.csv of the uncertainty study's round 2, from benchmarks/uncertainty_plan.py's
outputs in OUT: NAME.csv, NAME-runs.csv, NAME-ood.csv, NAME.json, select.json and (when present)
NAME-units.pt for the two-level bootstrap.

    python -m benchmarks.uncertainty_round2 OUT NAME [NAME ...] > OUT/tables.md

Seed-level comparisons (uncertainty/seeds.py): A - B per shift, the estimate (difference of the
rows' means over runs or ensembles), the 95 % two-level bootstrap interval (runs, then test
images; paired where A and B come from the same runs), the p of the sign-flip test over the
paired units (or of the permutation test over unpaired runs) on the full test set, and that p
Holm-adjusted across the shifts of the comparison and metric.
"""

import csv
import json
import sys
from pathlib import Path

import torch

from dropcli.uncertainty import seeds

SHOWN = (("nll", "NLL"), ("brier", "Brier"), ("accuracy", "accuracy"), ("ece", "ECE"), ("aurc", "AURC"))
LEVEL = 0.95
UNPAIRED_SEED = 1000  # a second stream of run draws: unpaired runs are drawn independently


def label(family: str, value: str) -> str:
    return "no shift" if family == "none" else f"{family}={value}"


def read_csv(path: Path) -> list[dict]:
    with open(path) as file:
        return list(csv.DictReader(file))


class Evaluation:
    """One evaluate's outputs, as read back."""

    def __init__(self, out: Path, name: str):
        self.name = name
        self.rows = {(r["method"], label(r["shift"], r["value"]), r["metric"]): r for r in read_csv(out / f"{name}.csv")}
        self.parts: dict[tuple[str, str], list[dict]] = {}
        for r in read_csv(out / f"{name}-runs.csv"):
            self.parts.setdefault((r["method"], label(r["shift"], r["value"])), []).append(r)
        self.report = json.loads((out / f"{name}.json").read_text())
        self.ood = read_csv(out / f"{name}-ood.csv") if (out / f"{name}-ood.csv").is_file() else []
        units = out / f"{name}-units.pt"
        self.units = torch.load(units) if units.is_file() else {}
        self.methods = list(dict.fromkeys(key[0] for key in self.rows))
        self.shifts = list(dict.fromkeys(key[1] for key in self.rows))

    def point(self, method: str, shift: str, metric: str) -> torch.Tensor:
        """(units,) the metric of each run (or ensemble) on the whole test set."""
        parts = self.parts.get((method, shift)) or []
        if not parts:  # one unit: the row itself
            return torch.tensor([float(self.rows[method, shift, metric]["estimate"])], dtype=torch.float64)
        return torch.tensor([float(p[metric]) for p in parts], dtype=torch.float64)


def cell(row: dict) -> str:
    text = f"{float(row['estimate']):.4f}"
    if row["low"]:
        text += f" [{float(row['low']):.4f}, {float(row['high']):.4f}]"
    return text + (f" ±{float(row['spread']):.4f}" if row["spread"] else "")


def metric_tables(evaluation: Evaluation) -> list[str]:
    lines = []
    families = list(dict.fromkeys(shift.split("=")[0] for shift in evaluation.shifts))
    for metric, title in SHOWN:
        for family in families:
            columns = [s for s in evaluation.shifts if s.split("=")[0] == family]
            lines += [f"\n#### {evaluation.name}: {title}, {family}\n", "| method | " + " | ".join(columns) + " |"]
            lines.append("|---|" + "---:|" * len(columns))
            for method in evaluation.methods:
                cells = [cell(evaluation.rows[method, s, metric]) for s in columns]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def compute_table(evaluation: Evaluation) -> list[str]:
    costs = evaluation.report["compute"]
    full = costs["multiply_adds_per_example"]["deterministic"]
    trained = [t["seconds"] for t in costs["training"] if t["seconds"] is not None]
    per_run = sum(trained) / len(trained) if trained else None
    lines = [
        f"\n#### {evaluation.name}: cost per test example, and training",
        "",
        "| method | passes | multiply-adds | full passes | measured µs / example | runs trained | training, s (mean run × runs) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method in evaluation.methods:
        adds = costs["multiply_adds_per_example"][method]
        runs = costs["runs_trained"][method]
        seconds = f"{per_run * runs:.0f}" if per_run is not None else ""
        micro = costs["seconds_per_example"][method] * 1e6
        lines.append(
            f"| {method} | {evaluation.report['forward_passes'][method]} | {adds:,} | {adds / full:.2f} | {micro:.1f} | {runs} | {seconds} |"
        )
    return lines


def ood_table(evaluation: Evaluation) -> list[str]:
    lines = []
    found = {(r["data"], r["method"], r["score"], r["measure"]): r for r in evaluation.ood}
    for source in dict.fromkeys(r["data"] for r in evaluation.ood):
        lines += [f"\n#### {evaluation.name}: out-of-distribution detection against {source}\n"]
        lines += ["| method | score | AUROC | AUPR | FPR@95 |", "|---|---|---:|---:|---:|"]
        for method in evaluation.methods:
            for score in ("max probability", "entropy", "mutual information"):
                if (source, method, score, "auroc") in found:
                    cells = [cell(found[source, method, score, m]) for m in ("auroc", "aupr", "fpr95")]
                    lines.append(f"| {method} | {score} | " + " | ".join(cells) + " |")
    return lines


def comparisons(evaluations: dict[str, Evaluation]) -> list[tuple]:
    """(title, A, B, group size for pairing or 0 for same units, paired): A and B are (evaluation, method)."""
    found = []
    dropout, plain, ll = evaluations.get("dropout"), evaluations.get("plain"), evaluations.get("ll-dropout")
    if dropout is not None:
        adds = dropout.report["compute"]["multiply_adds_per_example"]
        mc = [m for m in dropout.methods if m.startswith("mc dropout K=")]
        for size in dropout.report.get("ensemble_sizes") or sorted(
            {int(m.split("M=")[1].split()[0]) for m in dropout.methods if m.startswith("ensemble M=")}
        ):
            ensemble = f"ensemble M={size}"
            if mc:
                equal = min(mc, key=lambda m: abs(adds[m] - adds[ensemble]))
                found.append(
                    (
                        f"{ensemble} vs {equal} (equal multiply-adds), same runs",
                        ("dropout", ensemble),
                        ("dropout", equal),
                        size,
                        True,
                    )
                )
            if f"mc dropout K={size}" in mc and f"mc dropout K={size}" != (equal if mc else None):
                found.append(
                    (
                        f"{ensemble} vs mc dropout K={size} (equal passes), same runs",
                        ("dropout", ensemble),
                        ("dropout", f"mc dropout K={size}"),
                        size,
                        True,
                    )
                )
        if mc:
            found.append((f"{mc[-1]} vs deterministic, same runs", ("dropout", mc[-1]), ("dropout", "deterministic"), 0, True))
        if "temperature" in dropout.methods:
            found.append(
                ("temperature vs deterministic, same runs", ("dropout", "temperature"), ("dropout", "deterministic"), 0, True)
            )
    if dropout is not None and plain is not None:
        found.append(("plain net vs dropout net", ("plain", "deterministic"), ("dropout", "deterministic"), 0, False))
        common = [m for m in plain.methods if m.startswith("ensemble M=") and "+" not in m and m in dropout.methods]
        if common:
            found.append((f"{common[-1]}: plain vs dropout nets", ("plain", common[-1]), ("dropout", common[-1]), 0, False))
    if dropout is not None and ll is not None and "last-layer mc dropout" in dropout.methods:
        top = [m for m in ll.methods if m.startswith("mc dropout K=")][-1]
        found.append(
            (
                f"trained LL-dropout {top} vs the test-time last-layer ablation",
                ("ll-dropout", top),
                ("dropout", "last-layer mc dropout"),
                0,
                False,
            )
        )
    return found


def seed_level(evaluations: dict[str, Evaluation]) -> list[dict]:
    out = []
    for title, (name_a, a), (name_b, b), size, paired in comparisons(evaluations):
        first, second = evaluations[name_a], evaluations[name_b]
        shared = [s for s in first.shifts if s in second.shifts]
        for index, metric in enumerate(seeds.UNIT_METRICS):
            rows = []
            for shift in shared:
                point_a, point_b = first.point(a, shift, metric), second.point(b, shift, metric)
                units_a, units_b = first.units.get(f"{a}|{shift}"), second.units.get(f"{b}|{shift}")
                if size:
                    point_b = point_b[: len(point_b) // size * size].view(-1, size).mean(dim=1)
                    units_b = seeds.grouped(units_b, size) if units_b is not None else None
                estimate = float(point_a.mean() - point_b.mean())
                if paired and len(point_a) == len(point_b):
                    p = seeds.sign_flip_p(point_a - point_b)
                else:
                    p = seeds.permutation_p(point_a, point_b)
                low = high = None
                if units_a is not None and units_b is not None:
                    replicates = units_a.shape[1]
                    draw_a = seeds.draws(units_a.shape[0], replicates)
                    draw_b = draw_a if paired else seeds.draws(units_b.shape[0], replicates, seeds.SEED + UNPAIRED_SEED)
                    difference = seeds.two_level(units_a.double(), draw_a) - seeds.two_level(units_b.double(), draw_b)
                    low, high = seeds.interval(difference[:, index], LEVEL)
                rows.append(
                    {
                        "comparison": title,
                        "metric": metric,
                        "shift": shift,
                        "estimate": estimate,
                        "low": low,
                        "high": high,
                        "p": p,
                        "units": f"{len(point_a)} vs {len(point_b)}",
                    }
                )
            for row, adjusted in zip(rows, seeds.holm([r["p"] for r in rows])):
                row["p_holm"] = adjusted
            out += rows
    return out


def seed_table(rows: list[dict]) -> list[str]:
    lines = [
        "\n### Seed-level comparisons\n",
        "A − B; [two-level 95 % bootstrap interval: runs, then test images]; p: sign-flip test over paired runs or "
        "ensembles (permutation test for different nets), Holm-adjusted across the shifts of each line; `*`: adjusted p < 0.05.",
    ]
    for title in dict.fromkeys(r["comparison"] for r in rows):
        for metric in seeds.UNIT_METRICS:
            chosen = [r for r in rows if r["comparison"] == title and r["metric"] == metric]
            lines += [
                f"\n#### {title}: {metric} (units {chosen[0]['units']})\n",
                "| shift | A − B | interval | p | Holm p |",
                "|---|---:|---:|---:|---:|",
            ]
            for r in chosen:
                interval = f"[{r['low']:+.4f}, {r['high']:+.4f}]" if r["low"] is not None else ""
                star = " *" if r["p_holm"] < 0.05 else ""
                lines.append(f"| {r['shift']} | {r['estimate']:+.4f} | {interval} | {r['p']:.4f} | {r['p_holm']:.4f}{star} |")
    return lines


def tables(out: Path, names: list[str]) -> str:
    """tables.md's text; writes OUT/seed_level.csv beside it."""
    evaluations = {name: Evaluation(out, name) for name in names if (out / f"{name}.json").is_file()}
    lines = ["# The uncertainty study, round 2: every table (benchmarks/uncertainty_round2.py)"]
    if (out / "select.json").is_file():
        chosen = json.loads((out / "select.json").read_text())
        nll = ", ".join(f"p = {r}: {v:.4f}" for r, v in chosen["validation_nll"].items())
        lines.append(f"\nDropout rate chosen on validation: {chosen['rate']} (mean validation NLL at the last epoch: {nll}).")
    for evaluation in evaluations.values():
        lines += [f"\n## {evaluation.name}", ""] + compute_table(evaluation) + metric_tables(evaluation) + ood_table(evaluation)
    rows = seed_level(evaluations)
    if rows:
        with open(out / "seed_level.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        lines += seed_table(rows)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(tables(Path(sys.argv[1]), sys.argv[2:]))
