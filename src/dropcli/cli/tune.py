"""`tune`: search for the best settings with Optuna, pruning trials that look poor on validation."""

from pathlib import Path
from typing import Annotated

import typer

from dropcli.cli.app import Command, app
from dropcli.cli.options import (
    CONFIG_OPTIONS,
    FIGURE_OPTIONS,
    QUIET_OPTION,
    check_extras,
    console,
    figure_style,
    flags,
    interrupts_reported,
    with_options,
)
from dropcli.errors import DropcliError
from dropcli.experiments.tune import PRUNERS, SAMPLERS
from dropcli.experiments.tune_storage import shown

EXAMPLE = (
    "Example: dropcli tune -c smoke --set data.val_split=0.1 --space optim.lr=0.01:1:log "
    "--space model.hidden=256x256,1024x1024 --trials 20 --pruner asha --final-seeds 3 --figure tune.png; "
    "or: dropcli tune --plan docs/studies/best-any/plan.yaml"
)


@app.command(cls=Command, epilog=EXAMPLE)
@with_options({**CONFIG_OPTIONS, **QUIET_OPTION, **FIGURE_OPTIONS})
def tune(
    space: Annotated[
        list[str] | None,
        typer.Option(
            "--space",
            metavar="KEY=LOW:HIGH[:log]|KEY=V1,V2",
            help="A config key to search: a range of real numbers (log scale with :log) or a list of values, as sweep's --grid. Repeatable.",
        ),
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            metavar="FILE",
            help="A study file (YAML: config, space, trials, timeout, pruner, sampler, storage, study, final_seeds, enqueue); flags given here override it.",
        ),
    ] = None,
    enqueue: Annotated[
        list[str] | None,
        typer.Option(
            "--enqueue",
            metavar="FILE|NAME",
            help="A known config (a file or a shipped config's name, e.g. best) as one of the study's first trials: "
            "its values of the space's keys. Repeatable; each is put in the study once.",
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials", min=1, help="Trials in the study, in all: a rerun trains only those missing (raise N to search on)."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=1,
            metavar="SECONDS",
            help="Stop after this many seconds: the running trial stops after its epoch and the next session continues it.",
        ),
    ] = None,
    pruner: Annotated[
        str | None,
        typer.Option(
            "--pruner",
            help=f"{', '.join(PRUNERS)}: what stops trials early, from each epoch's validation accuracy. Default: asha.",
        ),
    ] = None,
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace",
            metavar="EPOCHS|FRACTION",
            help="The first epoch a trial may be pruned at (25), or a fraction of the epochs (0.25). "
            "Default: after any warm-up or momentum ramp, and not before a quarter of the epochs.",
        ),
    ] = None,
    reduction: Annotated[
        int | None,
        typer.Option("--reduction", metavar="N", help="asha, hyperband: keep the top 1/N at each rung. Default: 3."),
    ] = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(
            "--bootstrap",
            metavar="N",
            help="asha, hyperband: prune nobody at a rung before N trials have reached it. Default: 0.",
        ),
    ] = None,
    sampler: Annotated[
        str | None,
        typer.Option(
            "--sampler", help=f"{', '.join(SAMPLERS)}: how the next trial's values are chosen (grid: lists only). Default: tpe."
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            metavar="URL|FILE",
            help="Where the study lives: an Optuna RDB URL (several processes or machines share it) or a journal file. Default: RUN_DIR/study.journal.",
        ),
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", metavar="NAME", help="The study's name in its storage. Default: the config's name.")
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", help="The study directory: trial runs, best.yaml, final/. Default: runs/tune-STUDY."),
    ] = None,
    final_seeds: Annotated[
        int | None,
        typer.Option(
            "--final-seeds",
            min=1,
            metavar="N",
            help="Then train the best settings on the whole training set with N seeds and score the test set (mean ± std).",
        ),
    ] = None,
    figure: Annotated[
        Path | None,
        typer.Option(
            "--figure",
            metavar="FILE",
            help="Draw the optimisation history, the anytime curve (best so far against epochs trained) and each key's importance (.png, .pdf or .svg).",
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows in the table of the best trials.")] = 10,
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective",
            metavar="NAME[,NAME...]",
            help="What a trial is scored by on validation: accuracy (default), nll, ece, aece; several (accuracy,ece) make a Pareto front.",
        ),
    ] = None,
    pick: Annotated[
        str | None,
        typer.Option(
            "--pick",
            metavar="TRIAL|OBJECTIVE|OBJECTIVE<=BOUND",
            help="With several objectives, the point of the front best.yaml takes: a trial's number, the best on one objective, "
            "or the best on the first within a bound (ece<=0.03). Default: the best on the first objective.",
        ),
    ] = None,
    pareto: Annotated[
        Path | None,
        typer.Option("--pareto", metavar="FILE", help="With several objectives, draw the Pareto front (.png, .pdf or .svg)."),
    ] = None,
    slice_figure: Annotated[
        Path | None,
        typer.Option(
            "--slice", metavar="FILE", help="Draw the first objective against each key of the space (.png, .pdf or .svg)."
        ),
    ] = None,
    contour: Annotated[
        Path | None,
        typer.Option(
            "--contour", metavar="FILE", help="Draw the first objective over the two most important keys (.png, .pdf or .svg)."
        ),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary",
            help="Train nothing: show the study as it stands (the table, best.yaml, --figure), even if unfinished. "
            "--run-dir DIR (or --storage) alone finds it: the study keeps its config and space.",
        ),
    ] = False,
    **options,
) -> None:
    """Search for the settings with the best validation accuracy (Optuna), stopping poor trials early.

    Needs data.val_split > 0: trials are compared on validation only, never on the test set. Each trial is a normal run under the study directory (listed by dropcli runs; a pruned one has status pruned); the same command continues the study, and processes given one --storage share it. At the end: a table of the best trials and best.yaml, a config that dropcli train -c takes.
    """
    from dropcli import data, parallel
    from dropcli.experiments import tune as tuning
    from dropcli.parallel.workers import launch_command

    tuning.optuna_module()
    drawn = any(path is not None for path in (figure, pareto, slice_figure, contour))
    style = figure_style(options, drawn=drawn, draws="--figure FILE (or --pareto, --slice, --contour)")
    given = {
        "space": space,
        "trials": trials,
        "timeout": timeout,
        "pruner": pruner,
        "grace": grace,
        "reduction": reduction,
        "bootstrap": bootstrap,
        "sampler": sampler,
        "storage": storage,
        "study": study,
        "final_seeds": final_seeds,
        "run_dir": run_dir,
        "objective": objective,
        "pick": pick,
        "enqueue": enqueue,
    }
    if summary and plan is None and not space and options["config"] is None:
        from dropcli.experiments.tune_stored import stored_search

        search = stored_search(options["set_"] or [], flags(options), given, _warn)  # the study keeps its config and space
    else:
        search = tuning.resolve(plan, options["config"], options["set_"] or [], flags(options), given)
    if summary and "://" not in search.storage and not Path(search.storage).is_file():
        raise DropcliError(f"--summary: there is no study in {search.storage} yet; run tune without --summary to start it")
    drawings = {"--pareto": pareto, "--slice": slice_figure, "--contour": contour}
    for option, path in {"--figure": figure, **drawings}.items():
        if path is not None:
            from dropcli.cli.display.figure import check_available, check_output

            check_output(path, option)
            check_available()
    check_extras(search.config)
    with parallel.start() as workers:
        if not summary:  # --summary trains nothing: no device or data needed
            workers.agreed(
                lambda: (
                    workers.device(search.config.device),
                    data.find_or_fetch(search.config.data.root, search.config.data.name),
                )
            )
        with interrupts_reported(lambda: _kept(search, launch_command())):
            found, complete = _search(search, options["quiet"] or summary, workers, summary)
            final = _final(search, found, options["quiet"], workers) if complete and not summary else None
            if summary:  # the final seeds as the last session left them
                from dropcli.experiments.tune_results import kept_final

                final = kept_final(search)
        if workers.is_primary:
            _show(search, found, final, figure, top, style)
            _show_objectives(search, found, final, drawings, style)


