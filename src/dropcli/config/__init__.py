"""Hyperparameters: a frozen dataclass tree, loaded from YAML and validated once.

Precedence, lowest first: the defaults below < the YAML file < `--set key.path=value`
< dedicated flags (`--model`, `--device`, `--seed`). The defaults are the d2l chapter's.
This module does not import torch, so `dropcli config show` and `--help` start fast.
"""

import copy
import dataclasses
import difflib
import re
import reprlib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from dropcli.config import architecture, validation, yamlfile
from dropcli.config.architecture import DEFAULT_HIDDEN, DEFAULT_RATE
from dropcli.config.shipped import resolve_path
from dropcli.errors import DropcliError


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "scratch"
    hidden: tuple[int, ...] = DEFAULT_HIDDEN  # the hidden layers' widths (see architecture.py)
    dropout_input: float = 0.0  # noise of the model's kind on the 784 inputs (Srivastava et al. 2014)
    dropout: tuple[float, ...] = (DEFAULT_RATE,) * len(DEFAULT_HIDDEN)  # after each hidden layer; one number for all
    mask_mode: str = "int16"  # see vocabulary.MASK_MODES

    def __post_init__(self):
        # Built in code (tests, benchmarks) rather than loaded: one rate stands for every layer.
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "dropout", architecture.every_layer(self.dropout, len(self.hidden)))


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 0.0  # L2 penalty (decoupled for adamw)
    momentum: float = 0.0  # sgd only
    nesterov: bool = False  # sgd only
    # The paper's momentum warm-up: momentum rises linearly to momentum_final over momentum_epochs.
    momentum_final: float | None = None
    momentum_epochs: int = 0
    betas: tuple[float, float] = (0.9, 0.999)  # adam and adamw only
    max_norm: float | None = None  # after each step, each hidden unit's incoming weights rescaled to norm <= max_norm
    schedule: str = "constant"  # see vocabulary.SCHEDULES
    warmup_epochs: int = 0  # linear warm-up from lr / (warmup_epochs + 1); onecycle's rise
    step_epochs: int = 30  # step schedule: multiply by step_gamma every step_epochs epochs
    step_gamma: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    monitor: str = "auto"  # see vocabulary.MONITORS
    precision: str = "fp32"  # see vocabulary.PRECISIONS
    compile: bool = False  # torch.compile the model (skipped with a warning where it cannot run)
    engine: str = "autograd"  # how a step is computed: see vocabulary.ENGINES
    # Stop after this many epochs without improvement on validation, reporting the best epoch; None: never.
    early_stopping: int | None = None
    label_smoothing: float = 0.0  # training targets: 1 - e on the true class, e spread over all (evaluation: plain)
    average: str = "none"  # the weights evaluated and saved as the run's model: vocabulary.AVERAGES
    ema_decay: float = 0.999  # ema: the weight of the average so far at each step
    swa_start: int | None = None  # swa: the first epoch averaged; None: the start of the last quarter


@dataclass(frozen=True)
class AugmentConfig:
    # Per batch, on the training device: shift each image by up to `shift` pixels each way
    # (zeros fill in), and mirror it left-right with probability 0.5 when `flip`.
    shift: int = 0
    flip: bool = False


@dataclass(frozen=True)
class DataConfig:
    name: str = "fashion-mnist"  # see vocabulary.DATA_SETS
    root: str | None = None
    val_split: float = 0.0
    # Which examples the validation split holds: drawn with this seed, or with the run's seed when
    # None. A fixed value gives the runs of an ensemble one shared held-out set (no bagging).
    val_seed: int | None = None
    # Use only the first N examples of a split: for quick runs and CI smoke tests.
    train_limit: int | None = None
    test_limit: int | None = None
    # Only these classes' examples, labels unchanged (the rest held out: evaluate --ood heldout). None: all.
    classes: tuple[int, ...] | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class MetricsConfig:
    activation_stats: bool = False  # per epoch and noise layer: activation variance before/after, zeros (costs a little)
    tensorboard: bool = False  # also TensorBoard event files in the run directory (needs dropcli[tensorboard])
    flip_average: bool = False  # also score each epoch with test-time flip averaging, beside the plain accuracy


@dataclass(frozen=True)
class Config:
    name: str = "default"
    seed: int = 0
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


