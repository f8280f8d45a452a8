"""The live table of a run in a terminal: a row per epoch, as many columns as the width holds.

Every column keeps its numbers whole. Where the terminal is too narrow for all of them, the
least needed go first (statistics' zero fractions, then time, lr, the statistics' variances,
the losses), and the caption names them; metrics.jsonl and the plain log lines keep everything.
"""

from rich import box
from rich.table import Table

from dropcli.config.vocabulary import INPUT_SLOT, noise_slots
from dropcli.training.records import EpochMetrics

TRAIN_ACC_EPOCH = "train acc (dropout on)"


class EpochTable:
    """The table and which of its possible columns it shows."""

    def __init__(self, config, width: int):
        columns = _columns(config)
        kept = list(range(len(columns)))
        for index in sorted(kept, key=lambda i: columns[i][2], reverse=True):  # least needed first
            if _width([columns[i] for i in kept]) <= width or columns[index][2] == 0:
                break
            kept.remove(index)
        left_out = [columns[i][0].replace("\n", " ") for i in range(len(columns)) if i not in kept]
        caption = f"left out for width: {', '.join(left_out)} (all in metrics.jsonl)" if left_out else None
        self.kept = kept
        # No column rules and one space between columns: room for more columns.
        self.table = Table(caption=caption, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1))
        for index in kept:
            self.table.add_column(columns[index][0], justify="right", no_wrap=True)

    def add(self, metrics: EpochMetrics) -> None:
        cells = epoch_cells(metrics)
        self.table.add_row(*(cells[i] for i in self.kept))


def _columns(config) -> list[tuple[str, int, int]]:
    """(header, width of its cells, how soon it goes when space is short: 0 never)."""
    columns = [
        ("epoch", len(str(config.train.epochs)), 0),
        ("lr", 6, 4),
        ("train\nloss", 6, 2),
        ("train acc\n(dropout\non)", 6, 0),
    ]
    if config.data.val_split > 0:
        columns += [("val\nloss", 6, 2), ("val\nacc", 6, 0)]
    columns += [("test\nloss", 6, 1), ("test\nacc", 6, 0), ("time\n(s)", 6, 5)]
    if config.metrics.activation_stats:
        for slot in noise_slots(len(config.model.hidden), config.model.dropout_input > 0):
            label = slot_label(slot)
            columns += [(f"var {label}\nbefore\n→after", 7, 3), (f"zeros\n{label}", 5, 6)]
    return columns


def _width(columns: list[tuple[str, int, int]]) -> int:
    """The table's width: each column as wide as its header's longest line or its cells, and two
    spaces before it (the box's blank rule and the padding)."""
    return sum(max(cells, *map(len, header.split("\n"))) + 2 for header, cells, _ in columns)


def slot_label(slot: str) -> str:
    """ "noise_2" -> "2", "input_noise" -> "input": short column names."""
    return "input" if slot == INPUT_SLOT else slot.removeprefix("noise_")


def slots_of(activations: dict[str, float] | None) -> list[str]:
    """The noise slots an epoch's activation statistics cover, in the model's order."""
    return list(dict.fromkeys(key.rsplit(".", 1)[0] for key in activations)) if activations else []


def lr_text(m: EpochMetrics) -> str:
    return "-" if m.lr is None else f"{m.lr:.3g}"


def epoch_cells(m: EpochMetrics) -> list[str]:
    """A row with every possible column, in _columns' order."""
    cells = [str(m.epoch), lr_text(m), f"{m.train_loss:.4f}", f"{m.train_acc:.4f}"]
    if m.val_loss is not None:
        cells += [f"{m.val_loss:.4f}", f"{m.val_acc:.4f}"]
    cells += ["-" if m.test_loss is None else f"{m.test_loss:.4f}", "-" if m.test_acc is None else f"{m.test_acc:.4f}"]
    cells.append(f"{m.seconds:.2f}")
    for slot in slots_of(m.activations):
        # before and after on two lines: the column stays narrow
        cells += [
            f"{m.activations[f'{slot}.var_before']:.4f}\n→{m.activations[f'{slot}.var_after']:.4f}",
            f"{m.activations[f'{slot}.zeros']:.3f}",
        ]
    return cells
