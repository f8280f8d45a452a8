"""What a tune trial is scored by, on the validation split: --objective accuracy (the default),
nll, ece (equal-width bins), aece (equal-mass bins), or several at once (accuracy,ece), which
makes the study multi-objective: its answer is a Pareto front, and best.yaml is the point of it
that --pick names.

Accuracy and NLL are known after every epoch, so a study of one of them alone can be pruned;
ECE is scored once, after a trial's last epoch, and Optuna cannot prune a study of several
objectives: there the pruner is off, and one asked for by name is refused.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dropcli.errors import DropcliError

DIRECTIONS = {"accuracy": "maximize", "nll": "minimize", "ece": "minimize", "aece": "minimize"}
PER_EPOCH = {"accuracy": "val_acc", "nll": "val_loss"}  # the epoch's metric a pruner is told
SHOWN = {"accuracy": "val acc", "nll": "val NLL", "ece": "val ECE", "aece": "val adaptive ECE"}
SCORES_ATTR = "scores"  # a trial's scores on the validation split, every objective's
# scorer(model, X, y) -> {"accuracy", "nll", "ece", "aece"}: the command line passes the
# uncertainty layer's, which sits above this one.
Scorer = Callable[[Any, Any, Any], dict[str, float]]


@dataclass(frozen=True)
class Pick:
    """--pick: a trial of the front by number, the best on one objective, or the best on the
    first objective among the points within a bound on another (`ece<=0.03`)."""

    number: int | None = None
    objective: str | None = None
    bound: float | None = None

    def text(self, objectives: tuple[str, ...]) -> str:
        if self.number is not None:
            return f"trial {self.number}, named by --pick"
        if self.bound is not None:
            return f"the best {objectives[0]} on the front with {self.objective} <= {self.bound:g}"
        return f"the best {self.objective or objectives[0]} on the front"


def parse(text: Any, where: str = "--objective") -> tuple[str, ...]:
    """accuracy, or several names joined by commas; each known, none twice."""
    if text is None:
        return ("accuracy",)
    names = tuple(part.strip() for part in (text if isinstance(text, list) else str(text).split(",")))
    for name in names:
        if name not in DIRECTIONS:
            raise DropcliError(
                f"{where} {text!r}: {name!r} is not an objective; choose from {', '.join(DIRECTIONS)}, or several joined by commas"
            )
    if len(set(names)) != len(names):
        raise DropcliError(f"{where} {text!r}: name each objective once")
    return names


def prunable(objectives: tuple[str, ...]) -> bool:
    return len(objectives) == 1 and objectives[0] in PER_EPOCH


def pruner_for(objectives: tuple[str, ...], pruner: str | None, where: str = "--pruner") -> str:
    """The pruner to use: as given (asha by default: make bench-tune) where Optuna can prune, else none; a pruner
    named for objectives it cannot prune is refused."""
    if prunable(objectives):
        return pruner or "asha"
    if pruner not in (None, "none"):
        why = (
            "a study of several objectives" if len(objectives) > 1 else f"{objectives[0]}, scored once after a trial's last epoch"
        )
        raise DropcliError(f"{where} {pruner}: Optuna cannot prune {why}; leave {where} out or give {where} none")
    return "none"


def parse_pick(text: str | None, objectives: tuple[str, ...]) -> Pick | None:
    if text is None:
        return None
    text = text.strip()
    if text.isdigit():
        return Pick(number=int(text))
    match = re.fullmatch(r"(\w+)\s*(<=\s*([0-9.eE+-]+))?", text)
    if match is None or match.group(1) not in objectives:
        raise DropcliError(
            f"--pick {text!r}: give a trial number of the front, an objective of the study ({', '.join(objectives)}), "
            f"or a bound on one, e.g. --pick {objectives[-1]}<=0.03"
        )
    bound = None
    if match.group(3) is not None:
        try:
            bound = float(match.group(3))
        except ValueError:
            raise DropcliError(f"--pick {text!r}: the bound must be a number, e.g. --pick {match.group(1)}<=0.03") from None
    return Pick(objective=match.group(1), bound=bound)


def values(objectives: tuple[str, ...], final: dict[str, Any], scores: dict[str, float] | None) -> list[float]:
    """A finished trial's values, objective by objective: accuracy and NLL from its last epoch
    (what its pruner was told), ECE from its scores."""
    by_name = {
        "accuracy": final["val_acc"],
        "nll": final["val_loss"],
        **{k: v for k, v in (scores or {}).items() if k in ("ece", "aece")},
    }
    return [by_name[name] for name in objectives]


def better(objective: str, a: float, b: float) -> bool:
    return a > b if DIRECTIONS[objective] == "maximize" else a < b


def front(points: list[tuple[int, list[float]]], objectives: tuple[str, ...]) -> list[tuple[int, list[float]]]:
    """The points (trial number, values) no other point dominates: as good on every objective and better on one."""

    def dominates(a: list[float], b: list[float]) -> bool:
        no_worse = all(not better(name, y, x) for name, x, y in zip(objectives, a, b))
        return no_worse and any(better(name, x, y) for name, x, y in zip(objectives, a, b))

    return sorted((p for p in points if not any(dominates(q[1], p[1]) for q in points)), key=lambda p: p[0])


def picked(
    points: list[tuple[int, list[float]]], objectives: tuple[str, ...], pick: Pick | None
) -> tuple[int, list[float]] | None:
    """The point of the front that --pick names (by default the best on the first objective)."""
    pick = pick or Pick()
    if pick.number is not None:
        chosen = [p for p in points if p[0] == pick.number]
        if not chosen:
            raise DropcliError(
                f"--pick {pick.number}: trial {pick.number} is not on the front ({', '.join(str(p[0]) for p in points)})"
            )
        return chosen[0]
    index = objectives.index(pick.objective) if pick.objective else 0
    if pick.bound is not None:
        within = [p for p in points if p[1][index] <= pick.bound]
        if not within:
            return None
        points, index = within, 0
    key = points[0] if points else None
    for point in points[1:]:
        if better(objectives[index], point[1][index], key[1][index]):
            key = point
    return key
