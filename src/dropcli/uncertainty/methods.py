"""Predictive uncertainty of dropout nets: the methods `evaluate` compares, on shifted test sets.

Methods (Ovadia et al. 2019's line-up, for this chapter's net):
- deterministic: the net as trained, noise layers off;
- mc dropout: the noise layers left on, the softmax of K passes averaged (Gal & Ghahramani 2016);
  the K passes run as one batched forward of K stacked copies of each batch;
- temperature: the deterministic logits divided by one temperature T, fitted by minimising the
  NLL on the run's validation split (Guo et al. 2017);
- ensemble: the mean softmax of several runs that differ only in seed (Lakshminarayanan et
  al. 2017); ensemble + mc dropout: the mean of each member's MC dropout.
With several runs, each single-model method's scores are the mean over the runs.
"""

import torch
import torch.nn.functional as F

from dropcli.model.mlp import DropConnectLinear
from dropcli.model.noise import GaussianNoise

# How many rows one batched forward pass takes (an MC batch holds K copies of its examples).
ROWS_PER_PASS = 32768
DETERMINISTIC, MC_DROPOUT, TEMPERATURE, ENSEMBLE, ENSEMBLE_MC = (
    "deterministic",
    "mc dropout",
    "temperature",
    "ensemble",
    "ensemble + mc dropout",
)


def stochastic_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Every module that injects noise in training mode: dropout (both kinds), Gaussian noise, and
    DropConnect's hidden layers (which models.noise_layers, the named noise slots, leaves out)."""
    from dropcli.model.dropout import Dropout

    return [m for m in model.modules() if isinstance(m, (Dropout, torch.nn.Dropout, GaussianNoise, DropConnectLinear))]


