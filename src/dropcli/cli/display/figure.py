"""What every figure shares: matplotlib loaded once with the house style, sized and typeset for a
paper (--width, --font-size, --no-footer), panels in as many columns as the width holds, a
legend above and a caption line below that fit the width, the format chosen by the output's
suffix, fonts a publisher accepts, and saving that never leaves a half-written file."""

import math
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dropcli.errors import DropcliError
from dropcli.files import atomic, check_writable

# The suffix of the output file decides its format.
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
ONE_COLUMN = 3.25  # inches: one column of a two-column paper (two columns: 6.75)
DPI = 200
MIN_LINE = 20  # characters: text is never wrapped narrower


@dataclass(frozen=True)
class Style:
    """How a figure is sized and typeset: saved exactly `width` inches wide, so that a paper
    includes it at 100% and its type is `font_size` points as printed."""

    width: float = ONE_COLUMN
    font_size: float = 8.0  # labels and titles; ticks and legends one point less, the caption 1.5 less
    footer: bool = True  # the caption line that says what was trained; --no-footer leaves it out

    @property
    def small(self) -> float:
        return self.font_size - 1

    @property
    def caption_size(self) -> float:
        return max(self.font_size - 1.5, 4.0)


STYLE = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.markersize": 3.5,
    "lines.linewidth": 1.2,
    "legend.handlelength": 2.2,
    # TrueType (Type 42) fonts in PDF and PostScript: many venues reject Type 3; SVG keeps text as text.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}


def _fonts(style: Style) -> dict:
    return {
        "font.size": style.font_size,
        "axes.titlesize": style.font_size,
        "axes.labelsize": style.font_size,
        "figure.titlesize": style.font_size,
        "legend.fontsize": style.small,
        "xtick.labelsize": style.small,
        "ytick.labelsize": style.small,
    }


