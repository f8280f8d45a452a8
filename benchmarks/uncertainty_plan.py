"""The uncertainty study from one plan file (docs/studies/uncertainty/plan.yaml): train every run it
names, evaluate every group, write the JSON, CSV, tables and figures. A rerun skips what is done.

    python -m benchmarks.uncertainty_plan PLAN [--data-dir DIR] [--device DEVICE] [--runs DIR] [--out DIR]
        [--figures PREFIX] [--set KEY=VALUE ...] [--seeds-scale F] [--redraw]

Steps, each skipped when its output exists (training: dropcli continues an experiment directory):
1. select: `dropcli sweep` over model.dropout for plan.select.kind; the rate with the lowest mean
   validation NLL at the last epoch is written to OUT/select.json and used as {rate} below;
2. train: `dropcli compare KIND --seeds N` per group of plan.train, into RUNS/GROUP;
3. evaluate: per entry of plan.evaluate, `dropcli evaluate`'s study through its Python API, keeping
   the bootstrap replicates: OUT/NAME.json (everything evaluate --json has, with the reliability
   bins and the costs), OUT/NAME.csv (a row per method, shift and metric), OUT/NAME-runs.csv (a row
   per run or ensemble), OUT/NAME-ood.csv, and NAME-replicates.pt / NAME-units.pt (not committed);
4. tables: OUT/tables.md and OUT/seed_level.csv (benchmarks/uncertainty_round2.py).
OUT/commands.sh lists every command as it ran (evaluate's as the equivalent command line).
--set adds config keys to every run (the tiny check shrinks the study with it); --seeds-scale
multiplies every group's seeds (at least 2 remain). --redraw draws every evaluated group's
figures and the headline again from the scored sets kept under RUNS/.study-parts, scoring, training
and writing nothing else (after a change to how a figure is drawn).
"""

import argparse
import csv
import dataclasses
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from benchmarks import uncertainty_headline, uncertainty_round2
from dropcli.uncertainty import calibration, shifts, study

PARTS = ".study-parts"  # under the runs directory: each group's scored shifted sets (not committed)
# The Study fields keyed by (method, shift) or by out-of-distribution set: a part's add to the whole.
MERGED_BY_KEY = (
    "scores",
    "member_scores",
    "spread",
    "intervals",
    "bootstrap_values",
    "threshold_intervals",
    "selective_intervals",
    "unit_values",
    "ood",
)
PLAN_KEYS = {"runs", "out", "figures", "config", "bootstrap", "select", "train", "shifts", "evaluate"}
EVALUATE_KEYS = {"runs", "mc_sweep", "ensemble_sizes", "temperature", "last_layer", "shifts", "ood"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan", type=Path)
    parser.add_argument("--data-dir")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--figures", type=Path)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--seeds-scale", type=float, default=1.0)
    parser.add_argument("--redraw", action="store_true", help="draw the figures again from the kept parts; nothing else")
    args = parser.parse_args()
    plan = load_plan(args.plan)
    runs_dir, out = args.runs or Path(plan["runs"]), args.out or Path(plan["out"])
    figures = args.figures or Path(plan["figures"])
    if args.redraw:
        redraw(plan, runs_dir, out, figures)
        return
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "commands.sh")
    common = [*sum((["-c", c] for c in plan.get("config", [])), []), *sum((["--set", s] for s in args.sets), [])]
    common += ["--device", args.device] + (["--data-dir", args.data_dir] if args.data_dir else [])
    rate = select(plan["select"], runs_dir / "select", out / "select.json", common, args.seeds_scale, log)
    for group, spec in plan["train"].items():
        train(group, spec, runs_dir / group, common, rate, args.seeds_scale, log)
    for name, spec in plan["evaluate"].items():
        evaluate(name, spec, plan, runs_dir, out, figures, args.device, log)
    (out / "tables.md").write_text(uncertainty_round2.tables(out, list(plan["evaluate"])))
    print(f"wrote {out / 'tables.md'}")
    figures.parent.mkdir(parents=True, exist_ok=True)
    headline = uncertainty_headline.draw(out, figures.with_name(f"{figures.name}-headline.png"), list(plan["evaluate"]))
    if headline is not None:
        print(f"wrote {headline}")


