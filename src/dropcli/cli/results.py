"""`evaluate`, `predict`, `plot` and `runs`: what saved runs hold and how good they are."""

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from dropcli.cli.app import Command, app, rank_zero
from dropcli.cli.display.console import console
from dropcli.cli.options import FIGURE_OPTIONS, DataDirOption, DeviceOption, figure_style, with_options
from dropcli.config.vocabulary import SPLITS, one_of
from dropcli.errors import DropcliError


@app.command(
    cls=Command,
    epilog="Example: dropcli evaluate runs/study --mc-samples 50 --temperature --shift rotate=0:180:15 -o calibration.png "
    "--predictions p.npz; compute-matched, with intervals: dropcli evaluate runs/study --mc-sweep 1,3,10,50 --ensemble-sizes 1,3,5 "
    "--temperature --last-layer --bootstrap 1000 --shift rotate=0,15,45,90 --ood mnist -o study.png",
)
@with_options(FIGURE_OPTIONS)
def evaluate(
    targets: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN...",
            help="A run directory (its last.pt), a .pt file, or several runs that differ only in seed "
            "(a deep ensemble; an experiment directory gives its trials).",
        ),
    ],
    split: Annotated[
        str,
        typer.Option("--split", help=f"{one_of(SPLITS)} (val needs data.val_split > 0; an ensemble: test), e.g. --split val."),
    ] = "test",
    device: DeviceOption = None,
    data_dir: DataDirOption = None,
    mc_samples: Annotated[
        int | None,
        typer.Option(
            "--mc-samples",
            metavar="K",
            help="Also score Monte Carlo dropout: average K >= 1 passes with noise on (batched), e.g. --mc-samples 50.",
        ),
    ] = None,
    shift: Annotated[
        list[str] | None,
        typer.Option(
            "--shift",
            metavar="FAMILY=START:STOP:STEP",
            help="Score on shifted copies of the split: rotate (degrees), translate "
            "(pixels), noise (Gaussian std on [0, 1] pixels), blur (sigma, pixels), contrast (fraction taken away, 0-1), "
            "elastic (largest displacement, pixels) or speckle (std of multiplicative noise), STOP included, or "
            "FAMILY=V1,V2. Repeatable, e.g. "
            "--shift rotate=0:180:15 --shift noise=0.1,0.3.",
        ),
    ] = None,
    temperature: Annotated[
        bool,
        typer.Option(
            "--temperature",
            help="Also score temperature scaling: one T fitted by minimising NLL on the run's validation split; "
            "with --mc-samples and ensembles, also for those (an ensemble's T needs runs that share data.val_seed).",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Figures, e.g. -o study.png: study-reliability.png (per method and shift value), study-shift.png "
            "(metrics vs shift, for a --shift family at two values or more), study-compute.png (metrics vs forward "
            "passes, when the rows differ in them) and study-selective.png; prints the paths written.",
        ),
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="Write every example's class probabilities, label, method and shift: .npz (numpy) or .csv (pandas), "
            "e.g. --predictions p.npz.",
        ),
    ] = None,
    mc_sweep: Annotated[
        str | None,
        typer.Option(
            "--mc-sweep",
            metavar="K1,K2,...",
            help="Score MC dropout at each K (rows 'mc dropout K=k'; the Ks share their passes, so this costs the largest K), "
            "e.g. --mc-sweep 1,3,10,50.",
        ),
    ] = None,
    ensemble_sizes: Annotated[
        str | None,
        typer.Option(
            "--ensemble-sizes",
            metavar="M1,M2,...",
            help="Score ensembles of each size M: the runs in the order given cut into disjoint groups of M (the rows are the "
            "mean over groups, the spread their std), e.g. --ensemble-sizes 1,3,5 with 10 runs.",
        ),
    ] = None,
    last_layer: Annotated[
        bool,
        typer.Option(
            "--last-layer",
            help="Also score MC dropout with only the last noise layer on, at the largest K, e.g. --mc-samples 50 --last-layer.",
        ),
    ] = False,
    replicates: Annotated[
        int,
        typer.Option(
            "--bootstrap",
            min=0,
            metavar="B",
            help="Bootstrap intervals over test examples from B resamples, for every metric (0: none), e.g. --bootstrap 1000.",
        ),
    ] = 200,
    level: Annotated[
        float,
        typer.Option("--level", min=0.5, max=0.999, help="Coverage of the bootstrap intervals, e.g. --level 0.9."),
    ] = 0.95,
    ood: Annotated[
        list[str] | None,
        typer.Option(
            "--ood",
            metavar="DIR|NAME",
            help="Out-of-distribution detection against another IDX data set's test images: a directory holding "
            "t10k-images-idx3-ubyte\\[.gz], or mnist / kmnist where dropcli finds them, e.g. --ood ~/data/mnist; heldout, "
            "the classes the runs were not trained on (data.classes); or images made on the spot: noise, constant, inverted. "
            "Repeatable, e.g. --ood heldout --ood noise. AUROC, AUPR and FPR@95 by max probability, entropy and mutual information.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    **options,
) -> None:
    """Score saved models: accuracy and calibration, per method and shift.

    Metrics: accuracy; NLL, mean -log p(true class); Brier, squared error of p against the one-hot label summed over classes, mean over examples; ECE, 15 equal-width bins of top-label confidence, mean |accuracy - confidence| weighted by bin size; adaptive ECE, the same over 15 equal-mass bins; entropy, mean predictive entropy (nats); selective accuracy, on the most certain examples by entropy; accuracy above a confidence threshold (--json, figures). Each with a bootstrap interval over test examples (--bootstrap) and, for several runs, the spread (std) over them. Every row names its forward passes per example, so methods compare at equal compute. One run unshifted also gets per-class accuracy and the confusion matrix. More: docs/uncertainty.md.
    """
    import json

    from dropcli.api import scoring
    from dropcli.cli.display import uncertainty_plots
    from dropcli.cli.display.report import evaluation_tables
    from dropcli.cli.display.uncertainty_tables import tables

    request = {"split": split, "mc_samples": mc_samples, "shift": shift, "temperature": temperature, "mc_sweep": mc_sweep}
    request.update(ensemble_sizes=ensemble_sizes, last_layer=last_layer, bootstrap=replicates, level=level, ood=ood)
    scoring.check_request(**request)  # bad options are refused before -o is checked, as they were
    style = figure_style(options, drawn=output is not None, draws="-o FIG.png")
    if output is not None:
        uncertainty_plots.check_output(output)
    outcome = scoring.evaluate(targets, **request, predictions=predictions, device=device, data_dir=data_dir, progress=True)
    if output is not None:
        outcome.written[:0] = uncertainty_plots.write(outcome.study, output, style)
    if not rank_zero():
        return  # under torchrun each worker scores the same checkpoints: one report is enough
    if as_json:
        typer.echo(json.dumps(outcome.to_json(), indent=2))
    else:
        screen = console()
        if outcome.per_class is not None:
            screen.print(*evaluation_tables(outcome.per_class, outcome.study.members[0].checkpoint))
        screen.print(*tables(outcome.study))
    for path in outcome.written:
        typer.echo(f"wrote {path}", err=as_json)


@app.command(
    cls=Command,
    epilog="Example: dropcli predict runs/default-scratch-20261127-171512 boot.png --top 3; or: ... --index 0 --index 42 --mc-samples 20",
)
def predict(
    target: Annotated[Path, typer.Argument(metavar="RUN_DIR|CHECKPOINT", help="A run directory (its last.pt) or a .pt file.")],
    images: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="IMAGE...",
            help="PNG or JPEG files, each of one garment; made into what the model was trained on: 28 x 28 grey, light on black.",
        ),
    ] = None,
    index: Annotated[
        list[int] | None,
        typer.Option(
            "--index",
            metavar="N",
            help="An image of the test set of the run's data set (data.name), 0 to 9999, with its true class. Repeatable.",
        ),
    ] = None,
    invert: Annotated[
        bool, typer.Option("--invert", help="Invert the image files first: for a dark garment on a light background.")
    ] = False,
    top: Annotated[int, typer.Option("--top", min=1, max=10, help="Show this many most probable classes.")] = 3,
    mc_samples: Annotated[
        int,
        typer.Option(
            "--mc-samples",
            min=0,
            metavar="K",
            help="Monte Carlo dropout: average K passes with noise on, and show the predictive entropy.",
        ),
    ] = 0,
    device: DeviceOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every class's probability as JSON.")] = False,
) -> None:
    """Class probabilities of a saved model for image files or test-set images.

    The model expects what Fashion-MNIST holds: one garment, centred, as a 28 x 28 grey image with the garment light on a black background. An image file is converted to grey, padded to a square with its border colour and resized to 28 x 28; a photo of a dark garment on a white background needs --invert. Reading image files needs Pillow (pip install 'dropcli\\[images]').
    """
    import json
    import warnings

    from dropcli.api import scoring
    from dropcli.cli.display.report import prediction_table

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scoring.ImageWarning)
        predictions = scoring.predict(
            target, images, index=index, invert=invert, mc_samples=mc_samples, device=device, data_dir=data_dir
        )
    for warning in caught:
        if issubclass(warning.category, scoring.ImageWarning):
            typer.echo(f"note: {warning.message}", err=True)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    path = predictions.checkpoint
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "checkpoint": str(path),
                    "classes": list(predictions.class_names),
                    "predictions": [{k: v for k, v in dataclasses.asdict(p).items() if k != "class_names"} for p in predictions],
                },
                indent=2,
            )
        )
        return
    console().print(prediction_table(predictions, top, path))


