"""A tune space checked against its base config, before any trial: each list's values as the
config holds them, each range's ends in range, and every key's values fit for every net the
space may draw (tune.resolve and tune_stored call it)."""

import dataclasses
from typing import Any

from dropcli.config import Config, architecture, get, replace
from dropcli.errors import DropcliError, first_line
from dropcli.experiments import Grid, check_keys


def checked_space(config: Config, space: list[Grid]) -> list[Grid]:
    """The space with each list's values as the config holds them (checked like any setting, each
    named once) and each range's ends checked; model.hidden first, so that per-layer rates
    (model.dropout_1, ...) apply to the trial's own net. Refuses a space that varies nothing."""
    if not space:
        raise DropcliError("tune needs a space: --space KEY=LOW:HIGH[:log] or --space KEY=V1,V2 (repeatable), or --plan FILE")
    check_keys([grid.key for grid in space], "--space")
    checked = []
    for grid in sorted(space, key=lambda g: g.key != "model.hidden"):
        if grid.span is not None:
            _check_ends(config, grid)
            checked.append(grid)
            continue
        values = tuple(_config_value(config, grid, value) for value in grid.values)
        repeated = sorted({architecture.short(v) for v in values if values.count(v) > 1})
        if repeated:
            raise DropcliError(f"{grid.source} names {', '.join(repeated)} more than once; name each value once")
        checked.append(dataclasses.replace(grid, values=values))
    _check_every_net(config, checked)
    if all(grid.span is None and len(grid.values) == 1 for grid in checked):
        raise DropcliError(
            f"the space fixes every key ({', '.join(g.key for g in checked)}: one value each), so there is nothing to search; "
            "give a key a range LOW:HIGH or two values, or set fixed values with --set"
        )
    return checked


def _check_ends(config: Config, grid: Grid) -> None:
    for end in grid.span[:2]:
        replace(config, grid.key, end, source=f"{grid.source}={end:g}")


def _check_every_net(config: Config, space: list[Grid]) -> None:
    """Where the space draws the net (model.hidden), every other key's values must fit each net it
    may draw (a second layer's rate needs two layers), or a trial would fail in mid-study."""
    if not space or space[0].key != "model.hidden" or space[0].span is not None:
        return
    for hidden in space[0].values:
        net = replace(config, "model.hidden", hidden)
        for grid in space[1:]:
            place = architecture.list_place(grid.key)[1]
            if place is not None and place >= len(hidden):
                from dropcli.runtime import count_text  # runtime imports torch; tune --help must not

                raise DropcliError(
                    f"{grid.source} sets hidden layer {place + 1}, and the space also draws model.hidden={architecture.short(hidden)} "
                    f"({count_text(len(hidden), 'layer')}); draw nets with at least {place + 1} layers, or leave {grid.key} out"
                )
            try:
                if grid.span is not None:
                    _check_ends(net, grid)
                else:
                    for value in grid.values:
                        _config_value(net, grid, value)
            except DropcliError as error:
                raise DropcliError(
                    f"with model.hidden={architecture.short(hidden)} (drawn by --space): {first_line(error)}"
                ) from None


def _config_value(config: Config, grid: Grid, value: Any) -> Any:
    normal = get(replace(config, grid.key, value, source=f"{grid.source}={architecture.short(value)}"), grid.key)
    if grid.key == "model.dropout" and not isinstance(value, (list, tuple)):
        return normal[0]  # one rate for every layer, whatever the depth of the trial's net
    return normal