def load_config(
    path: Path | str | list[Path | str] | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    flags: dict[str, tuple[str, Any]] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Build the run's Config from defaults, a YAML file, `--set` strings and flags.

    `flags` maps key paths to (option name, value), e.g. {"model.kind": ("--model", "builtin")};
    None values are ignored. `base` (a saved config as a dict) may stand in for the file.
    Raises DropcliError naming the source and key of the first problem found.
    """
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    paths = [resolve_path(p) for p in ([path] if isinstance(path, (str, Path)) else path or [])]
    if paths:  # several files merge in order, a later file's keys winning (as --set's do)
        path, raw = paths[-1], read_yaml(paths[0])
        origin = {key: str(paths[0]) for key in flatten(raw)}
        for later, (key, value) in ((file, item) for file in paths[1:] for item in flatten(read_yaml(file)).items()):
            _set_path(raw, key, value, source=str(later))
            origin.pop(key, None)  # origin's order is the order keys were last set: a clash names the later
            origin[key] = str(later)
        origin.update({architecture.list_place(key)[0]: origin[key] for key in list(origin)})
        raw.setdefault("name", path.stem)
    elif base is not None:
        raw = validation.as_today(copy.deepcopy(base))
    for text in overrides:
        key, value = _parse_override(text)
        _set_path(raw, key, value, source=f"--set {text}")
        origin.pop(key, None)
        origin[key] = origin[architecture.list_place(key)[0]] = f"--set {text}"  # errors about a list name what set its place
    for key, (option, value) in (flags or {}).items():
        if value is not None:
            _set_path(raw, key, value, source=option)
            origin[key] = option
    config = _build(Config, raw, prefix="", origin=origin, default_source=str(path or "config"))
    _check_ranges(config, origin)
    return config


def upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """A config saved by any version of dropcli as today's full dict (old keys mapped, keys added
    since then at their defaults); `raw` itself where it does not load."""
    try:
        return to_dict(load_config(base=raw))
    except DropcliError:
        return raw


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose values differ between two configs."""
    old_values, new_values = flatten(to_dict(old)), flatten(to_dict(new))
    return [key for key in old_values if old_values[key] != new_values[key]]


def flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"kind": "scratch"}} -> {"model.kind": "scratch"}."""
    flat = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{"model.kind": "scratch"} -> {"model": {"kind": "scratch"}}: flatten's inverse."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def to_dict(config: Config) -> dict[str, Any]:
    """The config as plain nested dicts and lists, in field order (for YAML, JSON and checkpoints)."""
    return dataclasses.asdict(config, dict_factory=lambda items: {key: _plain(value) for key, value in items})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False)  # block style: no [..] or {..}


def replace(config: Config, key: str, value: Any, source: str | None = None) -> Config:
    """A copy of `config` with one dotted key changed, validated like any other.

    Errors name `source` (default: the key) as where the value came from.
    """
    source = source or key
    raw = to_dict(config)
    shared = architecture.shared_rate(config.model.dropout)
    if key == "model.hidden" and shared is not None:
        # One rate for every layer follows the new depth: a sweep over architectures keeps it.
        raw["model"]["dropout"] = shared
    _set_path(raw, key, value, source=source)
    origin = {key: source, architecture.list_place(key)[0]: source}
    updated = _build(Config, raw, prefix="", origin=origin, default_source=source)
    _check_ranges(updated, origin)
    return updated


def typed_value(key: str, value: Any, source: str) -> Any:
    """`value` as the config would hold it at `key` (5e-2 -> 0.05, 1 -> 1.0 for a float key);
    DropcliError, with a did-you-mean, for an unknown key or a value the key cannot take.
    Ranges are not checked: this types a value to compare with, not a setting."""
    return _coerce(value, field_type(key, source), key, source)


def field_type(key: str, source: str) -> Any:
    """The type annotation of a dotted key, e.g. float | None; DropcliError (with a did-you-mean)
    naming `source` for an unknown key or a section."""
    _set_path({}, key, None, source)
    list_key, place = architecture.list_place(key)
    if place is not None:  # model.hidden_1: an item of model.hidden
        return get_args(field_type(list_key, source))[0]
    node: Any = Config
    for part in key.split("."):
        node = get_type_hints(node)[part]
    if dataclasses.is_dataclass(node):
        raise DropcliError(
            f"{source}: {key} is a section, not a value; name one of its keys, e.g. {key}.{dataclasses.fields(node)[0].name}"
        )
    return node


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping ({} when empty), checked as a config file is."""
    data = yamlfile.read(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DropcliError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
        raise DropcliError(f"bad --set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set optim.lr=0.05")
    try:
        return key, architecture.command_line_value(key, value)
    except yaml.YAMLError:
        raise DropcliError(f"bad --set {text!r}: the value is not a valid YAML scalar") from None


def _set_path(raw: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Set raw[a][b] = value for key "a.b", checking each part against the Config tree."""
    node_type: Any = Config
    node = raw
    parts = key.split(".")
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(node_type)]
        if (
            node_type is ModelConfig
            and depth == len(parts) - 1
            and (part in architecture.ALIASES or part in architecture.LIST_KEYS)
        ):
            architecture.set_in_section(node, part, value)
            return
        if part not in names:
            prefix = ".".join(parts[:depth])
            raise DropcliError(f"{source}: {_unknown_key_message(part, names, prefix)}")
        field_type = get_type_hints(node_type)[part]
        if depth == len(parts) - 1:
            node[part] = value
            return
        if not dataclasses.is_dataclass(field_type):
            raise DropcliError(f"{source}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node, node_type = child, field_type


def _build(cls: type, raw: Any, prefix: str, origin: dict[str, str], default_source: str) -> Any:
    section = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        source = origin.get(prefix.rstrip("."), default_source)
        raise DropcliError(f"{source}: {section} must be a mapping, got {_short(raw)}")
    if cls is ModelConfig:
        raw = architecture.resolve(raw, origin, default_source)
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            source = origin.get(prefix + str(key), default_source)
            raise DropcliError(f"{source}: {_unknown_key_message(str(key), names, prefix.rstrip('.'))}")
    values = {}
    for name in names:
        if name not in raw:
            continue
        key = prefix + name
        if dataclasses.is_dataclass(hints[name]):
            values[name] = _build(hints[name], raw[name], key + ".", origin, default_source)
        else:
            values[name] = _coerce(raw[name], hints[name], key, origin.get(key, default_source))
    return cls(**values)


def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    """Check `value` against a field's type; ints are accepted where a float is expected."""
    if get_origin(annotation) is tuple and get_args(annotation)[-1] is Ellipsis:
        # model.hidden and model.dropout: architecture.resolve has made them tuples already.
        return tuple(_coerce(item, get_args(annotation)[0], key, source) for item in value)
    if get_origin(annotation) is tuple:
        kinds = get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(kinds):
            raise DropcliError(f"{source}: {key} must be a list of {len(kinds)} numbers, e.g. [0.9, 0.999], got {_short(value)}")
        return tuple(_coerce(item, kind, key, source) for item, kind in zip(value, kinds))
    allowed = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if get_origin(kind) is tuple and isinstance(value, (list, tuple)):  # data.classes: a list or null
            return tuple(_coerce(item, get_args(kind)[0], key, source) for item in value)
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            # PyYAML reads 1e-3 (no dot) as a string; people write it that way all the time.
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is str and isinstance(value, str):
            return value
        if kind is bool and isinstance(value, bool):
            return value
    wanted = " or ".join("null" if kind is type(None) else _TYPE_NAMES[kind] for kind in allowed)
    raise DropcliError(f"{source}: {key} must be {wanted}, got {_short(value)}")


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", tuple[int, ...]: "a list"}
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _short(value: Any) -> str:
    """repr(value), cut to a readable length: a message stays one line whatever was given."""
    short = reprlib.Repr()  # keyword arguments to Repr() need Python 3.12
    short.maxstring = short.maxother = 60
    return short.repr(value)


def _unknown_key_message(key: str, names: list[str], prefix: str) -> str:
    path = f"{prefix}.{key}" if prefix else key
    aliases = list(architecture.ALIASES) if prefix == "model" else []
    close = difflib.get_close_matches(key, names + aliases, n=1)
    hint = f" (did you mean '{prefix + '.' if prefix else ''}{close[0]}'?)" if close else ""
    numbered = re.fullmatch(r"(hidden|dropout)_\d+", key) if aliases else None
    if numbered:  # hidden_3 and on: the lists name any number of layers
        example = "model.hidden=256x256x256" if numbered.group(1) == "hidden" else "model.dropout=[0.5,0.5,0.2]"
        hint = f" (give model.{numbered.group(1)} as a list, one item per hidden layer, e.g. {example})"
    where = f"'{prefix}'" if prefix else "the top level"
    old = f" (and the old {', '.join(aliases)}, places in those lists)" if aliases else ""
    return f"unknown key '{path}'{hint}; keys in {where}: {', '.join(names)}{old}"


def _check_ranges(config: Config, origin: dict[str, str]) -> None:
    for key, ok, wanted in validation.checks(config):
        if not ok:
            value = get(config, key)
            source = origin.get(key, "config")
            raise DropcliError(
                f"{source}: {key} must be {wanted}, got {_short(list(value) if isinstance(value, tuple) else value)}"
            )


def get(config: Config, key: str) -> Any:
    """The value of one dotted key, e.g. get(config, "model.dropout"); an alias gives its place
    in the list (get(config, "model.dropout_1") is config.model.dropout[0])."""
    list_key, place = architecture.list_place(key)
    if place is not None:
        return get(config, list_key)[place]
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value
