"""The chapter's MLP, 784 -> hidden_1 -> hidden_2 -> 10, and its noise variants.

The kinds (vocabulary.MODEL_KINDS) differ only in what sits in the two noise slots after the
hidden layers' ReLUs, or, for DropConnect, in the hidden layers themselves.
"""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from dropcli.config import ModelConfig
from dropcli.dropout import Dropout, dropout
from dropcli.noise import GaussianNoise
from dropcli.vocabulary import NOISE_SLOTS

IN_FEATURES = 28 * 28
N_CLASSES = 10


class DropConnectLinear(nn.Linear):
    """A Linear layer whose weight matrix is dropped out, a fresh mask per batch, in training.

    The mask goes through dropcli's dropout op, so the gradient reaches the real weights
    (times the same mask and scale). In eval mode it is a plain Linear.
    """

    def __init__(self, in_features: int, out_features: int, p: float, mask_mode: str = "bool"):
        super().__init__(in_features, out_features)
        self.p = p
        self.mask_mode = mask_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = dropout(self.weight, self.p, self.training, mask_mode=self.mask_mode)  # (out, in)
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


def parameter_count(config: ModelConfig) -> int:
    """The number of weights and biases of the MLP `config` describes."""
    h1, h2 = config.hidden_1, config.hidden_2
    return (IN_FEATURES + 1) * h1 + (h1 + 1) * h2 + (h2 + 1) * N_CLASSES


def build_model(config: ModelConfig) -> nn.Sequential:
    """The MLP for `config.kind`.

    The parameters are created in the same order for every kind, so under one seed all kinds
    start from the same PyTorch-default `Linear` weights.
    """
    dropconnect = config.kind == "dropconnect"
    hidden_1 = (
        DropConnectLinear(IN_FEATURES, config.hidden_1, config.dropout_1, config.mask_mode)
        if dropconnect
        else nn.Linear(IN_FEATURES, config.hidden_1)
    )
    hidden_2 = (
        DropConnectLinear(config.hidden_1, config.hidden_2, config.dropout_2, config.mask_mode)
        if dropconnect
        else nn.Linear(config.hidden_1, config.hidden_2)
    )
    slot_1, slot_2 = NOISE_SLOTS
    # Noise on the inputs only where asked for, so the chapter's model keeps its exact layers.
    inputs = [("input_noise", INPUT_NOISE[config.kind](config.dropout_input, config.mask_mode))] if config.dropout_input else []
    return nn.Sequential(
        OrderedDict(
            [
                ("flatten", nn.Flatten()),
                *inputs,
                ("hidden_1", hidden_1),
                ("relu_1", nn.ReLU()),
                (slot_1, _noise_layer(config, config.dropout_1)),
                ("hidden_2", hidden_2),
                ("relu_2", nn.ReLU()),
                (slot_2, _noise_layer(config, config.dropout_2)),
                ("output", nn.Linear(config.hidden_2, N_CLASSES)),
            ]
        )
    )


# What each of vocabulary.MODEL_KINDS puts in a noise slot, given (p, mask_mode).
NOISE_LAYERS = {
    "scratch": lambda p, mask_mode: Dropout(p, mask_mode=mask_mode),
    "builtin": lambda p, mask_mode: nn.Dropout(p),
    "none": lambda p, mask_mode: nn.Identity(),
    "dropconnect": lambda p, mask_mode: nn.Identity(),  # its noise is in the hidden layers
    "gaussian": lambda p, mask_mode: GaussianNoise(p),
}


# On the inputs, DropConnect (whose noise is on weights) drops input units with dropcli's op;
# `none` takes no input noise (config validation refuses it).
INPUT_NOISE = {**NOISE_LAYERS, "dropconnect": NOISE_LAYERS["scratch"]}


def _noise_layer(config: ModelConfig, p: float) -> nn.Module:
    return NOISE_LAYERS[config.kind](p, config.mask_mode)
