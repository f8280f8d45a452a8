"""Past runs side by side: filter, sort, the settings that tell them apart, and a diff of two.

What `dropcli runs` shows. Works on runs.RunInfo; reads nothing itself.
"""

import math
from typing import Any

import yaml

from dropcli.config import Config, architecture, get, replace, typed_value
from dropcli.config.vocabulary import higher_is_better
from dropcli.errors import DropcliError
from dropcli.runs import STATUSES, RunInfo

METRICS = ("test_acc", "test_loss", "train_acc", "train_loss", "val_acc", "val_loss", "epoch", "seconds")


def differing_keys(infos: list[RunInfo]) -> list[str]:
    """The config keys whose values are not the same in every listed run (data.root aside: where
    the data lies is not a setting)."""
    readable = [info for info in infos if info.settings]  # an unreadable config tells nothing apart
    keys = list(dict.fromkeys(key for info in readable for key in info.settings))
    return [key for key in keys if key != "data.root" and len({_text(info.settings.get(key)) for info in readable}) > 1]


def where(infos: list[RunInfo], conditions: list[str], status: str | None) -> list[RunInfo]:
    """The runs whose settings match every KEY=VALUE condition, and `status`.

    Values are read as the config reads them (5e-2 is 0.05, yes is true), so a condition means
    what the same --set would; an unknown key, a value its key cannot hold, or an unknown status
    is refused."""
    parsed = [_condition(text) for text in conditions]
    if status is not None and status not in STATUSES:
        raise DropcliError(f"--status {status!r}: a run's status is one of {', '.join(STATUSES)}")
    return [
        info
        for info in infos
        if (status is None or _status_word(info.status) == status)
        and all(_same(setting(info, key), value) for key, value in parsed)
    ]


def _status_word(status: str) -> str:
    """ "unreadable: why" -> "unreadable"; "summary missing (...)" -> "summary missing"."""
    return status.split(":")[0].split(" (")[0]


def setting(info: RunInfo, key: str) -> Any:
    """One config key of a run; an old key (model.dropout_1) gives its place in today's list."""
    key, place = architecture.list_place(key)
    value = info.settings.get(key, _MISSING)
    if place is None:
        return value
    return value[place] if isinstance(value, list) and place < len(value) else _MISSING


def sort(infos: list[RunInfo], key: str) -> list[RunInfo]:
    """Best first: accuracies high to low, losses and anything else low to high; runs without it last.
    A list (model.hidden 256x256) sorts place by place, and a word or a truth value by its text."""
    descending = higher_is_better(key)

    def value(info: RunInfo) -> tuple[int, Any]:
        found = info.final.get(key) if key in METRICS else setting(info, key)
        if found is _MISSING or found is None or (isinstance(found, float) and math.isnan(found)):
            return (3, 0)
        if _is_number(found):
            return (0, -found if descending else found)
        if isinstance(found, list) and all(_is_number(item) for item in found):
            return (1, tuple(found))
        return (2, str(found))

    if key not in METRICS and all(setting(info, key) is _MISSING for info in infos):
        raise DropcliError(f"--sort {key}: not a metric ({', '.join(METRICS)}) or a config key of these runs")
    return sorted(infos, key=value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def records(infos: list[RunInfo], keys: list[str], root) -> list[dict[str, Any]]:
    """One flat record per run, for --json and --csv."""
    return [
        {
            "run": str(info.path.relative_to(root)),
            "status": info.status,
            "epochs": info.epochs_done,
            **{name: info.final.get(name) for name in METRICS if name in info.final},
            **{key: info.settings.get(key) for key in keys},
        }
        for info in infos
    ]


def diff(first: RunInfo, second: RunInfo) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
    """(config keys that differ, final metrics) of two runs, each as (name, first, second).

    A run whose files cannot be read is refused: it is never "the same as" another."""
    for info in (first, second):
        if info.status.startswith("unreadable"):
            raise DropcliError(
                f"--diff {info.path}: {info.status.removeprefix('unreadable: ')}; fix or remove that file to compare"
            )
    settings = [(key, first.settings.get(key), second.settings.get(key)) for key in differing_keys([first, second])]
    metrics = [
        (name, first.final.get(name), second.final.get(name)) for name in METRICS if name in first.final or name in second.final
    ]
    return settings, metrics


_MISSING = object()


def _condition(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise DropcliError(f"bad --where {text!r}: expected KEY=VALUE, e.g. --where model.kind=scratch")
    key = key.strip()
    try:
        loaded = architecture.command_line_value(key, value)
    except yaml.YAMLError:
        raise DropcliError(f"bad --where {text!r}: the value is not a YAML scalar") from None
    if architecture.list_place(key)[0] in ARCHITECTURE_KEYS:
        return key, _architecture_value(key, loaded, f"--where {text}")
    return key, typed_value(key, loaded, f"--where {text}")


ARCHITECTURE_KEYS = ("model.hidden", "model.dropout")


def _architecture_value(key: str, value: Any, source: str) -> Any:
    """Widths or rates as the config would hold them, checked as --set checks them (widths >= 1,
    rates in [0, 1], model.hidden as 1024x1024); one rate stays one number, which matches a run
    whose every layer has it."""
    base = Config()
    if key == "model.dropout" and isinstance(value, list):
        base = replace(base, "model.hidden", [1] * len(value), source)  # a depth the rates fit
    checked = get(replace(base, key, value, source), key)
    if isinstance(checked, tuple):
        return list(checked) if key == "model.hidden" or isinstance(value, list) else checked[0]
    return checked


def _same(found: Any, wanted: Any) -> bool:
    if isinstance(found, list):
        # A list of rates matches one number when every layer has it; lists match item by item.
        wanted_items = wanted if isinstance(wanted, list) else [wanted] * len(found)
        return len(wanted_items) == len(found) and all(_same(a, b) for a, b in zip(found, wanted_items))
    if isinstance(found, (int, float)) and isinstance(wanted, (int, float)) and not isinstance(found, bool):
        return math.isclose(found, wanted) or _as_shown(found, wanted)
    return found == wanted


def _as_shown(found: float, wanted: float) -> bool:
    """A value written as `dropcli runs` shows it (4 significant figures) matches the setting
    shown so: a tuned rate of 0.0638612... is found by --where optim.lr=0.06386."""
    shown = f"{wanted:.4g}"
    return float(shown) == wanted and f"{found:.4g}" == shown


def _text(value: Any) -> str:
    return repr(value)
