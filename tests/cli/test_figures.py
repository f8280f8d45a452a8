"""Figures: every kind decodes, is not blank, has the format its suffix names, and labels what it shows."""

from pathlib import Path

import matplotlib.image
import pytest

from dropcli.cli.display import plots, sweep_plots
from dropcli.cli.display.figure import check_output, save
from dropcli.errors import DropcliError
from dropcli.experiments import Cell, Stat


def history(epochs: int, offset: float, val: bool) -> list[dict]:
    records = []
    for epoch in range(1, epochs + 1):
        record = {
            "epoch": epoch,
            "train_loss": 2 / epoch + offset,
            "train_acc": 0.5 + 0.1 * epoch - offset,
            "test_loss": 1.8 / epoch + offset,
            "test_acc": 0.55 + 0.1 * epoch - offset,
        }
        if val:
            record |= {"val_loss": 1.7 / epoch, "val_acc": 0.56 + 0.1 * epoch}
        records.append(record)
    return records


def cell(values: dict, mean: float, seeds: int = 2, val: bool = False) -> Cell:
    def stat(value: float) -> Stat:
        return Stat(value, 0.01 if seeds > 1 else None)

    names = [f"{values}_seed{seed}" for seed in range(seeds)]
    return Cell(
        values,
        seeds,
        stat(0.5),
        stat(0.6),
        stat(mean),
        stat(mean + 0.01) if val else None,
        stat(mean + 0.02),
        stat(0.02 - mean / 10),
        stat(1.0),
        stat(1000.0),
        names,
        {},
    )


def assert_decodes(path, min_width=800) -> None:
    """A PNG of a sensible size whose pixels are not all one colour."""
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= 300, (width, height)
    assert pixels[..., :3].std() > 0.05  # a blank (one-colour) image has 0


def axis_labels(figure) -> list[str]:
    return [label for axes in figure.axes for label in (axes.get_xlabel(), axes.get_ylabel()) if label]


def test_learning_curves_label_both_panels_and_draw_validation(tmp_path):
    figure = plots.learning_curves([plots.RunCurves("scratch", [history(4, 0, val=True)])], "config smoke · scratch · seed 0")
    loss_axes, acc_axes = figure.axes
    assert (loss_axes.get_ylabel(), acc_axes.get_ylabel()) == ("cross-entropy loss", "accuracy")
    assert loss_axes.get_xlabel() == acc_axes.get_xlabel() == "epoch"
    assert len(acc_axes.get_lines()) == 3  # train, validation, test
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["train (dropout on, epoch mean)", "validation (eval)", "test (eval)"]
    assert any("config smoke" in text.get_text() for text in figure.texts)
    save(figure, tmp_path / "one.png")
    assert_decodes(tmp_path / "one.png")


def test_a_comparison_is_one_colour_per_model_with_a_band_over_seeds(tmp_path):
    groups = [
        plots.RunCurves(kind, [history(5, shift, val=False) for shift in (0.0, 0.05, 0.1)]) for kind in ("scratch", "builtin")
    ]
    figure = plots.learning_curves(groups, "caption")
    acc_axes = figure.axes[1]
    assert len(acc_axes.get_lines()) == 4  # two splits x two models: means, not one line per seed
    assert len({line.get_color() for line in acc_axes.get_lines()}) == 2
    assert len(acc_axes.collections) == 4  # a std band around every mean
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "scratch" in legend and "builtin" in legend and len(legend) <= 6
    save(figure, tmp_path / "compare.png")
    assert_decodes(tmp_path / "compare.png")


@pytest.mark.parametrize("suffix, header", [(".pdf", b"%PDF"), (".svg", b"<svg"), (".png", b"\x89PNG")])
def test_the_suffix_chooses_the_format(tmp_path, suffix, header):
    figure = plots.learning_curves([plots.RunCurves("a", [history(3, 0, val=False)])], "caption")
    save(figure, tmp_path / f"curves{suffix}")
    content = (tmp_path / f"curves{suffix}").read_bytes()
    assert header in content[:400]


def test_an_unsupported_suffix_is_refused(tmp_path):
    with pytest.raises(DropcliError, match=r"\.jpg.*\.png, \.pdf, \.svg"):
        check_output(tmp_path / "curves.jpg")


def test_one_key_sweep_is_accuracy_against_the_value_with_error_bars(tmp_path):
    cells = [cell({"model.dropout_1": p}, 0.8 - p / 4) for p in (0.0, 0.2, 0.5, 0.8)]
    figure = sweep_plots.sweep_figure(cells, ["model.dropout_1"], "caption")
    acc_axes, gap_axes = figure.axes
    assert acc_axes.get_xlabel() == "model.dropout_1" and acc_axes.get_ylabel() == "accuracy"
    assert "(eval mode)" in gap_axes.get_title()
    means = acc_axes.containers[0].lines[0].get_ydata()  # the first errorbar: test acc
    assert list(means) == pytest.approx([0.8, 0.75, 0.675, 0.6])
    save(figure, tmp_path / "one-key.png")
    assert_decodes(tmp_path / "one-key.png")


