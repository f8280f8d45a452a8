"""A fresh train state: the model, its optimizer and generators, seeded; DDP and torch.compile.

Everything here runs once, before the first epoch; epoch.py holds the step and evaluation maths.
"""

import torch
from torch import nn

from dropcli.config import Config
from dropcli.errors import DropcliError, first_line
from dropcli.model.mlp import build_model, parameter_count
from dropcli.parallel.workers import ONE_PROCESS, Workers
from dropcli.runtime import check_memory, derived_seed, seed_everything
from dropcli.training import averaging
from dropcli.training.epoch import EVAL_BATCH_SIZE
from dropcli.training.precision import check_precision
from dropcli.training.records import TrainState
from dropcli.training.schedules import build_optimizer


def new_state(config: Config, device: torch.device, workers: Workers = ONE_PROCESS) -> TrainState:
    """A freshly initialised model, its optimizer (optim.name), and the generators of the data
    order and of the augmentation, all seeded.

    Under torchrun every worker builds the same initial model and data order, wraps the model
    in DDP, and draws its dropout masks from a generator of its own. Raises DropcliError, before
    allocating, where `check_trainable` does.
    """
    check_trainable(config, device, workers)
    seed_everything(config.seed)
    model = build_model(config.model).to(device)
    optimizer = build_optimizer(config.optim, model.parameters())
    generators = [torch.Generator().manual_seed(seed) for seed in (config.seed, derived_seed(config.seed, "augment"))]
    state = TrainState(model, optimizer, *generators, workers=workers, averaged=averaging.averaged_model(config, model))
    if workers.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel  # imports torch.distributed: only here

        seed_everything(derived_seed(config.seed, f"worker {workers.rank}"))
        state.train_module = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return state


def check_trainable(config: Config, device: torch.device, workers: Workers = ONE_PROCESS) -> None:
    """Raise DropcliError if `config` cannot train here: the model clearly does not fit in
    memory, bf16 is asked for where the device would only emulate it, or, under torchrun, the
    batch does not split evenly or the engine is fused. Cheap: callers run it before they make a
    run directory."""
    check_precision(config.train.precision, device)
    check_memory(memory_needed(config), device, "training this model (model.hidden, train.batch_size)")
    if config.train.batch_size % workers.world_size:
        raise DropcliError(
            f"train.batch_size={config.train.batch_size} is the global batch and must split evenly over "
            f"{workers.world_size} workers; use a multiple of {workers.world_size}"
        )
    if config.train.engine == "fused" and workers.world_size > 1:
        raise DropcliError(
            "train.engine=fused trains in one process; under torchrun `train` is data-parallel, so use "
            "train.engine=autograd (sweep and compare may use fused: each trial is one process)"
        )


def memory_needed(config: Config) -> int:
    """Bytes that training needs at the least: weights, their gradients and the optimizer's
    state, and the activations of the largest batch (training or evaluation)."""
    weights = parameter_count(config.model) * 4 * 3
    width = sum(config.model.hidden)
    activations = max(config.train.batch_size, EVAL_BATCH_SIZE) * width * 4 * 4  # (batch, hidden), fp32, a few copies
    return weights + activations


def compile_model(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, str | None]:
    """`torch.compile(model)`, tried on `example`; the model itself and the reason where it cannot run."""
    try:
        compiled = torch.compile(model)
        compiled(example)  # compilation happens on the first call: fail here, not mid-epoch
        return compiled, None
    except Exception as error:  # no C++ compiler, an unsupported platform or Python, ...
        return model, f"torch.compile cannot run here ({first_line(error, limit=None)}); training without it"
