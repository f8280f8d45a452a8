"""Hyperparameters: a frozen dataclass tree, loaded from YAML and validated once.

Precedence, lowest first: the defaults below < the YAML file < `--set key.path=value`
< dedicated flags (`--model`, `--device`, `--seed`). The defaults are the d2l chapter's.
This module does not import torch, so `dropcli config show` and `--help` start fast.
"""

import copy
import dataclasses
import difflib
import math
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from dropcli import yamlfile
from dropcli.errors import DropcliError
from dropcli.vocabulary import (
    ENGINES, FUSED_KINDS, MASK_MODES, MODEL_KINDS, MONITORS, OPTIMIZERS, PRECISIONS, SCHEDULES, one_of,
)

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?")
# A run's name is part of its directory's name: one path component, of a sane length.
NAME_PATTERN = re.compile(r"[^/\\\x00]{1,100}")
MAX_SEED = 2**64 - 1  # torch's generators take seeds up to this


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "scratch"
    hidden_1: int = 256
    hidden_2: int = 256
    dropout_input: float = 0.0  # noise of the model's kind on the 784 inputs (Srivastava et al. 2014)
    dropout_1: float = 0.5
    dropout_2: float = 0.5
    mask_mode: str = "int16"  # see vocabulary.MASK_MODES


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
    # After each step, rescale each hidden unit's incoming weight vector to norm <= max_norm.
    max_norm: float | None = None
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
    # Stop after this many epochs without improvement of the monitored metric (needs a
    # validation split), and report the best checkpoint. None: train every epoch.
    early_stopping: int | None = None


@dataclass(frozen=True)
class AugmentConfig:
    # Per batch, on the training device: shift each image by up to `shift` pixels each way
    # (zeros fill in), and mirror it left-right with probability 0.5 when `flip`.
    shift: int = 0
    flip: bool = False


@dataclass(frozen=True)
class DataConfig:
    root: str | None = None
    val_split: float = 0.0
    # Use only the first N examples of a split: for quick runs and CI smoke tests.
    train_limit: int | None = None
    test_limit: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class MetricsConfig:
    # Per epoch and hidden layer: the variance of activations before and after the noise
    # layer (in train mode) and the fraction of zeros. Costs a little time per batch.
    activation_stats: bool = False
    # Also write TensorBoard event files into the run directory (needs dropcli[tensorboard]).
    tensorboard: bool = False


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
    path: Path | str | None = None,
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
    if path is not None:
        path = resolve_path(path)
        raw = _read_yaml(path)
        origin = {key: str(path) for key in flatten(raw)}
        raw.setdefault("name", Path(path).stem)
    elif base is not None:
        raw = copy.deepcopy(base)
    for text in overrides:
        key, value = _parse_override(text)
        _set_path(raw, key, value, source=f"--set {text}")
        origin[key] = f"--set {text}"
    for key, (option, value) in (flags or {}).items():
        if value is not None:
            _set_path(raw, key, value, source=option)
            origin[key] = option
    config = _build(Config, raw, prefix="", origin=origin, default_source=str(path or "config"))
    _check_ranges(config, origin)
    return config


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


def to_dict(config: Config) -> dict[str, Any]:
    """The config as plain nested dicts and lists, in field order (for YAML, JSON and checkpoints)."""
    return dataclasses.asdict(config, dict_factory=lambda items: {key: _plain(value) for key, value in items})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def replace(config: Config, key: str, value: Any, source: str | None = None) -> Config:
    """A copy of `config` with one dotted key changed, validated like any other.

    Errors name `source` (default: the key) as where the value came from.
    """
    source = source or key
    raw = to_dict(config)
    _set_path(raw, key, value, source=source)
    updated = _build(Config, raw, prefix="", origin={key: source}, default_source=source)
    _check_ranges(updated, {key: source})
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
    node: Any = Config
    for part in key.split("."):
        node = get_type_hints(node)[part]
    if dataclasses.is_dataclass(node):
        raise DropcliError(f"{source}: {key} is a section, not a value; name one of its keys, e.g. {key}.{dataclasses.fields(node)[0].name}")
    return node


SHIPPED_DIR = Path(__file__).parent / "configs"  # package data: the repository's configs/


