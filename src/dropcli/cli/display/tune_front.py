"""A multi-objective tune study's answer: its Pareto front as a table and a figure, and the final
seeds' score on every objective."""

from rich.table import Table

from dropcli.cli.display.figure import Style, finish, panels, top_legend
from dropcli.experiments.tune_objectives import DIRECTIONS
from dropcli.experiments.tune_results import Found


def front_table(result: Found, objectives: tuple[str, ...]) -> Table:
    """The trials of the front, by number: each objective's validation score, the picked one marked."""
    table = Table(
        title=f"the Pareto front of {', '.join(objectives)}: {len(result.front)} of {result.counts.get('complete', 0)} complete trials",
        caption=f"* best.yaml: {result.picked}" if result.best else f"no trial of the front meets the rule: {result.picked}",
    )
    for heading in (
        "trial",
        *(f"val {name} ({'higher' if DIRECTIONS[name] == 'maximize' else 'lower'} is better)" for name in objectives),
    ):
        table.add_column(heading, justify="right")
    table.add_column("run")
    for row in result.front:
        mark = " *" if result.best is not None and row.number == result.best.number else ""
        table.add_row(f"{row.number}{mark}", *(f"{value:.4f}" for value in row.objective_values), row.run or "-")
    return table


def front_figure(result: Found, objectives: tuple[str, ...], caption: str, style: Style | None = None):
    """The first two objectives of every complete trial, the front joined up and the picked point ringed."""
    style = style or Style()
    fig, (axes,) = panels(1, style, aspect=0.75)
    complete = [row for row in result.rows if row.state == "complete"]
    x, y = objectives[0], objectives[1]
    axes.plot(
        [r.objective_values[0] for r in complete],
        [r.objective_values[1] for r in complete],
        "o",
        color="0.7",
        markersize=4,
        label="trial",
    )
    front = sorted(result.front, key=lambda row: row.objective_values[0])
    axes.plot(
        [r.objective_values[0] for r in front],
        [r.objective_values[1] for r in front],
        "o-",
        color="C0",
        markersize=5,
        label="Pareto front",
    )
    if result.best is not None:
        axes.plot(
            *result.best.objective_values[:2],
            "o",
            markersize=12,
            markerfacecolor="none",
            color="C3",
            label=f"best.yaml (trial {result.best.number})",
        )
    axes.set(xlabel=f"validation {x}", ylabel=f"validation {y}")
    axes.grid(alpha=0.3)
    top_legend(fig, *axes.get_legend_handles_labels(), style, most_columns=3)
    finish(fig, caption, style)
    return fig


def final_line(scores: dict[str, tuple[float, float | None]], seeds: int) -> str:
    """final: every objective on the test set, mean ± std over the seeds."""
    parts = [f"{name} {mean:.4f}" + (f" ± {std:.4f}" if std is not None else "") for name, (mean, std) in scores.items()]
    return f"final, every objective on the test set over {seeds} seed{'s' if seeds != 1 else ''}: {', '.join(parts)}"


def draw(search, result: Found, drawings: dict, style: Style, screen) -> None:
    """The figures asked for: --pareto (several objectives only), --slice, --contour."""
    from dropcli.cli.display import tune_space
    from dropcli.cli.display.figure import save
    from dropcli.experiments.tune import space_text

    caption = f"study {search.study}: {space_text(search.space)}"
    objective = search.objectives[0]
    figures = {
        "--pareto": lambda: front_figure(result, search.objectives, f"study {search.study}: {result.picked}", style),
        "--slice": lambda: tune_space.slice_figure(result, search.space, objective, caption, style),
        "--contour": lambda: tune_space.contour_figure(result, search.space, objective, caption, style),
    }
    for option, path in drawings.items():
        if path is None or (option == "--pareto" and not result.front):
            continue
        save(figures[option](), path)
        screen.print(f"{option[2:]} figure saved to {path}", highlight=False)
