"""What each row of a study costs: multiply-adds and measured seconds per test example, and the
training behind it (runs, epochs, examples, measured seconds).

Multiply-adds are counted from the architecture: each Linear layer costs in x out per example.
MC dropout runs the layers before the first noise layer once per example and only the rest K
times (methods.split_at_first_noise), so for the chapter's 784-256-256-10 net K passes cost
about 0.75 + 0.25 K full passes; DropConnect draws its weight masks per pass and pays K full
passes; last-layer MC dropout repeats only what follows the last noise layer. An ensemble of M
costs M times its member's method. Temperature scaling adds one division per class (not counted).
Seconds are measured on a probe of the test images (the median of three timings; on a shared
machine they are noisy, and their ratios say more than their values).
"""

import time
from pathlib import Path
from typing import Any

import torch

from dropcli.errors import DropcliError
from dropcli.uncertainty import lineup as lineup_module
from dropcli.uncertainty import methods

PROBE = 1000  # test images timed per row


def _linear_cost(module: torch.nn.Module) -> int:
    return sum(layer.in_features * layer.out_features for layer in module.modules() if isinstance(layer, torch.nn.Linear))


def pass_costs(model: torch.nn.Module, last_layer: bool = False) -> tuple[int, int]:
    """(once, per pass): the multiply-adds per example MC dropout pays once and for each pass."""
    if methods.has_weight_noise(model):
        return 0, _linear_cost(model)
    layers = methods.stochastic_modules(model)
    prefix, rest = methods.split_at_first_noise(model, layers[-1:] if last_layer else layers)
    return _linear_cost(prefix), _linear_cost(rest)


def multiply_adds(lineup: lineup_module.Lineup, model: torch.nn.Module) -> dict[str, int]:
    """Each row's multiply-adds per test example, in the line-up's order."""
    full = _linear_cost(model)
    single: dict[str, int] = {methods.DETERMINISTIC: full, methods.TEMPERATURE: full}
    if lineup.mc_samples:
        once, each = pass_costs(model)
        for k in lineup.mc_samples:
            single[lineup_module.mc_name(lineup, k)] = once + k * each
        top = lineup.mc_samples[-1]
        single[f"{methods.MC_DROPOUT} + temperature"] = once + top * each
        once_ll, each_ll = pass_costs(model, last_layer=True)
        single[f"last-layer {methods.MC_DROPOUT}"] = once_ll + top * each_ll
    out = {}
    for name in lineup.names:
        if name in single:
            out[name] = single[name]
            continue
        m = next(m for m in lineup.ensemble_sizes if name.startswith(lineup_module.ensemble_name(lineup, m)))
        rest = name[len(lineup_module.ensemble_name(lineup, m)) :]
        member = single[lineup_module.mc_name(lineup, lineup.mc_samples[-1])] if rest.endswith(methods.MC_DROPOUT) else full
        out[name] = m * member
    return out


def runs_trained(lineup: lineup_module.Lineup) -> dict[str, int]:
    """How many trained runs each row needs: one, or an ensemble's M."""
    out = {}
    for name in lineup.names:
        sizes = [m for m in lineup.ensemble_sizes if name.startswith(lineup_module.ensemble_name(lineup, m))]
        out[name] = sizes[0] if sizes else 1
    return out


def training(members) -> list[dict[str, Any]]:
    """Each run's training: epochs, examples per epoch and measured seconds (from its metrics),
    or what is known without them (a checkpoint file away from its run directory)."""
    from dropcli import runs

    out = []
    for member in members:
        run_dir = (
            member.checkpoint.parent.parent if member.checkpoint.parent.name == runs.CHECKPOINT_DIR else Path(member.checkpoint)
        )
        try:
            records = runs.read_metrics(run_dir)
        except DropcliError:  # a cost we cannot read is left out, never a failed study
            records = []
        seconds = sum(float(r.get("seconds", 0.0)) for r in records) if records else None
        out.append({"run": str(run_dir), "epochs": member.epoch, "seconds": seconds})
    return out


def seconds_per_example(lineup: lineup_module.Lineup, members, X: torch.Tensor) -> dict[str, float]:
    """Each row's measured seconds per test example, on the first PROBE images of `X`."""
    probe = X[:PROBE]
    first = members[0]
    precision = first.config.train.precision
    top = lineup.mc_samples[-1] if lineup.mc_samples else 0

    def deterministic(member) -> None:
        methods.scaled(methods.logits(member.model, probe, precision))

    def mc(member, k: int, last: bool = False) -> None:
        methods.mc_sweep(member.model, probe, [k], precision, last_layer_only=last)

    work: dict[str, list] = {}
    for name in lineup.names:
        sizes = [m for m in lineup.ensemble_sizes if name.startswith(lineup_module.ensemble_name(lineup, m))]
        group = members[: sizes[0]] if sizes else [first]
        if name.endswith(methods.MC_DROPOUT) or name.startswith(methods.MC_DROPOUT) or name.startswith("last-layer"):
            k = top if (sizes or "temperature" in name or name.startswith("last-layer")) else _k_of(lineup, name)
            work[name] = [lambda member=member, k=k, last=name.startswith("last-layer"): mc(member, k, last) for member in group]
        else:
            work[name] = [lambda member=member: deterministic(member) for member in group]
    return {name: seconds / len(probe) for name, seconds in _median_seconds(work, probe.device).items()}


def _k_of(lineup: lineup_module.Lineup, name: str) -> int:
    return next(k for k in lineup.mc_samples if lineup_module.mc_name(lineup, k) == name)


def _median_seconds(work: dict[str, list], device: torch.device) -> dict[str, float]:
    """Each row's median of three timings, the rows taken in turn in each round: on a shared
    machine a burst of load then spreads over every row instead of landing on one."""
    for steps in work.values():  # a first call pays one-off set-up costs
        for step in steps:
            step()
    timings: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(3):
        for name, steps in work.items():
            started = time.perf_counter()
            for step in steps:
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timings[name].append(time.perf_counter() - started)
    return {name: sorted(values)[1] for name, values in timings.items()}