def shipped_configs() -> dict[str, Path]:
    """The configs that come with dropcli, by name: default, smoke, long, ..."""
    return {path.stem: path for path in sorted(SHIPPED_DIR.glob("*.yaml"))}


def resolve_path(text: Path | str) -> Path:
    """A config argument as a file: a path that exists, else a shipped config's name."""
    path = Path(text)
    if path.exists() or "/" in str(text) or path.suffix in (".yaml", ".yml"):
        return path  # a path means a file, found or not
    shipped = shipped_configs()
    if str(text) not in shipped:
        raise DropcliError(
            f"no config file or shipped config named {str(text)!r}; shipped: {', '.join(shipped)} (see dropcli config list), "
            "or give a path to a YAML file"
        )
    return shipped[str(text)]


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping ({} when empty), checked as a config file is."""
    return _read_yaml(path)


def _read_yaml(path: Path) -> dict[str, Any]:
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
        return key, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        raise DropcliError(f"bad --set {text!r}: the value is not a valid YAML scalar") from None


def _set_path(raw: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Set raw[a][b] = value for key "a.b", checking each part against the Config tree."""
    node_type: Any = Config
    node = raw
    parts = key.split(".")
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(node_type)]
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
    if get_origin(annotation) is tuple:
        kinds = get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(kinds):
            raise DropcliError(f"{source}: {key} must be a list of {len(kinds)} numbers, e.g. [0.9, 0.999], got {_short(value)}")
        return tuple(_coerce(item, kind, key, source) for item, kind in zip(value, kinds))
    allowed = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
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


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _short(value: Any) -> str:
    """repr(value), cut to a readable length: a message stays one line whatever was given."""
    short = reprlib.Repr()  # keyword arguments to Repr() need Python 3.12
    short.maxstring = short.maxother = 60
    return short.repr(value)


def _unknown_key_message(key: str, names: list[str], prefix: str) -> str:
    path = f"{prefix}.{key}" if prefix else key
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean '{prefix + '.' if prefix else ''}{close[0]}'?)" if close else ""
    where = f"'{prefix}'" if prefix else "the top level"
    return f"unknown key '{path}'{hint}; keys in {where}: {', '.join(names)}"


def _check_ranges(config: Config, origin: dict[str, str]) -> None:
    checks = [
        ("name", NAME_PATTERN.fullmatch(config.name) is not None and config.name not in (".", ".."),
         "1 to 100 characters without '/', and not '.' or '..' (it names the run directory)"),
        ("seed", 0 <= config.seed <= MAX_SEED, "between 0 and 2**64 - 1"),
        ("model.kind", config.model.kind in MODEL_KINDS, f"one of {one_of(MODEL_KINDS)}"),
        ("model.mask_mode", config.model.mask_mode in MASK_MODES, f"one of {one_of(MASK_MODES)}"),
        ("model.hidden_1", config.model.hidden_1 >= 1, ">= 1"),
        ("model.hidden_2", config.model.hidden_2 >= 1, ">= 1"),
        ("model.dropout_1", 0 <= config.model.dropout_1 <= 1, "between 0 and 1"),
        ("model.dropout_2", 0 <= config.model.dropout_2 <= 1, "between 0 and 1"),
        ("optim.lr", config.optim.lr > 0 and math.isfinite(config.optim.lr), "a finite number > 0"),
        ("optim.weight_decay", 0 <= config.optim.weight_decay < math.inf, "a finite number >= 0"),
        ("model.dropout_1", config.model.kind != "gaussian" or config.model.dropout_1 < 1, "below 1 for gaussian noise"),
        ("model.dropout_2", config.model.kind != "gaussian" or config.model.dropout_2 < 1, "below 1 for gaussian noise"),
        ("train.epochs", config.train.epochs >= 1, ">= 1"),
        ("train.batch_size", config.train.batch_size >= 1, ">= 1"),
        ("train.monitor", config.train.monitor in MONITORS, f"one of {one_of(MONITORS)}"),
        ("train.precision", config.train.precision in PRECISIONS, f"one of {one_of(PRECISIONS)}"),
        (
            "train.monitor",
            not config.train.monitor.startswith("val_") or config.data.val_split > 0,
            "a test_ metric or auto unless data.val_split > 0",
        ),
        ("data.val_split", 0 <= config.data.val_split < 1, "at least 0 and below 1"),
        ("data.train_limit", config.data.train_limit is None or config.data.train_limit >= 1, "null or >= 1"),
        ("data.test_limit", config.data.test_limit is None or config.data.test_limit >= 1, "null or >= 1"),
        ("device", DEVICE_PATTERN.fullmatch(config.device) is not None, "auto, cpu, cuda, cuda:N (N < 10000) or mps"),
        *_recipe_checks(config),
        *_engine_checks(config),
    ]
    for key, ok, wanted in checks:
        if not ok:
            value = get(config, key)
            source = origin.get(key, "config")
            raise DropcliError(f"{source}: {key} must be {wanted}, got {_short(value)}")


