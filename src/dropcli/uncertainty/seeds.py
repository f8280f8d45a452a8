"""Inference at the level of seeds: intervals that count both the runs and the test images, and
paired tests over runs corrected for the number of shifts looked at.

A study's rows are means over units: runs (single-model methods) or disjoint ensembles. For the
mean-type metrics (accuracy, NLL, Brier) each unit's value on each bootstrap replicate of the
test images is kept (study.unit_values: (units, replicates, 3)). The two-level bootstrap draws,
for replicate b, `units` units with replacement and averages their values on image replicate b:
the spread of that mean over b holds both the variation between seeds and that between test
sets (Davison & Hinkley 1997, sec. 3.8). Draws depend only on the number of units and a seed, so
two methods on the same runs (or the same ensembles) are paired unit by unit as well as image by
image; `grouped` averages a single-model method over an ensemble's members, so an ensemble of M
runs and MC dropout on those same M runs are compared pair by pair.

Tests: the paired sign-flip test over units (exact up to EXACT_UNITS units, else FLIPS random
sign patterns), a two-sample permutation test for runs that are not paired (different nets),
and Holm's step-down correction across the shifts of one comparison.
"""

import itertools

import torch

UNIT_METRICS = ("accuracy", "nll", "brier")
SEED = 20261206
EXACT_UNITS = 16
FLIPS = 20000


def draws(units: int, replicates: int, seed: int = SEED) -> torch.Tensor:
    """(replicates, units) indices of the units drawn with replacement in each replicate."""
    generator = torch.Generator().manual_seed(seed + units)
    return torch.randint(0, units, (replicates, units), generator=generator)


def two_level(values: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
    """(replicates, metrics): the mean over the drawn units of their values on each image replicate.
    `values` (units, replicates, metrics), `drawn` (replicates, units)."""
    replicate = torch.arange(values.shape[1])[:, None].expand_as(drawn)  # (replicates, units)
    return values[drawn, replicate].mean(dim=1)


def grouped(values: torch.Tensor, size: int) -> torch.Tensor:
    """A single-model method's unit values averaged over disjoint groups of `size` runs, in the
    order of lineup.groups: (runs // size, replicates, metrics)."""
    groups = values.shape[0] // size
    return values[: groups * size].reshape(groups, size, *values.shape[1:]).mean(dim=1)


def interval(values: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    quantiles = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(values.double(), quantiles).tolist()
    return low, high


def sign_flip_p(differences: torch.Tensor) -> float:
    """Two-sided p of the paired sign-flip test that the mean of `differences` (units,) is 0."""
    d = differences.double()
    observed = d.mean().abs()
    if len(d) <= EXACT_UNITS:
        signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=len(d))), dtype=torch.float64)
    else:
        generator = torch.Generator().manual_seed(SEED)
        signs = torch.randint(0, 2, (FLIPS, len(d)), generator=generator).double() * 2 - 1
    means = (signs * d).mean(dim=1).abs()
    return float((means >= observed - 1e-12).double().mean())


def permutation_p(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sided p of the two-sample permutation test that `a` and `b` (per-run values) share a mean."""
    pooled = torch.cat([a, b]).double()
    observed = (a.double().mean() - b.double().mean()).abs()
    generator = torch.Generator().manual_seed(SEED)
    orders = torch.stack([torch.randperm(len(pooled), generator=generator) for _ in range(FLIPS)])
    shuffled = pooled[orders]
    gaps = (shuffled[:, : len(a)].mean(dim=1) - shuffled[:, len(a) :].mean(dim=1)).abs()
    # The observed split counts as one of the permutations: p is never 0.
    return float(((gaps >= observed - 1e-12).sum() + 1) / (FLIPS + 1))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's adjusted p-values, in the order given: sorted ascending, the i-th (from 0) times
    (m - i), made non-decreasing, capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted
