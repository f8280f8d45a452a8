"""The ranges and combinations a Config must satisfy, as (key, ok, what it must be) triples.

config/__init__.py turns the first failed one into a one-line error naming the key and its source.
"""

import math
import re
from typing import Any

from dropcli.config.vocabulary import (
    AVERAGES,
    DATA_SETS,
    ENGINES,
    FUSED_KINDS,
    MASK_MODES,
    MODEL_KINDS,
    MONITORS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TEST_MONITORS,
    one_of,
)

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?")
# A run's name is part of its directory's name: one path component, of a sane length.
NAME_PATTERN = re.compile(r"[^/\\\x00]{1,100}")
MAX_SEED = 2**64 - 1  # torch's generators take seeds up to this


def checks(config) -> list[tuple[str, bool, str]]:
    """Every check of `config` (a config.Config), in the order errors are reported."""
    return [
        (
            "name",
            NAME_PATTERN.fullmatch(config.name) is not None and config.name not in (".", ".."),
            "1 to 100 characters without '/', and not '.' or '..' (it names the run directory)",
        ),
        ("seed", 0 <= config.seed <= MAX_SEED, "between 0 and 2**64 - 1"),
        ("model.kind", config.model.kind in MODEL_KINDS, f"one of {one_of(MODEL_KINDS)}"),
        ("model.mask_mode", config.model.mask_mode in MASK_MODES, f"one of {one_of(MASK_MODES)}"),
        ("model.hidden", all(width >= 1 for width in config.model.hidden), "widths >= 1"),
        ("model.dropout", all(0 <= p <= 1 for p in config.model.dropout), "rates between 0 and 1"),
        ("optim.lr", config.optim.lr > 0 and math.isfinite(config.optim.lr), "a finite number > 0"),
        ("optim.weight_decay", 0 <= config.optim.weight_decay < math.inf, "a finite number >= 0"),
        ("model.dropout", config.model.kind != "gaussian" or max(config.model.dropout) < 1, "rates below 1 for gaussian noise"),
        ("train.epochs", config.train.epochs >= 1, ">= 1"),
        ("train.batch_size", config.train.batch_size >= 1, ">= 1"),
        (
            "train.monitor",
            config.train.monitor in MONITORS,
            f"one of {one_of(MONITORS)} (the best epoch is chosen on the validation set: choosing it by a test score would select on the test set)",
        ),
        ("train.precision", config.train.precision in PRECISIONS, f"one of {one_of(PRECISIONS)}"),
        (
            "train.monitor",
            config.train.monitor == "auto" or config.data.val_split > 0,
            "auto unless data.val_split > 0 (without a validation split there is no best epoch: the last is reported)",
        ),
        ("data.name", config.data.name in DATA_SETS, f"one of {one_of(DATA_SETS)}"),
        ("data.val_split", 0 <= config.data.val_split < 1, "at least 0 and below 1"),
        ("data.train_limit", config.data.train_limit is None or config.data.train_limit >= 1, "null or >= 1"),
        ("data.test_limit", config.data.test_limit is None or config.data.test_limit >= 1, "null or >= 1"),
        (
            "data.classes",
            _classes_ok(config.data.classes),
            "null or a list of 2 to 10 distinct class numbers 0-9, e.g. [0,1,2,3,4,5]",
        ),
        ("device", DEVICE_PATTERN.fullmatch(config.device) is not None, "auto, cpu, cuda, cuda:N (N < 10000) or mps"),
        *recipe_checks(config),
        *engine_checks(config),
    ]


def recipe_checks(config) -> list[tuple[str, bool, str]]:
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
        (
            "optim.momentum_final",
            optim.momentum_final is None or (sgd and 0 <= optim.momentum_final < 1),
            "null, or below 1 with optim.name sgd",
        ),
        ("optim.momentum_epochs", optim.momentum_epochs >= 0, ">= 0"),
        ("optim.betas", all(0 <= beta < 1 for beta in optim.betas), "two numbers in [0, 1)"),
        ("optim.max_norm", optim.max_norm is None or 0 < optim.max_norm < math.inf, "null or a finite number > 0"),
        ("optim.schedule", optim.schedule in SCHEDULES, f"one of {one_of(SCHEDULES)}"),
        ("optim.warmup_epochs", 0 <= optim.warmup_epochs < train.epochs, "at least 0 and below train.epochs"),
        ("optim.step_epochs", optim.step_epochs >= 1, ">= 1"),
        ("optim.step_gamma", 0 < optim.step_gamma <= 1, "above 0 and at most 1"),
        ("train.early_stopping", train.early_stopping is None or train.early_stopping >= 1, "null or >= 1"),
        ("train.label_smoothing", 0 <= train.label_smoothing < 1, "at least 0 and below 1"),
        ("train.average", train.average in AVERAGES, f"one of {one_of(AVERAGES)}"),
        ("train.ema_decay", 0 <= train.ema_decay < 1, "at least 0 and below 1"),
        (
            "train.swa_start",
            train.swa_start is None or 1 <= train.swa_start <= train.epochs,
            "null (the last quarter) or an epoch from 1 to train.epochs",
        ),
        (
            "train.early_stopping",
            train.early_stopping is None or config.data.val_split > 0,
            "null unless data.val_split > 0 (it watches the validation set, never the test set)",
        ),
        ("data.augment.shift", 0 <= augment.shift <= 14, "between 0 and 14 pixels"),
    ]


def engine_checks(config) -> list[tuple[str, bool, str]]:
    """train.engine, and what the fused engine cannot run."""
    train, autograd = config.train, config.train.engine != "fused"
    return [
        ("train.engine", train.engine in ENGINES, f"one of {one_of(ENGINES)}"),
        (
            "train.engine",
            autograd or config.model.kind in FUSED_KINDS,
            f"autograd for model.kind {config.model.kind} (fused runs {one_of(FUSED_KINDS)})",
        ),
        ("train.engine", autograd or not train.compile, "autograd with train.compile (fused is its own compiled step)"),
        (
            "train.engine",
            autograd or not config.metrics.activation_stats,
            "autograd with metrics.activation_stats (they hook the model's modules, which fused does not call)",
        ),
    ]


def as_today(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config's train.monitor of a test metric (allowed before the best epoch was chosen on
    validation only) read as "auto", so the old run still lists, evaluates and resumes."""
    train = saved.get("train")
    if isinstance(train, dict) and train.get("monitor") in TEST_MONITORS:
        train["monitor"] = "auto"
    return saved


def _classes_ok(classes: tuple[int, ...] | None) -> bool:
    return classes is None or (2 <= len(set(classes)) == len(classes) and all(0 <= c <= 9 for c in classes))
