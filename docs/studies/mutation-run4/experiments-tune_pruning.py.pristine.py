"""When tune may judge a trial, and how: the grace period, the pruners' settings, and how well
each rung predicted the final value.

A trial is judged first when its schedule has taken effect: by default after any learning-rate
warm-up or momentum ramp, and not before a quarter of its epochs (best-any's rungs at epochs 1
and 3 of 40, inside a 15-epoch momentum ramp, ranked trials against their final accuracy at
-0.42). A trial is never judged at its last epoch: stopping it then saves nothing. Optuna owns
the pruners; this module only says where their first rung is and what they are told.
"""

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli.config import Config
from dropcli.errors import DropcliError

PRUNER_KEYS = ("name", "grace", "reduction", "bootstrap")  # a plan's `pruner:` mapping
MEDIAN_STARTUP = 5  # complete trials the median pruner waits for (Optuna's default)


@dataclass(frozen=True)
class Pruning:
    """A pruner's settings beyond its name. grace: epochs (a whole number) or a fraction of the
    epochs (0 < f < 1); None: after the warm-up or momentum ramp, and at least a quarter."""

    grace: float | None = None
    reduction: int = 3  # asha and hyperband: keep the top 1/reduction at each rung
    bootstrap: int = 0  # asha and hyperband: trials each rung waits for before it prunes any

    def stored(self) -> dict[str, Any]:
        """The settings as a study keeps them (tune.HOW_ATTR), for --summary alone."""
        return {"grace": self.grace, "reduction": self.reduction, "bootstrap": self.bootstrap}

    def text(self, name: str, config: Config, max_epochs: int) -> str:
        """The pruner as best.yaml and the summary say it: asha (grace 16 epochs, reduction 3)."""
        if name in ("none", "not recorded"):
            return name
        grace = grace_epochs(self, config, max_epochs)
        parts = [f"grace {grace} epoch{'s' if grace != 1 else ''}"]
        if name != "median":
            parts.append(f"reduction {self.reduction}")
            if self.bootstrap:
                parts.append(f"bootstrap {self.bootstrap}")
        return f"{name} ({', '.join(parts)})"


def resolve(entry: Any, given: dict[str, Any], plan: Path | None, config: Config, space: list, choose) -> tuple[str, Pruning]:
    """The pruner's name (checked by `choose`) and its settings, checked against the config and
    space: a plan's `pruner:` is a name or a mapping of PRUNER_KEYS; --pruner, --grace,
    --reduction and --bootstrap override it."""
    name, pruning = _settings(entry, given, plan)
    name = choose(name)
    check(name, pruning, config, max_epochs(config, space), given)
    return name, pruning


def max_epochs(config: Config, space: list) -> int:
    """The most epochs a trial of the space trains (train.epochs may be a key of the space)."""
    return max(next((g.values for g in space if g.key == "train.epochs"), (config.train.epochs,)))


def _settings(entry: Any, given: dict[str, Any], plan: Path | None) -> tuple[Any, Pruning]:
    if isinstance(entry, dict):
        unknown = [key for key in entry if key not in PRUNER_KEYS]
        if unknown:
            raise DropcliError(f"{plan}: pruner: unknown key {unknown[0]!r}; its keys are {', '.join(PRUNER_KEYS)}")
        name = entry.get("name", "median")
    else:
        name, entry = entry, {}
    grace = given.get("grace") if given.get("grace") is not None else entry.get("grace")
    reduction = given.get("reduction") if given.get("reduction") is not None else entry.get("reduction", 3)
    bootstrap = given.get("bootstrap") if given.get("bootstrap") is not None else entry.get("bootstrap", 0)
    where = f"{plan}: pruner " if plan is not None and not given.get("grace") else "--"
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace <= 0):
        raise DropcliError(f"{where}grace {grace!r}: give epochs (a whole number, e.g. 25) or a fraction of them (0.25)")
    if grace is not None and grace >= 1 and grace != int(grace):
        raise DropcliError(f"{where}grace {grace!r}: epochs are a whole number; a fraction is below 1 (0.25)")
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 2:
        raise DropcliError(f"{where}reduction {reduction!r}: keep the top 1/N at each rung, N a whole number >= 2")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise DropcliError(f"{where}bootstrap {bootstrap!r}: a number of trials, 0 or more")
    return name, Pruning(grace=grace, reduction=reduction, bootstrap=bootstrap)


def check(name: str, pruning: Pruning, config: Config, max_epochs: int, given: dict[str, Any]) -> None:
    """Refuses settings the pruner does not have, and a grace that leaves no epoch to judge."""
    if name in ("none", "median"):
        for option in ("reduction", "bootstrap"):
            if given.get(option) is not None:
                raise DropcliError(f"--{option} is a setting of the asha and hyperband pruners, not of --pruner {name}")
    if name != "none" and pruning.grace is not None and grace_epochs(pruning, config, max_epochs) >= max_epochs:
        raise DropcliError(
            f"--grace {pruning.grace:g}: trials train {max_epochs} epochs and are never judged at the last, "
            f"so the grace must end before it; give fewer epochs or --pruner none"
        )


