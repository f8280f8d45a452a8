"""What every figure shares: matplotlib loaded once with the house style, the format chosen by
the output's suffix, fonts a publisher accepts, and saving that never leaves a half-written file."""

import sys
from pathlib import Path

from dropcli.errors import DropcliError
from dropcli.files import atomic, check_writable

# The suffix of the output file decides its format.
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    # TrueType (Type 42) fonts in PDF and PostScript: many venues reject Type 3; SVG keeps text as text.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}


def load_pyplot():
    """matplotlib.pyplot, drawing to files only, in the house style; one line where it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise DropcliError("plotting needs matplotlib: pip install 'dropcli[plot]' (or pip install matplotlib)") from None
    if "ipykernel" not in sys.modules:  # a notebook keeps its own backend, which shows figures inline
        matplotlib.use("Agg")  # files only: no window, works on a server
    import matplotlib.pyplot as pyplot

    pyplot.rcParams.update(STYLE)
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
            figure.savefig(temporary, dpi=200, format=fmt, bbox_inches="tight", pad_inches=0.05)
    finally:
        load_pyplot().close(figure)
