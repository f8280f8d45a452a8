"""Activation statistics at the noise layers, for the chapter's variance exercise.

Forward hooks on the model's noise slots (on the inputs, if any, and after each hidden layer)
record, for every training batch, the variance of each unit across the batch before and after
the noise, averaged over units, and the fraction of zeros after it.
`read()` gives the epoch's averages.
"""

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from dropcli.model.mlp import noise_layers


class ActivationStats:
    def __init__(self, model: nn.Module):
        self.sums: dict[str, torch.Tensor] = {}
        self.batches: dict[str, int] = {}
        self.handles = [module.register_forward_hook(self._recorder(slot)) for slot, module in noise_layers(model).items()]

    def _recorder(self, slot: str):
        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            # A batch of one has no variance (NaN): the epoch's last batch can be that small.
            if not module.training or inputs[0].shape[0] < 2:
                return
            before, after = inputs[0].detach(), output.detach()  # (batch, hidden)
            values = torch.stack([before.var(dim=0).mean(), after.var(dim=0).mean(), (after == 0).float().mean()])
            self.sums[slot] = self.sums[slot] + values if slot in self.sums else values
            self.batches[slot] = self.batches.get(slot, 0) + 1

        return record

    def reset(self) -> None:
        self.sums.clear()
        self.batches.clear()

    def read(self) -> dict[str, float]:
        """{"noise_1.var_before": ..., "noise_1.var_after": ..., "noise_1.zeros": ..., "noise_2....", ...}
        (and "input_noise...." first, with input noise), for the slots that saw a training batch."""
        result = {}
        for slot, sums in self.sums.items():
            var_before, var_after, zeros = (sums / self.batches[slot]).tolist()
            result.update({f"{slot}.var_before": var_before, f"{slot}.var_after": var_after, f"{slot}.zeros": zeros})
        return result

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@contextlib.contextmanager
def recording(model: nn.Module, wanted: bool) -> Iterator[ActivationStats | None]:
    """ActivationStats on `model` for the block where `wanted` (metrics.activation_stats), else None."""
    stats = ActivationStats(model) if wanted else None
    try:
        yield stats
    finally:
        if stats is not None:
            stats.remove()
