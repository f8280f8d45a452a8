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

from collections.abc import Callable

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


def mc_probabilities(
    model: torch.nn.Module, X: torch.Tensor, samples: int, precision: str = "fp32", done: Callable[[float], None] | None = None
) -> torch.Tensor:
    """(n, classes) mean softmax of `samples` passes with the noise layers on (the rest in eval
    mode): mc_sweep at one K. `done(fraction)` hears how much of the work is done."""
    ((probabilities, _),) = mc_sweep(model, X, [samples], precision, done=done)
    return probabilities


def has_weight_noise(model: torch.nn.Module) -> bool:
    """Whether the model draws DropConnect weight masks, one per forward pass (so MC dropout cannot stack copies)."""
    return any(isinstance(layer, DropConnectLinear) for layer in stochastic_modules(model))


def stacked_shape(n: int, samples: int) -> tuple[int, int]:
    """(examples, copies of each) in one batched forward of MC dropout over n examples: at most
    ROWS_PER_PASS rows, so memory stays bounded for any K (a huge K goes in groups of copies)."""
    chunk = max(1, min(n, ROWS_PER_PASS // samples))
    return chunk, min(samples, max(1, ROWS_PER_PASS // chunk))


@torch.no_grad()
def mc_sweep(
    model: torch.nn.Module,
    X: torch.Tensor,
    samples: list[int],
    precision: str = "fp32",
    last_layer_only: bool = False,
    done: Callable[[float], None] | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each K of `samples` (ascending): the mean softmax of the first K passes (n, classes) and
    the mean entropy of those passes (n,), for mutual information. The Ks share their passes (K = 3
    is the first 3 of K = 50's), so a sweep costs max(samples) passes. `last_layer_only`: only the
    last noise layer is left on (the net's features fixed, its last layer's input dropped).
    `done(fraction)` hears how much of the work is done after each batched forward.

    Masks come from torch's generator on X's device: seed it first for repeatable numbers.
    """
    model.eval()
    layers = stochastic_modules(model)
    active = layers[-1:] if last_layer_only else layers
    for layer in active:
        layer.train()
    K, rows_done = max(samples), 0

    def count(rows: int) -> None:
        nonlocal rows_done
        rows_done += rows
        if done is not None:
            done(rows_done / (len(X) * K))

    try:
        # DropConnect draws one weight mask per forward pass, shared by the whole batch: stacked
        # copies would all see the same mask, so it takes one pass per sample.
        if any(isinstance(layer, DropConnectLinear) for layer in active):
            return _one_pass_at_a_time(model, X, samples, precision, count)
        chunk, copies = stacked_shape(len(X), K)
        prefix, rest = split_at_first_noise(model, active)
        parts = [
            _stacked_sweep(prefix, rest, X[start : start + chunk], samples, copies, precision, count)
            for start in range(0, len(X), chunk)
        ]
        return [(torch.cat([p[k][0] for p in parts]), torch.cat([p[k][1] for p in parts])) for k in range(len(samples))]
    finally:
        model.eval()


def _one_pass_at_a_time(
    model, X: torch.Tensor, samples: list[int], precision: str, count
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from dropcli.uncertainty.calibration import entropy_of

    total, entropy, out = 0, 0, []
    for k in range(1, max(samples) + 1):
        p = torch.softmax(_in_chunks(model, X, precision), dim=1).double()  # (n, classes)
        total, entropy = total + p, entropy + entropy_of(p)
        if k in samples:
            out.append(((total / k).float(), entropy / k))
        count(len(X))
    return out


def _stacked_sweep(
    prefix, rest, X: torch.Tensor, samples: list[int], copies: int, precision: str, count
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """mc_sweep on one chunk of examples: the noise-free prefix once, then the passes as stacked
    copies, `copies` at a time (a huge K goes in groups, so memory stays bounded)."""
    from dropcli.uncertainty.calibration import entropy_of

    h = _forward(prefix, X, precision, cast=False)  # the noise-free layers, once per example
    # Sums in float64: K equal passes (noise off, or p = 0) average back to that pass exactly.
    total, entropy, out = 0, 0, []
    for first in range(0, max(samples), copies):
        k = min(copies, max(samples) - first)
        stacked = h.repeat(k, *[1] * (h.dim() - 1))  # (k * batch, ...): copy j is rows j*batch ... (j+1)*batch-1
        p = torch.softmax(_forward(rest, stacked, precision).view(k, len(X), -1), dim=2).double()  # (k, batch, classes)
        running = p.cumsum(dim=0) + total  # (k, batch, classes): the sum of passes 1 .. first + j + 1
        entropies = entropy_of(p.view(k * len(X), -1)).view(k, len(X)).cumsum(dim=0) + entropy
        for K in (K for K in samples if first < K <= first + k):
            out.append(((running[K - first - 1] / K).float(), entropies[K - first - 1] / K))
        total, entropy = running[-1], entropies[-1]
        count(k * len(X))
    return out


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
