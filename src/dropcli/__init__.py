"""dropcli: train and study dropout MLPs on Fashion-MNIST.

The Python API is here: `dropcli.train(dropcli.load_config("smoke"))`; see dropcli.api and
docs/api.md.
"""

__version__ = "0.1.0"

# The public names, each defined in dropcli.api (tests/api/test_promise.py checks the two lists agree).
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


def __getattr__(name: str):
    # dropcli.api is loaded on first use of one of its names, not by `import dropcli`: every
    # module that reads dropcli.__version__ imports this one, and the command line's --help
    # must start without torch.
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("dropcli.api"), name)
    raise AttributeError(f"module 'dropcli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