def _search(search, quiet: bool, workers, summary: bool = False):
    from dropcli.cli.display.tune_view import TuneView
    from dropcli.experiments import tune_pruning, tune_results, tune_search

    with TuneView(console(), quiet=quiet or not workers.is_primary) as view:
        trained, stopped = (
            (0, "summary") if summary else tune_search.search(search, [view], view.trial_begins, workers, _scorer())[1:]
        )
        view.search_ended(stopped)
    counts = workers.gather(trained)  # and every worker's trials are told before rank 0 reads the study
    if workers.is_primary:
        screen = console()
        where = f" ({' + '.join(map(str, counts))} on {len(counts)} workers)" if len(counts) > 1 else ""
        screen.print(f"this command trained {sum(counts)} trial{'s' if sum(counts) != 1 else ''}{where}", highlight=False)
        if stopped == "timeout":
            later = "; --final-seeds waits until the study holds all its trials" if search.final_seeds else ""
            screen.print(
                f"--timeout reached; the same command continues the study (the stopped trial first){later}", highlight=False
            )
    from dropcli.experiments.tune import open_study  # the study as every worker left it

    study = open_study(search, None, None, _warn)
    rung_epochs = tune_pruning.rung_epochs(search.pruner, search.pruning, search.config, search.max_epochs)
    result = tune_results.found(study, rung_epochs, search)
    if workers.is_primary:
        tune_results.write_best(search, result)
    # Another process's trial may still beat the best: the final seeds wait for the last to end.
    running = [row.number for row in result.rows if row.state == "running"]
    if stopped is None and running and search.final_seeds and not summary and workers.is_primary:
        console().print(
            f"--final-seeds waits for trial {', '.join(map(str, running))}, still running: the process that ends "
            "the study's last trial trains them (or run the same command once it has)",
            highlight=False,
        )
    return result, stopped is None and not running