def redraw(plan: dict, runs_dir: Path, out: Path, figures: Path) -> None:
    from dropcli.cli.display import uncertainty_plots

    for name, spec in plan["evaluate"].items():
        parts = runs_dir / PARTS / name
        request = request_of(spec, plan, runs_dir)
        kept = [part_path(parts, index, shift) for index, shift in enumerate(request.shifts)]
        if not (out / f"{name}.json").is_file() or not all(path.is_file() for path in kept):
            print(f"{name}: not evaluated, or its scored sets are not all kept in {parts}: not drawn", flush=True)
            continue
        result = merged([torch.load(path, weights_only=False) for path in kept])
        for path in uncertainty_plots.write(result, figures.with_name(f"{figures.name}-{name}.png")):
            print(f"wrote {path}", flush=True)
    headline = uncertainty_headline.draw(out, figures.with_name(f"{figures.name}-headline.png"), list(plan["evaluate"]))
    if headline is not None:
        print(f"wrote {headline}")


def load_plan(path: Path) -> dict:
    plan = yaml.safe_load(path.read_text())
    unknown = set(plan) - PLAN_KEYS
    for name, spec in plan.get("evaluate", {}).items():
        unknown |= {f"evaluate.{name}.{key}" for key in set(spec) - EVALUATE_KEYS}
    if unknown or not {"select", "train", "evaluate"} <= set(plan):
        sys.exit(f"{path}: unknown keys {sorted(unknown)} or missing select/train/evaluate; keys: {sorted(PLAN_KEYS)}")
    return plan


class Log:
    """OUT/commands.sh: every command of this pass, as it ran, in order."""

    def __init__(self, path: Path):
        self.path = path
        path.write_text("# The commands of benchmarks/uncertainty_plan.py's last pass, in order.\n")

    def run(self, command: list[str]) -> None:
        self.write(command)
        print("+", shlex.join(command), flush=True)
        code = subprocess.run([sys.executable, "-m", "dropcli", *command[1:]]).returncode
        if code != 0:  # dropcli has said why on stderr
            sys.exit(f"stopped: that command exited with {code}; the steps done are kept, and a rerun continues")

    def write(self, command: list[str], note: str = "") -> None:
        with open(self.path, "a") as file:
            file.write(shlex.join(command) + (f"  # {note}" if note else "") + "\n")


def seeds_of(count: int, scale: float) -> int:
    return max(2, round(count * scale))


def select(spec: dict, run_dir: Path, record: Path, common: list[str], scale: float, log: Log) -> float:
    """The dropout rate with the lowest mean validation NLL at the last epoch (record: its choice)."""
    if record.is_file():
        chosen = json.loads(record.read_text())
        log.write(["#", "select.json", "exists:", f"rate {chosen['rate']}"])
        return chosen["rate"]
    grid = "model.dropout=" + ",".join(str(r) for r in spec["rates"])
    log.run(
        [
            "dropcli",
            "sweep",
            "--grid",
            grid,
            "--set",
            f"model.kind={spec['kind']}",
            *common,
            "--seeds",
            str(seeds_of(spec["seeds"], scale)),
            "--run-dir",
            str(run_dir),
            "-q",
        ]
    )
    by_rate: dict[float, list[float]] = {}
    for trial in sorted(p for p in run_dir.iterdir() if (p / "metrics.jsonl").is_file()):
        config = yaml.safe_load((trial / "config.yaml").read_text())
        last = [json.loads(line) for line in (trial / "metrics.jsonl").read_text().splitlines() if line.strip()][-1]
        by_rate.setdefault(float(config["model"]["dropout"][0]), []).append(last["val_loss"])
    means = {r: sum(v) / len(v) for r, v in sorted(by_rate.items())}
    rate = min(means, key=means.get)
    record.write_text(json.dumps({"rate": rate, "validation_nll": means, "runs": run_dir.name}, indent=1) + "\n")
    return rate


