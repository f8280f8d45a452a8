"""dropcli's Python API: what the command line does, as functions that return data.

    import dropcli

    config = dropcli.load_config("smoke", {"model.kind": "builtin", "optim.lr": 0.05})
    run = dropcli.train(config)                      # a Run: history, final metrics, model, directory
    table = dropcli.compare(["scratch", "builtin"], config, seeds=2).rows()
    dropcli.evaluate(run, mc_samples=20, bootstrap=0).rows()
    dropcli.predict(run, index=[0, 1, 2])

The commands (`dropcli train`, `compare`, `sweep`, `evaluate`, `predict`, `plot`) call these
same functions, so the two cannot drift. Every error a user can cause is a `DropcliError` whose
message is the line the command line prints; nothing here exits the process. The names in
`__all__` are a promise: tests/api/test_promise.py fails when one disappears or changes its
signature without CHANGELOG.md saying so. docs/api.md has an example of each.
"""

from dropcli.api.experiments import Experiment, compare, sweep
from dropcli.api.scoring import Evaluation, evaluate, predict
from dropcli.api.training import Run, curves, load_config, load_run, resume, train
from dropcli.config import Config
from dropcli.errors import DropcliError
from dropcli.model.dropout import dropout
from dropcli.training.records import EpochMetrics
from dropcli.uncertainty.predict import Prediction

# config/__init__.py is at the house's 400-line limit, so Config's docstring is given where the API names it.
Config.__doc__ = """A run's settings, frozen and validated: build one with `load_config`. Its sections are
`model` (kind, hidden, dropout, ...), `optim`, `train`, `data` and `metrics`; docs/config.md lists every key."""

__all__ = [
    "Config",
    "DropcliError",
    "EpochMetrics",
    "Evaluation",
    "Experiment",
    "Prediction",
    "Run",
    "compare",
    "curves",
    "dropout",
    "evaluate",
    "load_config",
    "load_run",
    "predict",
    "resume",
    "sweep",
    "train",
]