def _scorer():
    from dropcli.uncertainty.objectives import split_scores

    return split_scores


def _show_objectives(search, found, final, drawings: dict[str, Path | None], style) -> None:
    """A study of several objectives: its front; the --pareto, --slice and --contour figures; with
    final seeds, every objective on test."""
    from dropcli.cli.display import tune_front

    screen = console()
    if found.front:
        screen.print(tune_front.front_table(found, search.objectives), soft_wrap=not screen.is_terminal)
    tune_front.draw(search, found, drawings, style, screen)
    if final is not None and final.seeds and search.objectives != ("accuracy",):
        from dropcli.experiments.tune_results import final_scores
        from dropcli.parallel.workers import ONE_PROCESS

        scores = final_scores(search, found.best_config, _scorer(), ONE_PROCESS, final.seeds)
        screen.print(tune_front.final_line(scores, final.seeds), highlight=False, soft_wrap=not screen.is_terminal)


def _warn(message: str) -> None:
    console(stderr=True).print(f"warning: {message}", highlight=False)


def _final(search, found, quiet: bool, workers):
    if not search.final_seeds or found.best_config is None:
        return None
    from dropcli.experiments import tune_results

    listeners = [_run_reporter(quiet or not workers.is_primary, run_lines=not quiet)]
    return tune_results.train_final(search, found.best_config, listeners, workers)


def _run_reporter(quiet: bool, run_lines: bool):
    from dropcli.cli.options import reporter

    return reporter(quiet, run_lines)


def _show(search, found, final, figure: Path | None, top: int, style) -> None:
    from dropcli.cli.display.tune_view import running_hint, top_table, value_name
    from dropcli.experiments.tune import BEST_CONFIG, space_text

    screen = console()
    if found.rows:
        # In a terminal the title and caption wrap between words; in a log each stays one line.
        screen.print(top_table(found, top), soft_wrap=not screen.is_terminal)
    hint = running_hint(found, search.storage, search.study)
    if hint is not None:
        screen.print(hint, highlight=False, soft_wrap=not screen.is_terminal)
    if found.best is None:
        screen.print("no trial has finished yet, so there is no best.yaml", highlight=False)
    else:
        best = search.directory / BEST_CONFIG
        screen.print(
            f"best: trial {found.best.number}, {value_name(search.objectives[0])} {found.best.value:.4f}; its settings are in {best}; train them with:",
            highlight=False,
            soft_wrap=not screen.is_terminal,
        )
        screen.print(f"  dropcli train -c {best}", highlight=False, soft_wrap=True)  # a command to copy: whole, on its own line
    if final is not None and final.test_acc is not None:
        std = f" ± {final.test_acc.std:.4f}" if final.test_acc.std is not None else ""
        screen.print(
            f"final: {final.seeds} seed{'s' if final.seeds != 1 else ''} on the whole training set: "
            f"test acc {final.test_acc.mean:.4f}{std} (runs in {search.directory / 'final'})",
            highlight=False,
            soft_wrap=not screen.is_terminal,
        )
    from dropcli.cli.display.tune_view import pruning_lines

    for line in pruning_lines(found):
        screen.print(line, highlight=False, soft_wrap=not screen.is_terminal)
    if figure is not None:
        from dropcli.cli.display import tune_view
        from dropcli.cli.display.figure import save

        caption = f"study {search.study}: {space_text(search.space)}; pruner {search.pruner_text}, sampler {search.sampler}"
        save(tune_view.figure(found, caption, style), figure)
        screen.print(f"figure saved to {figure}", highlight=False)
        note = tune_view.importance_note(found)
        if note is not None:
            screen.print(note, highlight=False, soft_wrap=not screen.is_terminal)
    screen.print(
        f"tune saved to {search.directory} (study {search.study!r} in {shown(search.storage)})",
        highlight=False,
        soft_wrap=not screen.is_terminal,
    )


def _kept(search, launch: str) -> str:
    if not Path(search.storage).exists() and "://" not in search.storage:
        return "no trial was started and nothing is kept; run the same command again"
    how = "the same command" if launch == "dropcli" else f"the same command ({launch} ...)"
    return (
        f"the study is kept in {shown(search.storage)} and its trials' runs in {search.directory}; "
        f"continue with {how}: the interrupted trial goes on from its last epoch"
    )
