"""The methods a study scores, each as a list of parts: one per run (single-model methods) or one
per ensemble (disjoint groups of M runs), each part's probabilities (n, classes) and, where the
method averages several passes or members, their mean entropy (n,) for mutual information.

Names: "deterministic", "temperature", "mc dropout" (or "mc dropout K=k" in a sweep of K),
"mc dropout + temperature" and "last-layer mc dropout" (at the largest K), "ensemble" (or
"ensemble M=m" in a sweep of sizes), "ensemble + temperature", "ensemble + mc dropout" (largest K).
`passes` gives each name's forward passes per example, the axis of the compute-matched comparison.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from dropcli.uncertainty import methods
from dropcli.uncertainty.calibration import entropy_of

Part = tuple[torch.Tensor, torch.Tensor | None]  # (probabilities, mean entropy of the passes or None)


@dataclass(frozen=True)
class Lineup:
    """What to score, decided once per study from the request and the runs."""

    mc_samples: list[int]  # ascending; empty: no MC dropout
    swept_mc: bool  # name MC rows by their K
    ensemble_sizes: list[int]  # empty: no ensembles
    swept_ensembles: bool
    temperature: bool
    last_layer: bool
    names: list[str] = field(default_factory=list)
    passes: dict[str, int] = field(default_factory=dict)


def plan(
    mc_samples: list[int],
    ensemble_sizes: list[int],
    temperature: bool,
    last_layer: bool,
    swept_mc: bool,
    swept_ensembles: bool,
    ensemble_temperature: bool,
) -> Lineup:
    """The line-up's names, in table order, with their forward passes per example."""
    lineup = Lineup(sorted(set(mc_samples)), swept_mc, sorted(set(ensemble_sizes)), swept_ensembles, temperature, last_layer)
    top = max(lineup.mc_samples, default=0)
    add = lineup.passes.setdefault
    add(methods.DETERMINISTIC, 1)
    if temperature:
        add(methods.TEMPERATURE, 1)
    for k in lineup.mc_samples:
        add(mc_name(lineup, k), k)
    if top and temperature:
        add(f"{methods.MC_DROPOUT} + temperature", top)
    if top and last_layer:
        add(f"last-layer {methods.MC_DROPOUT}", top)
    for m in lineup.ensemble_sizes:
        add(ensemble_name(lineup, m), m)
        if temperature and ensemble_temperature:
            add(f"{ensemble_name(lineup, m)} + temperature", m)
        if top:
            add(f"{ensemble_name(lineup, m)} + {methods.MC_DROPOUT}", m * top)
    lineup.names.extend(lineup.passes)
    return lineup


def mc_name(lineup: Lineup, k: int) -> str:
    return f"{methods.MC_DROPOUT} K={k}" if lineup.swept_mc else methods.MC_DROPOUT


def ensemble_name(lineup: Lineup, m: int) -> str:
    return f"{methods.ENSEMBLE} M={m}" if lineup.swept_ensembles else methods.ENSEMBLE


