"""Saved models scored from Python: `evaluate` (accuracy and calibration) and `predict`.

`dropcli evaluate` and `dropcli predict` call these and print what they return.
"""

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dropcli.api.training import PathLike, Run, data_frame, detached
from dropcli.config.vocabulary import SPLITS, one_of
from dropcli.errors import DropcliError


class Predictions(list):
    """What `predict` returns: a list of `Prediction`, one per image, with the `checkpoint`
    that made them and the `class_names` of the run's data set."""

    def __init__(self, predictions: list, checkpoint: Path, class_names: Sequence[str]):
        super().__init__(predictions)
        self.checkpoint, self.class_names = checkpoint, tuple(class_names)


class ImageWarning(UserWarning):
    """An image file that most likely needs (or does not need) `invert`: the model expects a
    light garment on a black background."""


@dataclass
class Evaluation:
    """What `evaluate` measured. `study` (dropcli.uncertainty.study.Study) holds every method's
    scores on every shifted set; `per_class` the accuracy per class and the confusion matrix
    (one run on its unshifted split; None otherwise); `written` the files written."""

    study: Any
    per_class: Any = None
    written: list[Path] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """A record per method and shift: its forward passes per example, accuracy, nll, brier,
        ece, ece_adaptive and entropy (the mean over runs or ensembles)."""
        from dropcli.uncertainty.calibration import METRICS

        study = self.study
        return [
            {
                "method": method,
                "shift": shift.label,
                "forward_passes": study.passes[method],
                **{metric: getattr(study.scores[method, shift], metric) for metric in METRICS},
            }
            for shift in study.shifts
            for method in study.methods
        ]

    def frame(self):
        """`rows()` as a pandas DataFrame (needs pandas)."""
        return data_frame(self.rows())

    def to_json(self) -> dict[str, Any]:
        """Everything measured as plain JSON values: what `dropcli evaluate --json` prints."""
        from dropcli.uncertainty import study

        single = self.per_class
        head = {"checkpoint": str(self.study.members[0].checkpoint), **dataclasses.asdict(single)} if single else {}
        return {**head, "uncertainty": study.to_json(self.study)}

    def reliability(self, style=None):
        """The reliability diagrams, a panel per method and shift (a matplotlib Figure): the
        figure `evaluate -o FIG.png` saves as FIG-reliability.png (`style` as for `curves`)."""
        from dropcli.cli.display import uncertainty_plots

        return detached(uncertainty_plots.reliability(self.study, style))


def _targets(runs: "Run | PathLike | Sequence[Run | PathLike]") -> list[Path]:
    items = [runs] if isinstance(runs, (Run, str, Path)) else list(runs)
    return [item.directory if isinstance(item, Run) else Path(item) for item in items]


def _flags(device: str | None, data_dir: PathLike | None) -> dict[str, tuple[str, Any]]:
    """--device and --data-dir as the command line names them, so that errors read the same."""
    return {"device": ("--device", device), "data.root": ("--data-dir", str(Path(data_dir).resolve()) if data_dir else None)}


def counts(option: str, given: "str | Sequence[int] | None") -> tuple[int, ...]:
    """The distinct whole numbers >= 1 of a list, or of a comma list such as "1,3,10"; () for none."""
    if given is None:
        return ()
    try:
        values = tuple(int(part) for part in given.split(",")) if isinstance(given, str) else tuple(given)
    except (ValueError, TypeError):
        values = ()
    text = given if isinstance(given, str) else ",".join(map(str, given))
    valid = all(isinstance(value, int) and not isinstance(value, bool) for value in values)
    if not values or not valid or min(values) < 1 or len(set(values)) != len(values):
        raise DropcliError(f"{option} {text}: expected distinct whole numbers >= 1 separated by commas, e.g. {option} 1,3,10")
    return values


def evaluate(
    runs: "Run | PathLike | Sequence[Run | PathLike]",
    *,
    split: str = "test",
    mc_samples: int | None = None,
    shift: Sequence[str] | None = None,
    temperature: bool = False,
    mc_sweep: "str | Sequence[int] | None" = None,
    ensemble_sizes: "str | Sequence[int] | None" = None,
    last_layer: bool = False,
    bootstrap: int = 200,
    level: float = 0.95,
    ood: "str | Sequence[str] | None" = None,
    predictions: PathLike | None = None,
    device: str | None = None,
    data_dir: PathLike | None = None,
    progress: "bool | Callable[[float, int, float], None]" = False,
) -> Evaluation:
    """Score saved models: accuracy and calibration (NLL, Brier, ECE, entropy, ...) per method
    and shift, as `dropcli evaluate` does; the options are its options.

    `runs`: a `Run` or run directory, or several that differ only in seed (a deep ensemble; an
    experiment directory gives its trials). `mc_samples` K adds Monte Carlo dropout (K passes
    with the noise on, averaged); `shift` scores shifted copies of the split, e.g.
    ["rotate=0:180:15", "noise=0.1,0.3"]; `bootstrap` resamples give intervals (0: none).
    `progress` True shows a bar for long Monte Carlo scoring. Returns an `Evaluation`.

    Example: evaluate(run, mc_samples=20, shift=["rotate=0,30"], bootstrap=0).rows()
    """
    from dropcli.uncertainty import study

    options = {"split": split, "mc_samples": mc_samples, "shift": shift, "temperature": temperature, "mc_sweep": mc_sweep}
    options.update(ensemble_sizes=ensemble_sizes, last_layer=last_layer, bootstrap=bootstrap, level=level, ood=ood)
    request = study.Request(_targets(runs), **check_request(**options))
    path = None if predictions is None else Path(predictions)
    with _monte_carlo_progress(progress) as tell:
        outcome = study.evaluate(request, _flags(device, data_dir), path, tell)
    return Evaluation(outcome.study, outcome.evaluation, outcome.written)


