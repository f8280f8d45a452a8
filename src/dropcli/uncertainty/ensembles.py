"""The runs `evaluate` scores together: one run, or a deep ensemble of runs that differ only in seed.

A target is a checkpoint file, a run directory (its last.pt), or an experiment directory
(compare or sweep): its trials, which must then be one cell's seeds.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dropcli import runs
from dropcli.config import Config, flatten, load_config, to_dict
from dropcli.errors import DropcliError
from dropcli.experiments import PLAN_FILE
from dropcli.runs import checkpoints

# Keys that may differ between the members of an ensemble: what a seed changes, and where it ran.
FREE_KEYS = ("seed", "name", "device")


@dataclass
class Member:
    checkpoint: Path
    config: Config
    epoch: int
    model: torch.nn.Module  # on the evaluation device, in eval mode
    payload: dict[str, Any]  # the checkpoint as read


def checkpoints_of(targets: list[Path]) -> list[Path]:
    """The run directories and checkpoint files `targets` name, in order; an experiment
    directory gives its trials'."""
    found = []
    for target in targets:
        if (target / PLAN_FILE).is_file():
            trials = sorted(path for path in target.iterdir() if (path / runs.LAST_CHECKPOINT).is_file())
            if not trials:
                raise DropcliError(f"{target}: an experiment directory without finished trials; train them first")
            found += trials
        else:
            found.append(target)
    return found


def load(targets: list[Path], flags: dict[str, tuple[str, Any]]) -> list[Member]:
    """Every target's model on the device the first run's config (after `flags`) names.

    Raises DropcliError if a checkpoint cannot be read, or the runs differ in more than the seed.
    """
    from dropcli.parallel.workers import Workers
    from dropcli.uncertainty.evaluation import load_target

    # A run directory means its last.pt; the error names best.pt where only that one is readable.
    paths, payloads = zip(*(load_target(target) for target in checkpoints_of(targets)))
    configs = [load_config(base=payload["config"], flags=flags) for payload in payloads]
    check_same_recipe(paths, configs, [payload["epoch"] for payload in payloads])
    device = Workers().device(configs[0].device)
    members = []
    for path, payload, config in zip(paths, payloads, configs):
        members.append(Member(path, config, payload["epoch"], checkpoints.load_model(payload, device), payload))
    return members


def check_same_recipe(paths: list[Path], configs: list[Config], epochs: list[int]) -> None:
    """Refuse runs that differ in anything but the seed: other data, settings or epochs trained."""
    if len(paths) != len(set(map(str, paths))):
        raise DropcliError("a run is named twice; an ensemble takes each run once")
    first = flatten(to_dict(configs[0]))
    for path, config, epoch in zip(paths[1:], configs[1:], epochs[1:]):
        other = flatten(to_dict(config))
        keys = [key for key in first if key.split(".")[0] not in FREE_KEYS and first[key] != other.get(key)]
        where = f"{paths[0]} and {path}"
        data_keys = [key for key in keys if key.startswith("data.")]
        if data_keys:
            key = data_keys[0]
            raise DropcliError(
                f"runs on different data sets ({key}: {first[key]} vs {other.get(key)} in {where}); an ensemble needs one data set (--data-dir sets it for all)"
            )
        if keys:
            key = keys[0]
            raise DropcliError(
                f"runs differ in more than the seed ({key}: {first[key]} vs {other.get(key)} in {where}); an ensemble takes one cell's seeds"
            )
        if epoch != epochs[0]:
            raise DropcliError(
                f"runs differ in more than the seed (epochs trained: {epochs[0]} vs {epoch} in {where}); an ensemble takes one cell's seeds"
            )
    seeds = [config.seed for config in configs]
    if len(set(seeds)) != len(seeds):
        raise DropcliError(f"two runs share a seed ({', '.join(map(str, seeds))}); an ensemble's members differ in seed")
