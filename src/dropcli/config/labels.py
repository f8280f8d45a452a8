"""What each config key is called where a reader sees it (an axis, a legend): the one table of
readable names, e.g. "dropout rate p" for model.dropout and "learning rate" for optim.lr.

A key missing here is shown as itself, so a new key is never hidden, only less well named.
"""

from dropcli.config.architecture import list_place

READABLE = {
    "name": "config",
    "seed": "seed",
    "device": "device",
    "model.kind": "model",
    "model.hidden": "hidden widths",
    "model.dropout_input": "input dropout rate",
    "model.dropout": "dropout rate p",
    "model.mask_mode": "mask mode",
    "optim.name": "optimizer",
    "optim.lr": "learning rate",
    "optim.weight_decay": "weight decay",
    "optim.momentum": "momentum",
    "optim.nesterov": "Nesterov momentum",
    "optim.momentum_final": "final momentum",
    "optim.momentum_epochs": "momentum warm-up epochs",
    "optim.betas": "Adam betas",
    "optim.max_norm": "max-norm bound",
    "optim.schedule": "learning-rate schedule",
    "optim.warmup_epochs": "warm-up epochs",
    "optim.step_epochs": "epochs per lr step",
    "optim.step_gamma": "lr step factor",
    "train.epochs": "epochs",
    "train.batch_size": "batch size",
    "train.monitor": "monitored metric",
    "train.precision": "precision",
    "train.compile": "torch.compile",
    "train.engine": "engine",
    "train.early_stopping": "early-stopping patience",
    "train.label_smoothing": "label smoothing",
    "train.average": "weight averaging",
    "train.ema_decay": "EMA decay",
    "train.swa_start": "SWA start epoch",
    "data.name": "data set",
    "data.val_split": "validation fraction",
    "data.val_seed": "validation seed",
    "data.train_limit": "training examples",
    "data.test_limit": "test examples",
    "data.classes": "classes",
    "data.augment.shift": "augmentation shift (pixels)",
    "data.augment.flip": "augmentation flip",
}


def readable(key: str) -> str:
    """The name a reader sees for `key`: "dropout rate p" for model.dropout, "dropout rate p,
    layer 2" for model.dropout_2 (a place in the list), the key itself where the table has none."""
    list_key, place = list_place(key)
    name = READABLE.get(list_key, key)
    if place is None:
        return name
    return f"width of hidden layer {place + 1}" if list_key == "model.hidden" else f"{name}, layer {place + 1}"


# What a key's None means, where a reader would otherwise see "None"; any other key's None is "off".
NONE_MEANS = {
    "data.train_limit": "all",
    "data.test_limit": "all",
    "data.val_seed": "the run's seed",
    "optim.momentum_final": "no warm-up",
}


def value_text(key: str, value) -> str:
    """A setting's value as a legend shows it: numbers in 4 significant figures, widths as
    256x256, a list of rates as 0.5,0.3 (one rate for all layers as 0.5), and never "None"."""
    if value is None:
        return NONE_MEANS.get(list_place(key)[0], "off")
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and len(set(value)) == 1 and isinstance(value[0], float):
        return value_text(key, value[0])  # one rate for every layer
    if isinstance(value, (list, tuple)):
        parts = [value_text(key, item) for item in value]
        separator = "x" if all(isinstance(item, int) and not isinstance(item, bool) for item in value) else ","
        return separator.join(parts)
    return str(value)


def setting_text(key: str, value) -> str:
    """ "learning rate = 0.1": a setting as a legend shows it."""
    return f"{readable(key)} = {value_text(key, value)}"