def train(group: str, spec: dict, run_dir: Path, common: list[str], rate: float, scale: float, log: Log) -> None:
    extra = [
        *sum((["-c", c] for c in spec.get("config", [])), []),
        *sum((["--set", s.format(rate=rate)] for s in spec.get("set", [])), []),
    ]
    seeds = str(seeds_of(spec["seeds"], scale))
    log.run(["dropcli", "compare", spec["kind"], *common, *extra, "--seeds", seeds, "--run-dir", str(run_dir), "-q"])


def request_of(spec: dict, plan: dict, runs_dir: Path) -> study.Request:
    texts = plan["shifts"] if spec.get("shifts") else []
    return study.Request(
        [runs_dir / spec["runs"]],
        shifts=shifts.parse_all(texts),
        temperature=bool(spec.get("temperature")),
        mc_sweep=tuple(spec.get("mc_sweep", ())),
        ensemble_sizes=tuple(spec.get("ensemble_sizes", ())),
        last_layer=bool(spec.get("last_layer")),
        bootstrap=int(plan.get("bootstrap", 1000)),
        ood=tuple(spec.get("ood", ())),
    )


def command_line(request: study.Request, spec: dict, plan: dict, figure: Path) -> list[str]:
    """The `dropcli evaluate` that prints the same rows (the plan runs it through the Python API)."""
    line = ["dropcli", "evaluate", *map(str, request.targets), "--bootstrap", str(request.bootstrap)]
    for option, values in (("--mc-sweep", request.mc_sweep), ("--ensemble-sizes", request.ensemble_sizes)):
        line += [option, ",".join(map(str, values))] if values else []
    line += ["--temperature"] * request.temperature + ["--last-layer"] * request.last_layer
    line += sum((["--shift", text] for text in (plan["shifts"] if spec.get("shifts") else [])), [])
    line += sum((["--ood", source] for source in request.ood), [])
    return [*line, "--json", "-o", str(figure)]


def evaluate(name: str, spec: dict, plan: dict, runs_dir: Path, out: Path, figures: Path, device: str, log: Log) -> None:
    from dropcli.cli.display import uncertainty_plots
    from dropcli.cli.options import flags
    from dropcli.uncertainty import evaluation

    # evaluate refuses Monte Carlo work estimated above an hour (a typo such as K = 100000 on the
    # command line); the study's 30 runs x 24 shifts x 50 passes are hours by design.
    evaluation.MC_TIME_LIMIT_S = 24 * 3600.0
    request = request_of(spec, plan, runs_dir)
    prefix = figures.with_name(f"{figures.name}-{name}.png")
    if (out / f"{name}.json").is_file():
        log.write(command_line(request, spec, plan, prefix), note=f"skipped: {name}.json exists")
        return
    log.write(command_line(request, spec, plan, prefix))
    started = time.perf_counter()
    result = scored_in_parts(request, runs_dir / PARTS / name, flags({"device": device, "data_dir": None}))
    print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    write_csv(out / f"{name}.csv", rows(result))
    write_csv(out / f"{name}-runs.csv", per_run_rows(result))
    if result.ood:
        write_csv(out / f"{name}-ood.csv", ood_rows(result))
    torch.save({f"{m}|{s.label}": v for (m, s), v in result.bootstrap_values.items()}, out / f"{name}-replicates.pt")
    units = {f"{m}|{s.label}": v for (m, s), v in result.unit_values.items()}
    torch.save(units, out / f"{name}-units.pt")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for path in uncertainty_plots.write(result, prefix):
        print(f"wrote {path}")
    report = study.to_json(result)
    report["elapsed_seconds"] = time.perf_counter() - started
    # Last: its existence marks the step done.
    partial = out / f".{name}.json.partial"
    partial.write_text(json.dumps(report, indent=1))
    partial.replace(out / f"{name}.json")


