"""Tables of `config list` and `data info`."""

from pathlib import Path

from rich.markup import escape
from rich.table import Table


def configs_table(configs: dict[str, Path], summaries: dict[str, str], paths: bool) -> Table:
    """The shipped configs: name and one-line summary, and with `paths` the file each is read from."""
    table = Table(
        title="shipped configs: dropcli train -c NAME; a copy to edit: dropcli config cp NAME FILE", header_style="bold"
    )
    table.add_column("name", no_wrap=True)
    table.add_column("what")
    if paths:
        table.add_column("file", overflow="fold")  # a path may fold; words never do
    for name, path in configs.items():
        table.add_row(name, escape(summaries[name]), *([escape(str(path))] if paths else []))
    return table


def data_table(title: str, rows: list[tuple[str, str, str, int, str]]) -> Table:
    """One row per split: its files, example count and image shape."""
    table = Table(title=escape(title), header_style="bold")
    for column in ("split", "images file", "labels file", "examples", "shape"):
        table.add_column(column, no_wrap=column != "images file" and column != "labels file")
    for split, images, labels, count, shape in rows:
        table.add_row(split, escape(images), escape(labels), f"{count:,}", shape)
    return table
