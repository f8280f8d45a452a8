"""Device choice and seeding, each done once, here."""

import platform

import torch

from dropcli.errors import DropcliError


def resolve_device(spec: str) -> torch.device:
    """Turn "auto", "cpu", "cuda", "cuda:N" or "mps" into a device that exists here."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DropcliError(f"device '{spec}' was asked for but CUDA is not available here; use --device cpu or --device auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DropcliError(f"device '{spec}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not _mps_available():
        raise DropcliError(f"device '{spec}' was asked for but MPS is not available here; use --device cpu or --device auto")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return platform.processor() or platform.machine()
    return device.type


def seed_everything(seed: int) -> None:
    """Seed every generator the model and the dropout masks draw from (CPU and all GPUs)."""
    torch.manual_seed(seed)


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
