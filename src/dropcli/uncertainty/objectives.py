"""The scores tune may search on, for one model on one split: accuracy, NLL, ECE and adaptive
ECE, as calibration.score defines them (dropout off). tune's trials and its final seeds are
scored by this function, which the command line hands down to the experiments layer below."""

import torch

from dropcli.uncertainty import calibration, methods


@torch.no_grad()
def split_scores(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """accuracy, nll, ece and aece of `model`'s predictions on (X, y)."""
    p = torch.softmax(methods.logits(model, X).double(), dim=1)  # (n, classes)
    scores = calibration.score(p, y)
    return {"accuracy": scores.accuracy, "nll": scores.nll, "ece": scores.ece, "aece": scores.ece_adaptive}