def load_pyplot(style: Style | None = None):
    """matplotlib.pyplot, drawing to files only, in the house style at `style`'s type size; one
    line where it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise DropcliError("plotting needs matplotlib: pip install 'dropcli[plot]' (or pip install matplotlib)") from None
    if "ipykernel" not in sys.modules:  # a notebook keeps its own backend, which shows figures inline
        matplotlib.use("Agg")  # files only: no window, works on a server
    import matplotlib.pyplot as pyplot

    pyplot.rcParams.update(STYLE | _fonts(style or Style()))
    return pyplot


def check_available() -> None:
    """Fail now, before any training, if a figure could not be drawn at the end."""
    load_pyplot()


def check_output(path: Path, option: str = "-o") -> str:
    """The format for `path`, from its suffix; DropcliError for a directory or a suffix that is not
    supported. `option` names the flag that gave the path (tune's is --figure)."""
    if path.is_dir():
        raise DropcliError(f"cannot write {path}: it is a directory; name a file, e.g. {option} {path / 'curves.png'}")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DropcliError(
            f"cannot write {path}: the suffix chooses the format, and {path.suffix or 'no suffix'!r} is none of "
            f"{', '.join(FORMATS)}; e.g. {option} {path.with_suffix('.pdf')}"
        )
    check_writable(path, option)  # before anything is read or drawn, as evaluate's -o
    return fmt


def save(figure, path: Path) -> None:
    """Write the figure in the format its suffix names, through a temporary file, so `path` is
    never half-written."""
    try:
        fmt = check_output(path)
        if not path.parent.is_dir():
            raise DropcliError(f"cannot write {path}: no directory {path.parent}")
        with atomic(path) as temporary:
            # No tight bounding box: the file is exactly the figure's width, as --width asked.
            figure.savefig(temporary, dpi=DPI, format=fmt)
    finally:
        load_pyplot().close(figure)


def panels(count: int, style: Style, aspect: float = 0.7, min_width: float = 2.0, **options):
    """A figure `style.width` wide holding `count` panels in as many columns as fit at
    `min_width` inches each (a one-column figure stacks them), each panel `aspect` as tall as
    wide; (figure, the panels in reading order). Spare places are hidden."""
    pyplot = load_pyplot(style)
    columns = panel_columns(count, style, min_width)
    rows = math.ceil(count / columns)
    height = rows * (style.width / columns) * aspect
    figure, grid = pyplot.subplots(rows, columns, figsize=(style.width, height), squeeze=False, **options)
    axes = [ax for row in grid for ax in row]
    for spare in axes[count:]:
        spare.set_visible(False)
    return figure, axes[:count]


def grid(rows: int, columns: int, style: Style, aspect: float = 0.8, tallest: float = 1.9, **options):
    """A figure `style.width` wide holding a `rows` x `columns` grid of panels, each `aspect` as
    tall as wide but no taller than `tallest` inches; (figure, the panels as a list of rows)."""
    pyplot = load_pyplot(style)
    height = rows * min(style.width / columns * aspect, tallest)
    figure, axes = pyplot.subplots(rows, columns, figsize=(style.width, height), squeeze=False, **options)
    return figure, [list(row) for row in axes]


def panel_columns(count: int, style: Style, min_width: float) -> int:
    """How many of `count` panels, each at least `min_width` inches wide, sit side by side."""
    return max(1, min(count, int(style.width // min_width)))


def top_legend(figure, handles, labels, style: Style, most_columns: int = 4):
    """A legend above the panels in as many columns (up to `most_columns`) as the width holds;
    in one column, labels still too wide (a run's many settings) are wrapped to the width."""
    renderer = figure.canvas.get_renderer()
    for columns in range(min(len(handles), most_columns), 0, -1):
        legend = figure.legend(
            handles,
            labels,
            loc="upper center",
            ncol=columns,
            frameon=False,
            fontsize=style.small,
            columnspacing=1.0,
            handletextpad=0.5,
            borderaxespad=0.2,
        )
        if legend.get_window_extent(renderer).width <= 0.98 * figure.bbox.width:
            return legend
        if columns == 1:
            break
        legend.remove()
    else:
        return None

    def rewrap(characters: int) -> None:
        for text, label in zip(legend.get_texts(), labels, strict=True):
            text.set_text(_fill(label, characters))

    _narrow_until_it_fits(legend, figure, rewrap, max(len(label) for label in labels))
    return legend


def finish(figure, caption: str, style: Style) -> None:
    """Lay the figure out: the title and legends on top and the caption below (--no-footer
    leaves out both title and caption), each wrapped or folded to the width; the figure grows by
    their height, so the panels keep theirs."""
    renderer = figure.canvas.get_renderer()
    dpi = figure.dpi
    title = figure._suptitle  # matplotlib keeps the suptitle here; there is no public getter
    if title is not None and not style.footer:
        title.remove()  # --no-footer: the paper's caption says what the figure is
        title = None
    if title is not None:
        _fit_width(title, title.get_text(), figure, style.font_size)
    caption_text = None
    if caption and style.footer:
        caption_text = figure.text(0.5, 0, "", ha="center", va="bottom", fontsize=style.caption_size, color="0.25")
        _fit_width(caption_text, caption, figure, style.caption_size)
    gap = 0.04  # inches between the parts
    top = ([title] if title is not None else []) + list(figure.legends)
    heights = [part.get_window_extent(renderer).height / dpi + gap for part in top]
    bottom = caption_text.get_window_extent(renderer).height / dpi + 2 * gap if caption_text is not None else gap
    panels_height = figure.get_figheight()
    total = panels_height + sum(heights) + bottom + gap
    figure.set_figheight(total)
    y = 1 - gap / total
    for part, height in zip(top, heights):
        if part is title:
            part.set_y(y)
            part.set_va("top")
        else:
            part.set_bbox_to_anchor((0.5, y), transform=figure.transFigure)
        y -= height / total
    if caption_text is not None:
        caption_text.set_y(gap / total)
    # Titles above inset axes (the reliability strips) find their place only when drawn: lay
    # out again with them in place, until nothing moves.
    for _ in range(4):
        before = [ax.get_position().bounds for ax in figure.axes]
        figure.tight_layout(rect=(0, bottom / total, 1, y), pad=0.3, h_pad=0.8)  # h_pad: a title clear of the x label above
        figure.draw_without_rendering()
        if [ax.get_position().bounds for ax in figure.axes] == before:
            break


def wrapped(text: str, width: float, points: float) -> str:
    """`text` broken between words into lines that fit `width` inches at `points` type."""
    return _fill(text, _characters(width, points))


def _characters(width: float, points: float) -> int:
    return max(MIN_LINE, int(width * 72 / (points * 0.56)))  # an average character is about half an em


def _fill(text: str, characters: int) -> str:
    """`text` in lines of at most `characters`, broken between words (a longer word, inside it)."""
    return "\n".join(textwrap.fill(line, characters, break_on_hyphens=False) for line in text.split("\n"))


def _fit_width(artist, text: str, figure, points: float) -> None:
    """Set `text` on `artist` wrapped to the figure's width as drawn: the estimate in wrapped()
    is an average, and a caption of digits and commas (a search's space) is wider than that."""
    characters = _characters(figure.get_figwidth(), points)
    artist.set_text(_fill(text, characters))
    _narrow_until_it_fits(artist, figure, lambda narrower: artist.set_text(_fill(text, narrower)), characters)


def _narrow_until_it_fits(artist, figure, rewrap: Callable[[int], None], characters: int) -> None:
    """Call rewrap() with ever shorter lines (a tenth shorter each time, MIN_LINE at the least)
    until `artist` as drawn fits the figure's width."""
    renderer = figure.canvas.get_renderer()
    while characters > MIN_LINE and artist.get_window_extent(renderer).width > 0.98 * figure.bbox.width:
        characters = max(MIN_LINE, int(characters * 0.9))
        rewrap(characters)
