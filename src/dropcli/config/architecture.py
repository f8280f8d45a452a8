"""The MLP's shape in the config: `model.hidden` (widths) and `model.dropout` (a rate per layer).

`model.hidden` is a list of widths, one per hidden layer, written `[1024, 1024, 1024]` in YAML
or `1024x1024x1024` on the command line (one width alone, `2048`, is a one-layer net).
`model.dropout` is one rate per hidden layer, or one number for all of them.

The keys of dropcli's first versions stay as aliases that name one place in the lists:
`model.hidden_1` is `model.hidden[0]`, `model.dropout_2` is `model.dropout[1]`, and so on. They
are accepted wherever a key is (YAML, `--set`, `--grid`, `runs --where`); what dropcli writes
always holds the lists. This module does not import torch.
"""

import re
from collections.abc import Sequence
from typing import Any

import yaml

from dropcli.errors import DropcliError

DEFAULT_HIDDEN = (256, 256)
DEFAULT_RATE = 0.5
# alias -> (list key, index)
ALIASES = {"hidden_1": ("hidden", 0), "hidden_2": ("hidden", 1), "dropout_1": ("dropout", 0), "dropout_2": ("dropout", 1)}
LIST_KEYS = ("hidden", "dropout")
WIDTHS_TEXT = re.compile(r"\s*\d+(\s*x\s*\d+)*\s*")
# Far above any net that fits in memory, and below what would overflow an int in a message.
MAX_LAYERS = 1000


def _rates_clash(rates: list, hidden: list, origin: dict[str, str], source) -> DropcliError:
    """The error for as many rates as layers, naming the source that set the later of the two
    keys (origin holds keys in the order they were last set): with -c a.yaml -c b.yaml, b's
    model.hidden when b changed the depth under a's rates."""
    layers = f"{len(hidden)} hidden layer{'s' if len(hidden) != 1 else ''}"
    fix = "give one rate per hidden layer, or one number for all, e.g. model.dropout=0.5"
    order = list(origin)
    hidden_later = "model.hidden" in origin and (
        "model.dropout" not in origin or order.index("model.hidden") > order.index("model.dropout")
    )
    if hidden_later and source("hidden") != source("dropout"):
        return DropcliError(
            f"{source('hidden')}: model.hidden {short(tuple(hidden))} ({layers}) leaves {len(rates)} rates in "
            f"model.dropout (set by {source('dropout')}); {fix}"
        )
    where = f", set by {source('hidden')}" if "model.hidden" in origin and source("hidden") != source("dropout") else ""
    return DropcliError(
        f"{source('dropout')}: model.dropout has {len(rates)} rates for {layers} (model.hidden {short(tuple(hidden))}{where}); {fix}"
    )


def resolve(raw: dict[str, Any], origin: dict[str, str], default_source: str) -> dict[str, Any]:
    """The model section with `hidden` and `dropout` as tuples and no aliases.

    Missing keys take the defaults (two layers of 256, 0.5 for every layer); one rate stands for
    every layer; an alias sets its place in the list. Raises DropcliError naming the key.
    """

    def source(key: str) -> str:
        return origin.get(f"model.{key}", default_source)

    resolved = {key: value for key, value in raw.items() if key not in ALIASES}
    hidden = list(parse_widths(raw.get("hidden", DEFAULT_HIDDEN), source("hidden")))
    _apply_aliases(raw, "hidden", hidden, source, lambda value, key: _width(value, f"model.{key}", source(key)))
    rates_given = raw.get("dropout", DEFAULT_RATE)
    if _is_number(rates_given):
        rates = list(every_layer(rates_given, len(hidden)))
    elif isinstance(rates_given, (list, tuple)) and rates_given and all(_is_number(rate) for rate in rates_given):
        rates = list(rates_given)
        if len(rates) != len(hidden):
            raise _rates_clash(rates, hidden, origin, source)
    else:
        raise DropcliError(
            f"{source('dropout')}: model.dropout must be a number or a list of numbers, one per hidden layer, got {rates_given!r:.60}"
        )
    _apply_aliases(raw, "dropout", rates, source, lambda value, key: _rate(value, f"model.{key}", source(key)))
    resolved["hidden"], resolved["dropout"] = tuple(hidden), tuple(float(rate) for rate in rates)
    return resolved


