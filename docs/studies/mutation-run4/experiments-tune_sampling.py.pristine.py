"""How tune's sampler learns: TPE, with enough random start-up trials for the pruner in use.

The objective is a trial's last epoch's validation accuracy: what the final runs train to (they
run every epoch, on the whole training set, so a best epoch's weights could not be kept there).
A trial that peaks and then collapses is scored by where it ends, below any that hold on. A pruned
trial counts by how far it got and its value there (Optuna's TPE ranks complete trials first,
then pruned ones by their last epoch); a diverged one is failed, and TPE learns nothing from it.

TPE models the good trials once it has seen some complete ones: with a pruner that lets 1 trial
in 9 finish, its 10 default start-up trials hold about one. So the start-up trials are scaled by
the share of trials expected to finish (about 10 complete ones), capped at a quarter of the
budget so that the model gets to work. TPE is multivariate: it models the keys jointly (the
learning rate and the momentum, the rates and the width act together).
"""

import math
import warnings

from dropcli.config import Config
from dropcli.experiments import tune_pruning
from dropcli.experiments.tune_pruning import Pruning

COMPLETE_TO_LEARN = 10  # complete trials TPE's random start should hold (Optuna's default start-up)


def startup_trials(pruner: str, pruning: Pruning, config: Config, max_epochs: int, trials: int) -> int:
    """Random trials before TPE models the study: about COMPLETE_TO_LEARN complete ones expected,
    at least 10 and at most a quarter of the budget."""
    share = tune_pruning.complete_fraction(pruner, pruning, config, max_epochs)
    wanted = math.ceil(COMPLETE_TO_LEARN / share)
    return max(COMPLETE_TO_LEARN, min(wanted, trials // 4))


def tpe(optuna, seed: int, startup: int):
    """TPE as tune uses it. constant_liar: trials still running count as middling, so processes
    sharing a study spread out."""
    with warnings.catch_warnings():  # multivariate is marked experimental in Optuna; its benchmark is ours
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True)
