"""`config` and `data`: the resolved config, the shipped configs, and the data sets."""

from pathlib import Path
from typing import Annotated

import typer

from dropcli.cli.app import Command, config_app, data_app
from dropcli.cli.display.console import console
from dropcli.cli.options import CONFIG_OPTIONS, DataDirOption, DatasetOption, load, with_options
from dropcli.config import to_yaml
from dropcli.config.vocabulary import DATA_SETS, one_of
from dropcli.errors import DropcliError


@config_app.command("show", cls=Command, epilog="Example: dropcli config show -c configs/smoke.yaml --set optim.lr=0.05")
@with_options(CONFIG_OPTIONS)
def config_show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False, **options) -> None:
    """Print the resolved config as YAML, with the same options train takes."""
    import json

    from dropcli.config import to_dict

    cfg = load(options)
    typer.echo(json.dumps(to_dict(cfg), indent=2) if as_json else to_yaml(cfg), nl=as_json)


@config_app.command("list", cls=Command, epilog="Example: dropcli config list; then: dropcli train -c smoke")
def config_list(
    paths: Annotated[bool, typer.Option("--paths", help="Add the file each config is read from.")] = False,
) -> None:
    """List the configs that come with dropcli; pass a name to -c, e.g. dropcli train -c smoke."""
    from dropcli.cli.display.setup_tables import configs_table
    from dropcli.config.shipped import shipped_configs, summary

    configs = shipped_configs()
    console().print(configs_table(configs, {name: summary(path) for name, path in configs.items()}, paths))


@config_app.command("cp", cls=Command, epilog="Example: dropcli config cp smoke my-run.yaml; then: dropcli train -c my-run.yaml")
def config_cp(
    name: Annotated[str, typer.Argument(help="A shipped config's name (see dropcli config list).")],
    file: Annotated[Path, typer.Argument(help="Where to write the copy: a file, or a directory to put NAME.yaml in.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Copy a shipped config, comments and all, to a file you can edit."""
    from dropcli.config.shipped import copy_shipped

    typer.echo(f"wrote {copy_shipped(name, file, force)}")


@data_app.command("fetch", cls=Command, epilog="Example: dropcli data fetch --data-dir ~/data/fashion-mnist")
def data_fetch(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Download here. Default: $DROPCLI_DATA or ~/.cache/dropcli/NAME.")
    ] = None,
    name: DatasetOption = "fashion-mnist",
) -> None:
    """Make a data set available (Fashion-MNIST unless --dataset): use a copy already here, else download it with torchvision."""
    from dropcli import data

    _check_dataset(name)
    directory = data.find_or_fetch(data_dir, name)
    data.read_raw(directory, name)
    typer.echo(f"{data.dataset(name).title} is available in {directory}")


@data_app.command("info", cls=Command, epilog="Example: dropcli data info --data-dir /usr/share/datasets/fashion-mnist")
def data_info(data_dir: DataDirOption = None, name: DatasetOption = "fashion-mnist") -> None:
    """Say where a data set (Fashion-MNIST unless --dataset) was found and check every file's structure."""
    from dropcli import data
    from dropcli.cli.display.setup_tables import data_table

    _check_dataset(name)
    directory = data.locate(data_dir, name)
    raw = data.read_raw(directory, name)
    paths = data.find_files(directory, name)
    rows = []
    for split, (images, labels) in raw.items():
        images_name, labels_name = data.FILES[split]
        shape = "x".join(map(str, images.shape[1:]))
        rows.append((split, paths[images_name].name, paths[labels_name].name, len(labels), shape))
    console().print(data_table(f"{data.dataset(name).title} in {directory}", rows))


def _check_dataset(name: str) -> None:
    if name not in DATA_SETS:
        raise DropcliError(f"--dataset must be one of {one_of(DATA_SETS)}, got {name!r}")