def _recipe_checks(config: Config) -> list[tuple[str, bool, str]]:
    """The keys of the dropout paper's recipe: dropout on the inputs, optimizers, schedules, augmentation."""
    model, optim, train, augment = config.model, config.optim, config.train, config.data.augment
    sgd = optim.name == "sgd"
    return [
        ("model.dropout_input", 0 <= model.dropout_input < 1, "at least 0 and below 1"),
        ("model.dropout_input", model.kind != "none" or model.dropout_input == 0, "0 for model.kind none (no noise)"),
        ("optim.name", optim.name in OPTIMIZERS, f"one of {one_of(OPTIMIZERS)}"),
        ("optim.momentum", 0 <= optim.momentum < 1, "at least 0 and below 1"),
        ("optim.momentum", sgd or optim.momentum == 0, "0 unless optim.name is sgd (adam's momentum is optim.betas)"),
        ("optim.nesterov", not optim.nesterov or (sgd and optim.momentum > 0), "false unless sgd with optim.momentum > 0"),
        ("optim.momentum_final", optim.momentum_final is None or (sgd and 0 <= optim.momentum_final < 1),
         "null, or below 1 with optim.name sgd"),
        ("optim.momentum_epochs", optim.momentum_epochs >= 0, ">= 0"),
        ("optim.betas", all(0 <= beta < 1 for beta in optim.betas), "two numbers in [0, 1)"),
        ("optim.max_norm", optim.max_norm is None or 0 < optim.max_norm < math.inf, "null or a finite number > 0"),
        ("optim.schedule", optim.schedule in SCHEDULES, f"one of {one_of(SCHEDULES)}"),
        ("optim.warmup_epochs", 0 <= optim.warmup_epochs < train.epochs, "at least 0 and below train.epochs"),
        ("optim.step_epochs", optim.step_epochs >= 1, ">= 1"),
        ("optim.step_gamma", 0 < optim.step_gamma <= 1, "above 0 and at most 1"),
        ("train.early_stopping", train.early_stopping is None or train.early_stopping >= 1, "null or >= 1"),
        ("train.early_stopping", train.early_stopping is None or config.data.val_split > 0,
         "null unless data.val_split > 0 (it watches the validation set, never the test set)"),
        ("data.augment.shift", 0 <= augment.shift <= 14, "between 0 and 14 pixels"),
    ]  # fmt: skip


def _engine_checks(config: Config) -> list[tuple[str, bool, str]]:
    """train.engine, and what the fused engine cannot run."""
    train, autograd = config.train, config.train.engine != "fused"
    return [
        ("train.engine", train.engine in ENGINES, f"one of {one_of(ENGINES)}"),
        ("train.engine", autograd or config.model.kind in FUSED_KINDS,
         f"autograd for model.kind {config.model.kind} (fused runs {one_of(FUSED_KINDS)})"),
        ("train.engine", autograd or train.precision == "fp32", "autograd with train.precision bf16 (fused is fp32)"),
        ("train.engine", autograd or not train.compile, "autograd with train.compile (fused is its own compiled step)"),
        ("train.engine", autograd or not config.metrics.activation_stats,
         "autograd with metrics.activation_stats (they hook the model's modules, which fused does not call)"),
    ]  # fmt: skip


def get(config: Config, key: str) -> Any:
    """The value of one dotted key, e.g. get(config, "model.dropout_1")."""
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value