def scored_in_parts(request: study.Request, parts: Path, flags: dict):
    """The group's study, scored one shifted set at a time (the out-of-distribution sets with the
    last), each set's result kept in PARTS/NN-SHIFT.pt once scored: a stopped study keeps every
    set it finished (a group takes hours; one set of the dropout group, some 4 minutes on two
    cores), and the rerun scores only the rest. The parts share the bootstrap's resamples
    (drawn from a fixed seed), so paired comparisons across sets hold as in one run, and the
    temperatures fitted for the first set scored (deterministic: the same for every set)."""
    results, fitted = [], None
    for index, shift in enumerate(request.shifts):
        path = part_path(parts, index, shift)
        if path.is_file():
            results.append(torch.load(path, weights_only=False))
            fitted = fitted or results[-1].fitted  # None in parts kept before it was kept
            continue
        last = index == len(request.shifts) - 1
        part, _ = study.run(dataclasses.replace(request, shifts=[shift], ood=request.ood if last else ()), flags, fitted=fitted)
        fitted = part.fitted
        parts.mkdir(parents=True, exist_ok=True)
        torch.save(part, path.with_suffix(".partial"))
        path.with_suffix(".partial").replace(path)  # whole or absent
        print(f"  {shift.label}: scored", flush=True)
        results.append(part)
    return merged(results)


def part_path(parts: Path, index: int, shift) -> Path:
    """Where a group's scored shifted set is kept: PARTS/NN-SHIFT.pt, in the order of its shifts."""
    return parts / f"{index:02d}-{shift.label}.pt"


def merged(results: list):
    """One study from studies of the same runs and methods on different shifted sets."""
    whole = results[0]
    for part in results[1:]:
        whole.shifts += part.shifts
        for name in MERGED_BY_KEY:
            getattr(whole, name).update(getattr(part, name))
        whole.predictions += part.predictions
        whole.ood_sources += part.ood_sources
        whole.notes += [note for note in part.notes if note not in whole.notes]
    return whole


def write_csv(path: Path, table: list[list]) -> None:
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows(table)


def rows(result) -> list[list]:
    table = [["method", "passes", "multiply_adds", "shift", "value", "metric", "estimate", "low", "high", "spread", "parts"]]
    for (method, shift), scores in result.scores.items():
        spread = result.spread.get((method, shift))
        for index, metric in enumerate(calibration.METRICS):
            bounds = result.intervals.get((method, shift))
            table.append(
                [
                    method,
                    result.passes[method],
                    result.multiply_adds.get(method, ""),
                    shift.family,
                    f"{shift.value:g}",
                    metric,
                    f"{getattr(scores, metric):.6f}",
                    f"{bounds[index].low:.6f}" if bounds else "",
                    f"{bounds[index].high:.6f}" if bounds else "",
                    f"{spread[index]:.6f}" if spread else "",
                    len(result.member_scores[method, shift]),
                ]
            )
    return table


def per_run_rows(result) -> list[list]:
    """A row per method, shift and part (run, or ensemble of runs), every metric: the seed-level data."""
    table = [["method", "shift", "value", "part", *calibration.METRICS]]
    for (method, shift), parts in result.member_scores.items():
        for index, scores in enumerate(parts):
            values = [f"{getattr(scores, metric):.6f}" for metric in calibration.METRICS]
            table.append([method, shift.family, f"{shift.value:g}", index, *values])
    return table


def ood_rows(result) -> list[list]:
    from dropcli.uncertainty import ood

    table = [["data", "method", "score", "measure", "estimate", "low", "high", "spread"]]
    for (source, method, score), found in result.ood.items():
        for measure in ood.MEASURES:
            interval = getattr(found, f"{measure}_interval")
            spread = getattr(found, f"{measure}_spread")
            table.append(
                [
                    source,
                    method,
                    score,
                    measure,
                    f"{getattr(found, measure):.6f}",
                    f"{interval.low:.6f}" if interval else "",
                    f"{interval.high:.6f}" if interval else "",
                    f"{spread:.6f}" if spread is not None else "",
                ]
            )
    return table


if __name__ == "__main__":
    main()