@app.command(
    cls=Command,
    epilog="Example: dropcli plot runs/cmp/kind=scratch_seed0 runs/cmp/kind=builtin_seed0 -o curves.pdf --width 6.75",
)
@with_options(FIGURE_OPTIONS)
def plot(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN_DIR...",
            help="Runs to draw (an experiment directory gives its trials); runs that differ only in their seed share a colour (mean ± std).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File to write; its suffix chooses the format: .png, .pdf or .svg.")
    ] = Path("curves.png"),
    **options,
) -> None:
    """Draw the chapter's figure: loss and accuracy against epoch (train, test and validation when the runs have one).

    Sized for a paper: one column (3.25 inches) by default, --width 6.75 for two; the file is exactly that wide.
    """
    from dropcli.api import training
    from dropcli.cli.display import figure

    style = figure_style(options)
    figure.check_output(output)
    figure.save(training.curves(run_dirs, style), output)
    typer.echo(f"wrote {output}")


@app.command(
    "runs", cls=Command, epilog="Example: dropcli runs --where model.kind=scratch --status finished --sort test_acc --top 5"
)
def list_runs(
    root: Annotated[Path, typer.Argument(help="Directory to scan, experiments included.")] = Path("runs"),
    where: Annotated[
        list[str] | None, typer.Option("--where", metavar="KEY=VALUE", help="Only runs whose config has this value. Repeatable.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only runs that finished, diverged, were interrupted, ...")
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", metavar="KEY", help="Best first by a metric (test_acc, val_acc, test_loss, ...) or a config key."),
    ] = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Only the first N (after --sort).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON records.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the runs as CSV.")] = False,
    diff: Annotated[
        tuple[Path, Path] | None,
        typer.Option("--diff", metavar="RUN_A RUN_B", help="The config keys and final metrics of two runs side by side."),
    ] = None,
) -> None:
    """List past runs: their results, and the config values that tell them apart."""
    from dropcli import runs
    from dropcli.cli.display.runs_tables import diff_table, runs_table
    from dropcli.runs import catalog

    if diff is not None:
        listing_options = {"--where": where, "--status": status, "--sort": sort, "--top": top, "--json": as_json, "--csv": as_csv}
        listing = [flag for flag, value in listing_options.items() if value]
        if listing or root != Path("runs"):
            named = ", ".join(listing) or f"the directory {root}"
            raise DropcliError(f"--diff compares two runs and takes no {named}; leave it out, or list runs without --diff")
        first, second = (_one_run(path) for path in diff)
        screen = console()
        for part in diff_table(first, second, *catalog.diff(first, second)):  # each on its own lines, wrapped between words
            screen.print(part, soft_wrap=not screen.is_terminal)
        return
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DropcliError(f"{root} {what}; train something first, or name the directory of runs to scan")
    infos = catalog.where(runs.list_runs(root), where or [], status)
    infos = catalog.sort(infos, sort) if sort else infos
    infos = infos[:top] if top else infos
    if not infos and (where or status) and not (as_json or as_csv):
        filters = " ".join([*(f"--where {condition}" for condition in where or []), *([f"--status {status}"] if status else [])])
        typer.echo(f"no run under {root} matches {filters}; dropcli runs {root} lists them all")
        return
    keys = catalog.differing_keys(infos)
    if as_json or as_csv:
        _print_records(catalog.records(infos, keys, root), as_json)
        return
    screen = console()
    # In a terminal the title and caption wrap between words; in a log each stays one line.
    screen.print(runs_table(infos, root, keys, screen), soft_wrap=not screen.is_terminal)


def _one_run(path: Path):
    from dropcli import runs

    if not (path / "config.yaml").is_file():
        raise DropcliError(f"--diff {path}: not a run directory (no config.yaml)")
    return runs.run_info(path)


def _print_records(records: list[dict], as_json: bool) -> None:
    import csv
    import io
    import json

    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(key for record in records for key in record)))
    writer.writeheader()
    writer.writerows(records)
    typer.echo(buffer.getvalue(), nl=False)