def groups(runs: int, size: int) -> list[list[int]]:
    """Disjoint ensembles of `size` runs, in the order given: runs // size of them."""
    return [list(range(g * size, (g + 1) * size)) for g in range(runs // size)]


def member_outputs(
    lineup: Lineup, member, X: torch.Tensor, temperatures: dict[str, float] | None, done: Callable[[float], None] | None = None
) -> dict[str, Part]:
    """One run's single-model methods on `X`. `temperatures`: {"temperature": T, "mc": T} fitted on
    validation. `done(fraction)` hears how much of the Monte Carlo passes are done."""
    precision = member.config.train.precision
    sweeps = 2 if lineup.last_layer else 1  # the last-layer sweep costs as many passes as the full one

    def part(index: int) -> Callable[[float], None] | None:
        return None if done is None else lambda fraction: done((index + fraction) / sweeps)

    z = methods.logits(member.model, X, precision)
    out: dict[str, Part] = {methods.DETERMINISTIC: (methods.scaled(z), None)}
    if lineup.temperature:
        out[methods.TEMPERATURE] = (methods.scaled(z, temperatures["temperature"]), None)
    if lineup.mc_samples:
        torch.manual_seed(member.config.seed)  # the same masks for every shift: repeatable
        for k, (p, inner) in zip(
            lineup.mc_samples, methods.mc_sweep(member.model, X, lineup.mc_samples, precision, done=part(0))
        ):
            out[mc_name(lineup, k)] = (p, inner if k > 1 else None)  # one pass has no mutual information
        top = out[mc_name(lineup, lineup.mc_samples[-1])]
        if lineup.temperature:
            out[f"{methods.MC_DROPOUT} + temperature"] = (
                methods.scaled(methods.log_of(top[0]), temperatures["mc"]).float(),
                None,
            )
        if lineup.last_layer:
            (last,) = methods.mc_sweep(member.model, X, lineup.mc_samples[-1:], precision, last_layer_only=True, done=part(1))
            out[f"last-layer {methods.MC_DROPOUT}"] = last
    return out


def ensemble_outputs(
    lineup: Lineup, per_member: list[dict[str, Part]], temperatures: dict[str, list[float]] | None
) -> dict[str, list[Part]]:
    """Every ensemble row's parts (one per group), from the members' outputs on the same images."""
    out: dict[str, list[Part]] = {}
    top = mc_name(lineup, lineup.mc_samples[-1]) if lineup.mc_samples else None
    for m in lineup.ensemble_sizes:
        name = ensemble_name(lineup, m)
        for g, group in enumerate(groups(len(per_member), m)):
            p = torch.stack([per_member[i][methods.DETERMINISTIC][0] for i in group]).mean(dim=0)
            inner = torch.stack([entropy_of(per_member[i][methods.DETERMINISTIC][0].double()) for i in group]).mean(dim=0)
            out.setdefault(name, []).append((p, inner if m > 1 else None))
            if temperatures is not None and f"{name} + temperature" in lineup.passes:
                t = temperatures[name][g]
                out.setdefault(f"{name} + temperature", []).append((methods.scaled(methods.log_of(p), t).float(), None))
            if top:
                mc = torch.stack([per_member[i][top][0] for i in group]).mean(dim=0)
                inner = torch.stack([per_member[i][top][1] for i in group]).mean(dim=0)
                out.setdefault(f"{name} + {methods.MC_DROPOUT}", []).append((mc, inner))
    return out


def all_outputs(
    lineup: Lineup, members, X: torch.Tensor, temperatures, tick: Callable[[int, float], None] | None = None
) -> tuple[dict[str, list[Part]], list[dict[str, Part]]]:
    """Every row's parts on `X`, and each member's own outputs (for --predictions).
    `tick(member, fraction)` hears the Monte Carlo passes of each member as they are done."""
    per_member = [
        member_outputs(
            lineup,
            member,
            X,
            temperatures["members"][i] if temperatures else None,
            None if tick is None else functools.partial(tick, i),
        )
        for i, member in enumerate(members)
    ]
    out = {name: [outputs[name] for outputs in per_member] for name in per_member[0]}
    out.update(ensemble_outputs(lineup, per_member, temperatures["ensembles"] if temperatures else None))
    return out, per_member


def fit_temperatures(lineup: Lineup, members, vals, shared: bool) -> dict:
    """Every temperature the line-up needs, each fitted by NLL on validation: per run, on its own
    validation split, for the deterministic net and for MC dropout at the largest K; per ensemble,
    on the validation split the runs share (`shared`; else no ensemble is temperature-scaled)."""
    fitted: dict = {"members": [], "ensembles": {}}
    probabilities = []
    for member, val in zip(members, vals):
        precision = member.config.train.precision
        z = methods.logits(member.model, val.X, precision)
        probabilities.append(methods.scaled(z))
        one = {"temperature": methods.fit_temperature(z, val.y)}
        if lineup.mc_samples:
            torch.manual_seed(member.config.seed)
            ((p, _),) = methods.mc_sweep(member.model, val.X, lineup.mc_samples[-1:], precision)
            one["mc"] = methods.temperature_of_probabilities(p, val.y)
        fitted["members"].append(one)
    if shared:
        for m in lineup.ensemble_sizes:
            fitted["ensembles"][ensemble_name(lineup, m)] = [
                methods.temperature_of_probabilities(torch.stack([probabilities[i] for i in group]).mean(dim=0), vals[0].y)
                for group in groups(len(members), m)
            ]
    return fitted
