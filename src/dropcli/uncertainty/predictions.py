"""--predictions FILE: every example's class probabilities under each method and shift, for
anyone to recompute the scores without dropcli.

The suffix picks the format:
- .npz (numpy: `np.load(FILE)`): arrays `probabilities` (rows, 10) float32, `label` (rows,)
  int64, `index` (rows,) the example's position in the split, `method` and `shift_family`
  (rows,) strings, `shift_value` (rows,) float64, `run` (rows,) strings: the run directory (or
  checkpoint file) the row's model came from, "ensemble" for an ensemble's row; plus `class_names` (10,);
- .csv (pandas: `pd.read_csv(FILE)`): one row per example, method, shift and run, with the
  columns method, run, shift_family, shift_value, index, label, p0 ... p9.
"""

import csv
import io
from pathlib import Path

from dropcli.data import dataset
from dropcli.errors import DropcliError
from dropcli.runs import CHECKPOINT_DIR

SUFFIXES = (".npz", ".csv")
ENSEMBLE_RUN = "ensemble"  # the run column of an ensemble's rows


def check_path(path: Path) -> None:
    """Refuse, before any work, a file that could not be written."""
    from dropcli.files import check_writable

    if path.suffix not in SUFFIXES:
        raise DropcliError(f"--predictions {path}: name a .npz (numpy) or .csv (pandas) file")
    check_writable(path, "--predictions")


def write(path: Path, study) -> int:
    """Write `study.predictions` to `path` (atomically); the number of rows written."""
    import numpy
    import torch

    from dropcli.files import atomic

    blocks = study.predictions
    n = len(study.labels)
    columns = {
        "probabilities": torch.cat([b.probabilities for b in blocks]).float().numpy(),
        "label": study.labels.repeat(len(blocks)).numpy(),
        "index": numpy.tile(numpy.arange(n), len(blocks)),
        "method": numpy.repeat(numpy.array([b.method for b in blocks]), n),
        "run": numpy.repeat(numpy.array([_run_name(study, b.member) for b in blocks]), n),
        "shift_family": numpy.repeat(numpy.array([b.shift.family for b in blocks]), n),
        "shift_value": numpy.repeat(numpy.array([b.shift.value for b in blocks], dtype=numpy.float64), n),
    }
    with atomic(path) as temporary, open(temporary, "wb") as file:
        if path.suffix == ".npz":
            numpy.savez_compressed(
                file, **columns, class_names=numpy.array(dataset(study.members[0].config.data.name).class_names)
            )
        else:
            file.write(_csv(columns).encode())
    return len(columns["label"])


def _run_name(study, member: int) -> str:
    """The run directory of a member's checkpoint (a checkpoint file named by itself), or "ensemble"."""
    if member < 0:
        return ENSEMBLE_RUN
    checkpoint = study.members[member].checkpoint
    return str(checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else checkpoint)


def _csv(columns) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    classes = columns["probabilities"].shape[1]
    writer.writerow(["method", "run", "shift_family", "shift_value", "index", "label", *(f"p{c}" for c in range(classes))])
    # repr-exact floats: pandas reads back the very float32 values that were scored.
    for row in zip(
        columns["method"],
        columns["run"],
        columns["shift_family"],
        columns["shift_value"],
        columns["index"],
        columns["label"],
        columns["probabilities"].tolist(),
    ):
        writer.writerow([*map(str, row[:6]), *map(repr, row[6])])
    return text.getvalue()
