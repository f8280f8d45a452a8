"""The dropout MLP, 784 -> model.hidden... -> 10 (the chapter's is 784-256-256-10), and its noise variants.

The kinds (vocabulary.MODEL_KINDS) differ only in what sits in the noise slots after the hidden
layers' ReLUs, or, for DropConnect, in the hidden layers themselves.
"""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from dropcli.config import ModelConfig
from dropcli.config.vocabulary import INPUT_SLOT, noise_slots
from dropcli.model.dropout import Dropout, dropout
from dropcli.model.noise import GaussianNoise

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
    widths = [IN_FEATURES, *config.hidden, N_CLASSES]
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:]))


def build_model(config: ModelConfig) -> nn.Sequential:
    """The MLP for `config.kind`: flatten, [input noise], then per hidden layer i a Linear
    `hidden_i`, `relu_i` and the noise slot `noise_i`, then the Linear `output`.

    The parameters are created in the same order for every kind (hidden layers first, then the
    output), so under one seed all kinds start from the same PyTorch-default `Linear` weights;
    for two hidden layers the names and weights are those of dropcli's first, two-layer model.
    """
    widths = [IN_FEATURES, *config.hidden]
    hidden = [
        DropConnectLinear(fan_in, fan_out, p, config.mask_mode) if config.kind == "dropconnect" else nn.Linear(fan_in, fan_out)
        for fan_in, fan_out, p in zip(widths, widths[1:], config.dropout)
    ]
    # Noise on the inputs only where asked for, so the chapter's model keeps its exact layers.
    input_noise = config.dropout_input > 0
    slots = noise_slots(len(config.hidden), input_noise)
    layers = [("flatten", nn.Flatten())]
    if input_noise:
        layers.append((slots[0], INPUT_NOISE[config.kind](config.dropout_input, config.mask_mode)))
    for index, (layer, p, slot) in enumerate(zip(hidden, config.dropout, slots[input_noise:]), start=1):
        layers += [(f"hidden_{index}", layer), (f"relu_{index}", nn.ReLU()), (slot, _noise_layer(config, p))]
    layers.append(("output", nn.Linear(config.hidden[-1], N_CLASSES)))
    return nn.Sequential(OrderedDict(layers))


def hidden_layers(model: nn.Module) -> list[nn.Linear]:
    """The hidden Linear layers of a model from build_model, input side first."""
    return [module for name, module in model.named_children() if name.startswith("hidden_")]


def noise_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The noise slots of a model from build_model, by name, input side first."""
    return {name: module for name, module in model.named_children() if name == INPUT_SLOT or name.startswith("noise_")}


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
