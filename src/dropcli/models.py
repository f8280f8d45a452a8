"""The chapter's MLP, 784 -> hidden_1 -> hidden_2 -> 10, with dropout after each hidden layer."""

from torch import nn

from dropcli.config import ModelConfig
from dropcli.dropout import Dropout

IN_FEATURES = 28 * 28
N_CLASSES = 10


def build_model(config: ModelConfig) -> nn.Sequential:
    """The MLP for `config.kind`: "scratch" uses dropcli's dropout, "builtin" uses nn.Dropout.

    The layers are created in the same order for every kind, so under one seed all kinds
    start from the same PyTorch-default `Linear` weights.
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(IN_FEATURES, config.hidden_1),
        nn.ReLU(),
        _dropout_layer(config, config.dropout_1),
        nn.Linear(config.hidden_1, config.hidden_2),
        nn.ReLU(),
        _dropout_layer(config, config.dropout_2),
        nn.Linear(config.hidden_2, N_CLASSES),
    )


def _dropout_layer(config: ModelConfig, p: float) -> nn.Module:
    if config.kind == "scratch":
        return Dropout(p, mask_mode=config.mask_mode)
    if config.kind == "builtin":
        return nn.Dropout(p)
    raise ValueError(f"unknown model kind {config.kind!r}")