@torch.no_grad()
def logits(model: torch.nn.Module, X: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """(n, classes) float32 logits of `model` in eval mode (noise off)."""
    model.eval()
    return _in_chunks(model, X, precision)


@torch.no_grad()
def mc_probabilities(model: torch.nn.Module, X: torch.Tensor, samples: int, precision: str = "fp32") -> torch.Tensor:
    """(n, classes) mean softmax of `samples` passes with the noise layers on (the rest in eval mode).

    Masks come from torch's generator on X's device: seed it first for repeatable numbers.
    """
    model.eval()
    layers = stochastic_modules(model)
    for layer in layers:
        layer.train()
    try:
        # DropConnect draws one weight mask per forward pass, shared by the whole batch: stacked
        # copies would all see the same mask, so it takes one pass per sample.
        if any(isinstance(layer, DropConnectLinear) for layer in layers):
            total = sum(torch.softmax(_in_chunks(model, X, precision), dim=1).double() for _ in range(samples))
            return (total / samples).float()
        chunk = max(1, ROWS_PER_PASS // samples)
        return torch.cat([_stacked(model, X[start : start + chunk], samples, precision) for start in range(0, len(X), chunk)])
    finally:
        model.eval()


def _stacked(model: torch.nn.Module, X: torch.Tensor, samples: int, precision: str) -> torch.Tensor:
    prefix, rest = split_at_first_noise(model)
    with torch.no_grad():
        h = _forward(prefix, X, precision, cast=False)  # the noise-free layers, once per example
        stacked = h.repeat(samples, *[1] * (h.dim() - 1))  # (samples * batch, ...): sample k is rows k*batch ... (k+1)*batch-1
        out = _forward(rest, stacked, precision).view(samples, len(X), -1)  # (samples, batch, classes)
    # Summed in float64: K equal passes (noise off, or p = 0) average back to that pass exactly.
    return (torch.softmax(out, dim=2).sum(dim=0, dtype=torch.float64) / samples).float()  # (batch, classes)


@torch.no_grad()
def mc_sweep(
    model: torch.nn.Module, X: torch.Tensor, samples: list[int], precision: str = "fp32", last_layer_only: bool = False
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each K of `samples`: the mean softmax of the first K passes (n, classes) and the mean
    entropy of those passes (n,), for mutual information. The Ks share their passes (K = 3 is the
    first 3 of K = 50's), so a sweep costs max(samples) passes. `last_layer_only`: only the last
    noise layer is left on (the net's features fixed, its last layer's input dropped).

    Masks come from torch's generator on X's device: seed it first for repeatable numbers.
    """
    model.eval()
    layers = stochastic_modules(model)
    active = layers[-1:] if last_layer_only else layers
    for layer in active:
        layer.train()
    try:
        if any(isinstance(layer, DropConnectLinear) for layer in active):
            passes = (torch.softmax(_in_chunks(model, X, precision), dim=1).double() for _ in range(max(samples)))
            return _snapshots(passes, samples)
        chunk = max(1, ROWS_PER_PASS // max(samples))
        prefix, rest = split_at_first_noise(model, active)
        parts = [_stacked_sweep(prefix, rest, X[start : start + chunk], samples, precision) for start in range(0, len(X), chunk)]
        return [(torch.cat([p[k][0] for p in parts]), torch.cat([p[k][1] for p in parts])) for k in range(len(samples))]
    finally:
        model.eval()


def _snapshots(passes, samples: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from dropcli.uncertainty.calibration import entropy_of

    total, entropy, out = 0, 0, []
    for k, p in enumerate(passes, start=1):  # p: (n, classes) float64
        total, entropy = total + p, entropy + entropy_of(p)
        if k in samples:
            out.append(((total / k).float(), entropy / k))
    return out


def _stacked_sweep(prefix, rest, X: torch.Tensor, samples: list[int], precision: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from dropcli.uncertainty.calibration import entropy_of

    K = max(samples)
    h = _forward(prefix, X, precision, cast=False)  # the noise-free layers, once per example
    out = _forward(rest, h.repeat(K, *[1] * (h.dim() - 1)), precision).view(K, len(X), -1)  # (K, batch, classes)
    p = torch.softmax(out, dim=2).double()
    totals = p.cumsum(dim=0)  # (K, batch, classes): sum of the first k passes
    entropies = entropy_of(p.view(K * len(X), -1)).view(K, len(X)).cumsum(dim=0)  # (K, batch)
    return [((totals[k - 1] / k).float(), entropies[k - 1] / k) for k in samples]


def temperature_of_probabilities(p: torch.Tensor, y: torch.Tensor) -> float:
    """The temperature fitted (as fit_temperature) on log p: for methods that output probabilities
    (MC dropout, ensembles), softmax(log p / T) is p**(1/T) renormalised."""
    return fit_temperature(log_of(p), y)


def log_of(p: torch.Tensor) -> torch.Tensor:
    """log p, floored so that a zero probability stays finite (float64)."""
    return p.double().clamp_min(1e-30).log()


def split_at_first_noise(model: torch.nn.Module, layers: list | None = None) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(prefix, rest): the layers of a Sequential before its first noise layer, and the others.

    The prefix is deterministic, so MC dropout runs it once per example rather than K times
    (for the chapter's net, the 784 x 256 product: three quarters of a pass). A model that is
    not a Sequential is all `rest`. `layers`: the noise layers left on (default: all).
    """
    if not isinstance(model, torch.nn.Sequential):
        return torch.nn.Identity(), model
    children = list(model)
    noisy = {id(layer) for layer in (stochastic_modules(model) if layers is None else layers)}
    first = next((i for i, child in enumerate(children) if any(id(m) in noisy for m in child.modules())), len(children))
    return torch.nn.Sequential(*children[:first]), torch.nn.Sequential(*children[first:])


def _in_chunks(model: torch.nn.Module, X: torch.Tensor, precision: str) -> torch.Tensor:
    return torch.cat([_forward(model, X[start : start + ROWS_PER_PASS], precision) for start in range(0, len(X), ROWS_PER_PASS)])


def _forward(model: torch.nn.Module, X: torch.Tensor, precision: str, cast: bool = True) -> torch.Tensor:
    from dropcli.runtime import autocast

    with autocast(X.device, precision):
        out = model(X)
    return out.float() if cast else out


def fit_temperature(val_logits: torch.Tensor, y: torch.Tensor) -> float:
    """The temperature T > 0 that minimises the mean NLL of softmax(logits / T) on (val_logits, y).

    Fitted as log T (so T stays positive) with L-BFGS from T = 1.
    """
    val_logits = val_logits.detach().double()
    log_t = torch.zeros((), dtype=torch.float64, device=val_logits.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(val_logits / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return float(log_t.detach().exp())


def scaled(logits_: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / T); T = 1 is the plain softmax, bit for bit."""
    return torch.softmax(logits_ if temperature == 1.0 else logits_ / temperature, dim=1)