def set_in_section(model: dict[str, Any], key: str, value: Any) -> None:
    """Set `hidden`, `dropout` or an alias of a place in them in a raw model section. A whole
    list set later replaces what aliases set earlier (later sources win, as for any key)."""
    if key in LIST_KEYS:
        for alias, (target, _) in ALIASES.items():
            if target == key:
                model.pop(alias, None)
    model[key] = value


def _apply_aliases(raw: dict[str, Any], list_key: str, values: list, source, check) -> None:
    for alias, (target, index) in ALIASES.items():
        if target != list_key or alias not in raw:
            continue
        if index >= len(values):
            raise DropcliError(
                f"{source(alias)}: model.{alias} names hidden layer {index + 1}, but model.hidden has {len(values)}; "
                f"set model.{list_key} as a list instead"
            )
        values[index] = check(raw[alias], alias)


def command_line_value(key: str, text: str) -> Any:
    """A value as --set, --grid and --where give it: YAML, except that widths for model.hidden
    such as 1024x1024 stay text for parse_widths (YAML would read 0x10 as the number 16).
    Raises yaml.YAMLError for text that is not YAML."""
    if key == "model.hidden" and WIDTHS_TEXT.fullmatch(text):
        return text
    return yaml.safe_load(text) if text.strip() else None


def parse_widths(value: Any, source: str) -> tuple[int, ...]:
    """[1024, 1024], (1024, 1024), "1024x1024" or 2048 -> a tuple of widths (not yet range-checked)."""
    if isinstance(value, str) and WIDTHS_TEXT.fullmatch(value):
        value = [int(part) for part in value.split("x")]
    elif _is_int(value):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(_is_int(width) for width in value):
        raise DropcliError(
            f"{source}: model.hidden must be hidden-layer widths, e.g. [1024, 1024, 1024] in YAML or 1024x1024x1024 "
            f"on the command line, got {value!r:.60}"
        )
    if not value:
        raise DropcliError(f"{source}: model.hidden must name at least one hidden layer, e.g. [256, 256] or 256x256")
    if len(value) > MAX_LAYERS:
        raise DropcliError(f"{source}: model.hidden has {len(value)} layers; at most {MAX_LAYERS}")
    return tuple(value)


def _width(value: Any, key: str, source: str) -> int:
    if not _is_int(value):
        raise DropcliError(f"{source}: {key} must be an integer, got {value!r:.60}")
    return value


def _rate(value: Any, key: str, source: str) -> float:
    if not _is_number(value):
        raise DropcliError(f"{source}: {key} must be a number, got {value!r:.60}")
    return float(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def short(value: Any) -> str:
    """A value as tables and directory names show it: widths as 1024x1024x1024, other lists
    as 0.2,0.5, anything else as str()."""
    if isinstance(value, (list, tuple)) and value and all(_is_int(item) for item in value):
        return "x".join(str(item) for item in value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def every_layer(rates: float | Sequence[float], depth: int) -> tuple[float, ...]:
    """`model.dropout` as one rate per hidden layer: one number stands for every layer."""
    if _is_number(rates):
        return (float(rates),) * depth
    return tuple(float(rate) for rate in rates)


def shared_rate(rates: Sequence[float]) -> float | None:
    """The one rate every layer has, or None where the layers differ."""
    return rates[0] if rates and len(set(rates)) == 1 else None


def list_place(key: str) -> tuple[str, int | None]:
    """The old keys are places in today's lists: ("model.hidden", 0) for "model.hidden_1";
    (key, None) for any other key."""
    section, _, name = key.rpartition(".")
    if section != "model" or name not in ALIASES:
        return key, None
    list_key, place = ALIASES[name]
    return f"model.{list_key}", place
