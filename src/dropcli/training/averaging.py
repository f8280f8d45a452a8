"""train.average: an average of the weights, evaluated and saved as the run's model.

torch.optim.swa_utils owns the averaging: `ema` updates an exponential moving average after
every step (weight train.ema_decay on the average so far), `swa` takes the mean of the weights
at the end of each epoch from train.swa_start on. The weights as trained keep training; the
average is what each epoch scores and what the checkpoints give as the model (checkpoints.py
keeps both, so a resumed run continues exactly).
"""

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dropcli.config import Config
from dropcli.training.records import TrainState


def averaged_model(config: Config, model: nn.Module) -> AveragedModel | None:
    """The average train.average asks for, of `model` (a copy that has averaged nothing yet), or None."""
    if config.train.average == "ema":
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.train.ema_decay))
    if config.train.average == "swa":
        return AveragedModel(model)
    return None


def swa_start(config: Config) -> int:
    """The first epoch whose end swa averages: train.swa_start, or the start of the last quarter."""
    epochs = config.train.epochs
    return config.train.swa_start if config.train.swa_start is not None else epochs - epochs // 4


def after_step(state: TrainState, config: Config) -> None:
    if config.train.average == "ema":
        state.averaged.update_parameters(state.model)


def after_epoch(state: TrainState, config: Config, epoch: int) -> None:
    if config.train.average == "swa" and epoch >= swa_start(config):
        state.averaged.update_parameters(state.model)


def _averaging(state: TrainState) -> bool:
    """Whether the average holds any weights yet (swa's does not before swa_start)."""
    return state.averaged is not None and int(state.averaged.n_averaged) > 0


def scoring_module(state: TrainState) -> nn.Module:
    """What evaluation scores: the average once it holds weights, else the model as trained (as
    it runs forward passes: torch.compile's module with train.compile)."""
    return state.averaged.module if _averaging(state) else state.eval_module


def model_of_run(state: TrainState) -> nn.Module:
    """The module whose weights are the run's model (a checkpoint's "model"): the average once it
    holds weights, else the model as trained."""
    return state.averaged.module if _averaging(state) else state.model