def check_request(
    split: str,
    mc_samples: int | None,
    shift: Sequence[str] | str | None,
    temperature: bool,
    mc_sweep: "str | Sequence[int] | None",
    ensemble_sizes: "str | Sequence[int] | None",
    last_layer: bool,
    bootstrap: int,
    level: float,
    ood: "str | Sequence[str] | None",
) -> dict[str, Any]:
    """`evaluate`'s options checked, as the fields of a study request; DropcliError (with the
    command line's option names) for the first that is wrong."""
    from dropcli.uncertainty import shifts

    if split not in SPLITS:
        raise DropcliError(f"--split must be one of {one_of(SPLITS)}, got {split!r}")
    if mc_samples is not None and mc_samples < 1:
        raise DropcliError(f"--mc-samples {mc_samples}: K must be at least 1 (leave the option out for no Monte Carlo dropout)")
    points = shifts.parse_all([shift] if isinstance(shift, str) else list(shift or []))
    sweep, sizes = counts("--mc-sweep", mc_sweep), counts("--ensemble-sizes", ensemble_sizes)
    if last_layer and not (mc_samples or sweep):
        raise DropcliError("--last-layer is MC dropout with only the last noise layer on: give --mc-samples K or --mc-sweep too")
    if bootstrap < 0 or not 0.5 <= level <= 0.999:
        raise DropcliError(f"--bootstrap {bootstrap} --level {level}: B must be >= 0 and the level between 0.5 and 0.999")
    return {
        "split": split,
        "mc_samples": mc_samples or 0,
        "shifts": points,
        "temperature": temperature,
        "mc_sweep": sweep,
        "ensemble_sizes": sizes,
        "last_layer": last_layer,
        "bootstrap": bootstrap,
        "level": level,
        "ood": tuple([ood] if isinstance(ood, str) else ood or ()),
    }


def _monte_carlo_progress(progress):
    import contextlib

    if progress is True:
        from dropcli.cli.display.console import console
        from dropcli.cli.display.report import monte_carlo_progress

        return monte_carlo_progress(console(stderr=True))
    return contextlib.nullcontext(progress or None)


def predict(
    run: "Run | PathLike",
    images: Any = None,
    *,
    index: Sequence[int] | None = None,
    invert: bool = False,
    mc_samples: int = 0,
    device: str | None = None,
    data_dir: PathLike | None = None,
) -> Predictions:
    """Class probabilities of a saved model, a `Prediction` per image (`.top(3)`, `.entropy`).

    `run`: a `Run`, a run directory or a checkpoint (.pt). `images`: PNG or JPEG files (made
    into 28 x 28 grey, light on black; `invert` first for a dark garment on white; needs
    Pillow), or a tensor or array of images as the data set holds them, (n, 28, 28) or
    (n, 784), pixels in [0, 1]. `index`: test-set images of the run's data set, with their true
    class. With `mc_samples` K > 0, Monte Carlo dropout: K passes averaged, and the entropy.

    Example: [p.top(1) for p in predict(run, index=[0, 1, 2], mc_samples=20)]
    """
    import torch

    from dropcli import config as config_module
    from dropcli import runs
    from dropcli.data import dataset
    from dropcli.parallel.workers import Workers
    from dropcli.uncertainty import evaluation
    from dropcli.uncertainty import predict as predicting

    tensor = images is not None and not isinstance(images, (str, Path, list, tuple))
    files = [] if tensor else [Path(image) for image in ([images] if isinstance(images, (str, Path)) else images or [])]
    if not tensor and not files and not index:
        raise DropcliError("name an image file (PNG or JPEG) or a test-set image with --index N")
    if mc_samples < 0:
        raise DropcliError(f"--mc-samples {mc_samples}: K must be 0 (no Monte Carlo dropout) or more")
    path, payload = evaluation.load_target(run.directory if isinstance(run, Run) else Path(run))
    config = config_module.load_config(base=payload["config"], flags=_flags(device, data_dir))
    X, sources, true_classes = predicting.inputs(config, files, list(index or []), invert, runs.data_source(path))
    if tensor:
        given = _image_rows(images)
        X = torch.cat([given, X])
        sources, true_classes = [f"image {i}" for i in range(len(given))] + sources, [None] * len(given) + true_classes
    for image, row in zip(files, X):
        if predicting.light_background(row):
            advice = "it was inverted with --invert: leave that out" if invert else "add --invert"
            message = f"{image} has a light background, but the model expects a light garment on black; {advice}"
            warnings.warn(ImageWarning(message), stacklevel=2)
    device = Workers().device(config.device)
    predictions = predicting.predict(config, payload, X, device, sources, true_classes, mc_samples)
    return Predictions(predictions, path, dataset(config.data.name).class_names)


def _image_rows(images: Any):
    """Images given as a tensor or array, (n, 28, 28) or (n, 784) in [0, 1], as (n, 784) floats."""
    import torch

    X = torch.as_tensor(images, dtype=torch.float32).cpu()
    X = X.reshape(len(X), -1) if X.dim() == 3 else X.reshape(1, -1) if X.dim() == 2 and X.shape[-1] == 28 else X
    if X.dim() != 2 or X.shape[1] != 784:
        raise DropcliError(
            f"images of shape {tuple(torch.as_tensor(images).shape)}: give (n, 28, 28) or (n, 784) pixels in [0, 1]"
        )
    if len(X) and (X.min() < 0 or X.max() > 1):
        raise DropcliError("images: pixels must lie in [0, 1], as the data set's do (divide 8-bit pixels by 255)")
    return X