def default_grace(config: Config, max_epochs: int) -> int:
    """The first epoch a trial may be judged at: after the warm-up and the momentum ramp (their
    schedule has then taken effect), and not before a quarter of the epochs."""
    optim = config.optim
    ramp = max(optim.warmup_epochs, optim.momentum_epochs if optim.momentum_final is not None else 0)
    return max(ramp + 1 if ramp else 1, math.ceil(max_epochs / 4))


def grace_epochs(pruning: Pruning, config: Config, max_epochs: int) -> int:
    """The grace period in epochs: the first epoch a trial may be judged at."""
    if pruning.grace is None:
        return default_grace(config, max_epochs)
    if pruning.grace < 1:
        return max(1, math.ceil(pruning.grace * max_epochs))
    return int(pruning.grace)


def pruner(optuna, name: str, pruning: Pruning, config: Config, max_epochs: int):
    """Optuna's pruner, its first rung at the grace period, blind to the rung values of trials
    that were interrupted and continued by another (which would count twice)."""
    grace = grace_epochs(pruning, config, max_epochs)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=grace)
    if name == "asha":
        # Rungs at epochs grace, grace*r, grace*r^2, ...: at each, a trial goes on if in the top 1/r so far.
        blind = _blind_to_interrupted(optuna.pruners.SuccessiveHalvingPruner)
        return blind(min_resource=grace, reduction_factor=pruning.reduction, bootstrap_count=pruning.bootstrap)
    if name == "hyperband":
        blind = _blind_to_interrupted(optuna.pruners.HyperbandPruner)
        return blind(
            min_resource=grace, max_resource=max_epochs, reduction_factor=pruning.reduction, bootstrap_count=pruning.bootstrap
        )
    return optuna.pruners.NopPruner()


def complete_fraction(name: str, pruning: Pruning, config: Config, max_epochs: int) -> float:
    """About the share of trials that reach their last epoch: 1/r per rung before it (asha,
    hyperband's most aggressive bracket); the median pruner keeps about half at its rungs."""
    if name not in ("asha", "hyperband"):
        return 1.0 if name == "none" else 0.5
    grace, rungs = grace_epochs(pruning, config, max_epochs), 0
    while grace * pruning.reduction**rungs < max_epochs:
        rungs += 1
    return pruning.reduction**-rungs


class _Trials:
    """A storage as a pruner sees it: every trial but those interrupted (tune_search.interrupted),
    whose rung values their continuation records again."""

    def __init__(self, storage):
        self._inner = storage

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def get_all_trials(self, study_id, deepcopy=True, states=None):
        trials = self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        return [t for t in trials if not (t.state.name == "FAIL" and t.user_attrs.get("interrupted"))]


@functools.cache
def _blind_to_interrupted(pruner_class):
    """Optuna's pruner class, judging against the study less its interrupted trials (a subclass, so
    that Optuna still sees a HyperbandPruner and lets the sampler learn bracket by bracket)."""

    def prune(self, study, trial) -> bool:
        from optuna.study import Study  # the plain study: Hyperband makes its bracket's view of it

        view = Study(study.study_name, storage=_Trials(study._storage), sampler=study.sampler, pruner=study.pruner)
        return pruner_class.prune(self, view, trial)

    return type(f"Blind{pruner_class.__name__}", (pruner_class,), {"prune": prune})


def rung_epochs(name: str, pruning: Pruning, config: Config, max_epochs: int) -> list[int]:
    """The epochs a trial is judged at before its last: asha's and hyperband's rungs (grace times
    powers of the reduction factor), the median pruner's grace period; for no pruner, the
    quarters of the schedule (what a pruner might have judged at)."""
    if name not in ("asha", "hyperband", "median"):
        return sorted({max(1, math.ceil(max_epochs * k / 4)) for k in (1, 2, 3)} - {max_epochs})
    grace = grace_epochs(pruning, config, max_epochs)
    if name == "median":
        return [grace] if grace < max_epochs else []
    epochs, rung = [], 0
    while grace * pruning.reduction**rung < max_epochs:
        epochs.append(grace * pruning.reduction**rung)
        rung += 1
    return epochs


@dataclass(frozen=True)
class RungAgreement:
    """How well a rung's validation accuracy ranked the study's complete trials by their final one."""

    epoch: int
    trials: int  # complete trials with a value at this epoch
    spearman: float | None  # rank correlation; None with fewer than 3 trials or no spread


def rung_agreement(curves: list[dict[int, float]], final: list[float], epochs: list[int]) -> list[RungAgreement]:
    """For each epoch: the rank correlation between the trials' values at it and their final values."""
    rows = []
    for epoch in epochs:
        pairs = [(curve[epoch], value) for curve, value in zip(curves, final, strict=True) if epoch in curve]
        rows.append(RungAgreement(epoch, len(pairs), spearman([a for a, _ in pairs], [b for _, b in pairs])))
    return rows


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (ties at their mean rank); None where it is undefined."""
    if len(xs) < 3:
        return None
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2
        start = end + 1
    return ranks
