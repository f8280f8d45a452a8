"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model and optimizer state, every RNG state that affects the rest of the
run (torch's CPU generator and the CUDA one when used, which draw the masks; the data-order
and augmentation generators; under torchrun each worker's mask generators), the finished
epochs' metrics, the best epoch so far and the resolved config. Files are written to a
temporary name and renamed, so a kill at any moment leaves the old checkpoint or the new one,
never a torn file.
"""

import dataclasses
from pathlib import Path
from typing import Any

import torch

from dropcli import files
from dropcli.config import Config, load_config, to_dict
from dropcli.errors import DropcliError, first_line
from dropcli.model.mlp import build_model
from dropcli.runtime import derived_seed, seed_everything
from dropcli.training import averaging
from dropcli.training.records import EpochMetrics, TrainState

FORMAT = 1
KEYS = ("config", "epoch", "history", "best", "model", "optimizer", "rng")


def save(
    path: Path, state: TrainState, config: Config, best: dict[str, Any] | None = None, worker_rngs: list | None = None
) -> None:
    """Write `state` to `path` atomically. Under torchrun rank 0 writes it, with every worker's
    mask generator state (`worker_rngs`, gathered from all workers) so a resume is exact."""
    payload = {
        "format": FORMAT,
        "config": to_dict(config),
        "epoch": state.epoch,
        "history": [dataclasses.asdict(m) for m in state.history],
        "best": best,
        "model": averaging.model_of_run(state).state_dict(),  # the run's model: train.average's, if any
        "optimizer": state.optimizer.state_dict(),
        "rng": {
            **rng_state(state),
            "data_order": state.order_generator.get_state(),
            "augment": state.augment_generator.get_state(),
            "workers": worker_rngs,
        },
    }
    if state.averaged is not None:  # the weights as trained, and the average so far: to continue exactly
        payload["trained"] = state.model.state_dict()
        payload["averaged"] = state.averaged.state_dict()
    with files.atomic(path) as temporary:
        torch.save(payload, temporary)


def rng_state(state: TrainState) -> dict[str, torch.Tensor | None]:
    """This process's generators that draw dropout masks: torch's CPU one, and CUDA's when used."""
    device = next(state.model.parameters()).device
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save` (tensors land on the CPU)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DropcliError(f"checkpoint not found: {path}") from None
    except Exception as error:  # torch raises several kinds for a file that is not a checkpoint
        raise DropcliError(f"{path}: not a readable dropcli checkpoint ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DropcliError(f"{path}: not a dropcli checkpoint of format {FORMAT}")
    missing = [key for key in KEYS if key not in payload]
    if missing:
        raise DropcliError(
            f"{path}: damaged checkpoint, no {', '.join(missing)}; use another checkpoint (best.pt) or start a new run"
        )
    shapes = {"config": dict, "epoch": int, "history": list, "model": dict, "optimizer": dict, "rng": dict}
    wrong = [key for key, kind in shapes.items() if not isinstance(payload[key], kind)]
    if wrong or payload["epoch"] != len(payload["history"]):
        what = ", ".join(wrong) or "epoch and history"
        raise DropcliError(
            f"{path}: damaged checkpoint ({what} not as saved); use another checkpoint (best.pt) or start a new run"
        )
    return payload


def load_model(payload: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """The checkpoint's model in eval mode on `device`, for inference: no optimizer, nothing seeded.

    Raises DropcliError if the weights do not fit the checkpoint's own config.
    """
    model = build_model(load_config(base=payload["config"]).model)
    try:
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise _does_not_fit(error) from None
    return model.to(device).eval()


def restore(state: TrainState, payload: dict[str, Any]) -> None:
    """Put a checkpoint's weights, optimizer, RNG states and history into `state`.

    Raises DropcliError if the checkpoint does not fit (a damaged or hand-edited file).
    """
    try:
        _restore(state, payload)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise _does_not_fit(error) from None


def _does_not_fit(error: Exception) -> DropcliError:
    return DropcliError(
        f"the checkpoint does not fit its own config ({first_line(error)}); it is damaged: use best.pt or start a new run"
    )


def _restore(state: TrainState, payload: dict[str, Any]) -> None:
    state.model.load_state_dict(payload.get("trained", payload["model"]))
    if state.averaged is not None:  # saved with every ema or swa run's checkpoint: without it the file is damaged
        state.averaged.load_state_dict(payload["averaged"])
    state.optimizer.load_state_dict(payload["optimizer"])
    rng, workers = payload["rng"], state.workers
    per_worker = rng.get("workers")
    if workers.world_size > 1 and per_worker and len(per_worker) == workers.world_size:
        _set_rng(state, per_worker[workers.rank])
    elif workers.world_size > 1:
        # Another number of workers than the checkpoint's: the masks cannot continue as they
        # were; each worker starts a fresh stream, different for each epoch resumed from.
        seed_everything(derived_seed(payload["config"]["seed"], f"worker {workers.rank} from epoch {payload['epoch']}"))
    else:
        _set_rng(state, rng)
    state.order_generator.set_state(rng["data_order"])
    if rng.get("augment") is not None:  # checkpoints from before data.augment have none
        state.augment_generator.set_state(rng["augment"])
    state.history[:] = [EpochMetrics(**m) for m in payload["history"]]


def _set_rng(state: TrainState, rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    device = next(state.model.parameters()).device
    if rng.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