def test_two_key_sweep_heatmaps_share_the_accuracy_scale_and_centre_the_gap(tmp_path):
    cells = [
        cell({"model.dropout_1": a, "model.dropout_2": b}, 0.7 + a / 10 - b / 5, val=True)
        for a in (0.0, 0.5)
        for b in (0.0, 0.2, 0.5)
    ]
    figure = sweep_plots.sweep_figure(cells, ["model.dropout_1", "model.dropout_2"], "caption")
    panels = [axes for axes in figure.axes if axes.images]
    assert [axes.get_title() for axes in panels][:2] == ["final validation accuracy", "final test accuracy"]
    assert "(eval mode)" in panels[2].get_title()
    val_image, test_image, gap_image = (axes.images[0] for axes in panels)
    assert (val_image.norm.vmin, val_image.norm.vmax) == (test_image.norm.vmin, test_image.norm.vmax)
    assert gap_image.norm.vcenter == 0 and gap_image.norm.vmin == -gap_image.norm.vmax
    assert gap_image.get_cmap().name == "RdBu_r"
    colour_bars = [axes.get_ylabel() for axes in figure.axes if not axes.images and axes.get_ylabel()]
    assert colour_bars == ["accuracy", "accuracy", "train acc − test acc"]
    save(figure, tmp_path / "heatmap.png")
    assert_decodes(tmp_path / "heatmap.png")


def test_random_search_is_one_panel_per_key(tmp_path):
    cells = [
        cell({"optim.lr": lr, "model.kind": kind}, 0.5 + lr, seeds=1)
        for lr, kind in ((0.01, "scratch"), (0.3, "builtin"), (0.1, "scratch"))
    ]
    figure = sweep_plots.sweep_figure(cells, ["optim.lr", "model.kind"], "caption", sampled=True)
    assert [axes.get_xlabel() for axes in figure.axes if axes.get_visible()] == ["optim.lr", "model.kind"]
    assert figure.axes[0].get_xscale() == "log"  # 0.01 to 0.3: a factor of 30
    save(figure, tmp_path / "random.png")
    assert_decodes(tmp_path / "random.png")


def test_caption_says_what_was_trained():
    text = plots.caption("smoke", ["scratch", "builtin", "scratch"], 3, {"train": 2700, "val": 300, "test": 2000}, [0, 1, 2])
    assert (
        text == "config smoke · scratch, builtin · 3 epochs · 2,700 train / 300 val / 2,000 test images · seeds 0-2 (mean ± std)"
    )


def test_a_range_sampled_on_a_log_scale_gets_a_log_axis_and_one_seed_no_error_bars(tmp_path):
    cells = [cell({"optim.lr": lr, "model.kind": "scratch"}, 0.5 + lr, seeds=1) for lr in (0.05, 0.08, 0.2)]
    figure = sweep_plots.sweep_figure(cells, ["optim.lr", "model.kind"], "caption", sampled=True, log_keys=["optim.lr"])
    assert figure.axes[0].get_xscale() == "log"  # a factor of 4 only: the log comes from the range
    assert not any(axes.containers for axes in figure.axes)  # n = 1 per point: no bar glyphs
    spread = sweep_plots.sweep_figure([cell({"optim.lr": 0.1}, 0.6, seeds=3)], ["optim.lr"], "caption")
    assert spread.axes[0].containers  # n > 1: the bar is drawn


def test_pdf_embeds_truetype_fonts_and_svg_keeps_text(tmp_path):
    figure = plots.learning_curves([plots.RunCurves("a", [history(3, 0, val=False)])], "caption")
    save(figure, tmp_path / "curves.pdf")
    pdf = (tmp_path / "curves.pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType outlines (Type 42), never Type 3
    figure = plots.learning_curves([plots.RunCurves("a", [history(3, 0, val=False)])], "caption")
    save(figure, tmp_path / "curves.svg")
    assert b"<text" in (tmp_path / "curves.svg").read_bytes()


def test_the_legend_fits_the_figure_width_with_long_labels(tmp_path):
    labels = [f"hidden=1024x1024x1024, dropout=0.{n},0.5,0.5, lr=0.0{n}" for n in range(1, 5)]
    figure = plots.learning_curves(
        [plots.RunCurves(label, [history(3, n / 50, val=True)]) for n, label in enumerate(labels)], "c"
    )
    figure.canvas.draw()
    legend = figure.legends[0].get_window_extent()
    assert legend.x0 >= 0 and legend.x1 <= figure.bbox.width


def test_a_caption_over_runs_of_different_sizes_says_they_differ(tmp_path):
    import json
    import shutil

    from dropcli import runs

    fixture = Path(__file__).parents[1] / "fixtures" / "run-v2"  # an old run, with its summary
    for name, train in (("a", 600), ("b", 3000)):
        shutil.copytree(fixture, tmp_path / name)
        path = tmp_path / name / runs.SUMMARY_FILE
        summary = json.loads(path.read_text())
        summary["data"]["train"] = train
        path.write_text(json.dumps(summary))
    figure = plots.runs_figure([("a", [tmp_path / "a"]), ("b", [tmp_path / "b"])])
    text = " ".join(t.get_text() for t in figure.texts)
    assert "data sizes differ between runs" in text and "600 train" not in text


def test_a_one_epoch_run_is_drawn_as_points():
    figure = plots.learning_curves([plots.RunCurves("a", [history(1, 0, val=False)])], "caption")
    lines = [line for axes in figure.axes for line in axes.get_lines()]
    assert lines and all(line.get_marker() == "o" and len(line.get_xdata()) == 1 for line in lines)
