"""Figures: every kind decodes, is not blank, has the format its suffix names, and labels what it shows."""

import math
import shutil
from pathlib import Path

import matplotlib.image
import pytest

from dropcli.cli.display import plots, sweep_plots
from dropcli.cli.display.figure import Style, check_output, save
from dropcli.config.labels import readable, value_text
from dropcli.errors import DropcliError
from dropcli.experiments import Cell, Stat
from dropcli.runtime import seeds_text


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


def assert_decodes(path, min_width=600) -> None:
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
    legend = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
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
    assert acc_axes.get_xlabel() == "dropout rate p, layer 1" and acc_axes.get_ylabel() == "accuracy"
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
    assert [axes.get_xlabel() for axes in figure.axes if axes.get_visible()] == ["learning rate", "model"]
    assert figure.axes[0].get_xscale() == "log"  # 0.01 to 0.3: a factor of 30
    save(figure, tmp_path / "random.png")
    assert_decodes(tmp_path / "random.png")


def test_caption_says_what_was_trained():
    text = plots.caption("smoke", ["scratch", "builtin", "scratch"], 3, {"train": 2700, "val": 300, "test": 2000}, [0, 1, 2])
    assert (
        text == "config smoke · scratch, builtin · 3 epochs · 2,700 train / 300 val / 2,000 test images · seeds 0-2 (mean ± std)"
    )


def test_seeds_read_in_number_order_and_a_run_of_them_as_a_range():
    """Thirty runs' seeds once read "0, 1, 10, 11, ..., 2, 20" (the directories' text order)."""
    assert seeds_text([0, 1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9]) == "seeds 0-11"
    assert seeds_text([5, 0, 2]) == "seeds 0, 2, 5"
    assert seeds_text([3, 3]) == "seed 3"
    assert plots.seed_text([2, 1, 0]) == "seeds 0-2 (mean ± std)" and plots.seed_text([7]) == "seed 7"


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
    for legend in figure.legends:
        extent = legend.get_window_extent()
        assert extent.x0 >= 0 and extent.x1 <= figure.bbox.width


def test_labels_and_a_caption_longer_than_the_width_are_wrapped_inside_it():
    # A run's many settings in one label; a search's space as a caption: digits and commas, no spaces.
    labels = [
        f"hidden widths = 512x512x512, input dropout rate = 0.0{n}345, dropout rate p = 0.06775,0.4259,0.3, "
        "learning rate = 0.05992, weight decay = 0.0001, label smoothing = 0.05"
        for n in range(2)
    ]
    caption = "study x: model.hidden=" + ",".join(["256x256", "512x512", "1024x1024", "2048x2048"] * 3)
    figure = plots.learning_curves([plots.RunCurves(label, [history(3, 0.1, val=True)]) for label in labels], caption)
    figure.canvas.draw()
    texts = [text for legend in figure.legends for text in legend.get_texts()] + figure.texts
    assert any("\n" in text.get_text() for text in texts)  # wrapped, not cut
    for artist in [*figure.legends, *figure.texts]:
        extent = artist.get_window_extent()
        assert extent.x0 >= 0 and extent.x1 <= figure.bbox.width


def test_a_caption_over_runs_of_different_sizes_says_they_differ(tmp_path):
    import json

    from dropcli import runs

    fixture = Path(__file__).parents[1] / "fixtures" / "run-v2"  # an old run, with its summary
    for name, train in (("a", 600), ("b", 3000)):
        shutil.copytree(fixture, tmp_path / name)
        path = tmp_path / name / runs.SUMMARY_FILE
        summary = json.loads(path.read_text())
        summary["data"]["train"] = train
        path.write_text(json.dumps(summary))
    figure = plots.runs_figure([("a", [tmp_path / "a"]), ("b", [tmp_path / "b"])])
    text = " ".join(t.get_text() for t in figure.texts).replace("\n", " ")  # the caption wraps between words
    assert "data sizes differ between runs" in text and "600 train" not in text


def test_a_one_epoch_run_is_drawn_as_points():
    figure = plots.learning_curves([plots.RunCurves("a", [history(1, 0, val=False)])], "caption")
    lines = [line for axes in figure.axes for line in axes.get_lines()]
    assert lines and all(line.get_marker() == "o" and len(line.get_xdata()) == 1 for line in lines)


# --- a paper's figures: size, type, labels, legends (issue 36) ----------------------------------


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels of a PNG, read from its header."""
    header = Path(path).read_bytes()[16:24]
    return int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")


def caption_texts(figure) -> list[str]:
    return [text.get_text() for text in figure.texts]


def test_plot_is_exactly_as_wide_as_width_says_in_the_type_size_asked(tmp_path, invoke):
    from dropcli.cli.display.figure import DPI

    run = Path(__file__).parents[1] / "fixtures" / "run-v2"
    result = invoke("plot", run, "-o", tmp_path / "one.png")
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "one.png")[0] == round(3.25 * DPI)  # one column by default
    result = invoke("plot", run, "-o", tmp_path / "two.png", "--width", "6.75", "--font-size", "10", "--no-footer")
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "two.png")[0] == round(6.75 * DPI)
    figure = plots.runs_figure(plots.run_groups([run]), Style(6.75, 10.0, footer=False))
    assert figure.get_figwidth() == 6.75
    assert figure.axes[0].xaxis.label.get_fontsize() == 10.0
    assert caption_texts(figure) == []  # --no-footer: no provenance line
    side_by_side = figure.axes[0].get_position().y0 == figure.axes[1].get_position().y0
    stacked = plots.runs_figure(plots.run_groups([run]), Style())
    assert side_by_side and stacked.axes[0].get_position().y0 > stacked.axes[1].get_position().y0  # one column: stacked
    assert any("config" in text for text in caption_texts(stacked))


def test_a_figure_option_without_a_figure_is_refused(tmp_path, invoke):
    result = invoke("compare", "scratch", "--width", "6.75", "--run-dir", tmp_path / "x")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--width sizes a figure, and none is drawn: give --plot too" in result.stderr
    assert not (tmp_path / "x").exists()
    result = invoke("evaluate", tmp_path, "--no-footer")
    assert "--no-footer sizes a figure, and none is drawn: give -o FIG.png too" in result.stderr


def test_keys_are_named_for_readers_and_values_never_none():
    assert [readable(key) for key in ("model.dropout", "optim.lr", "model.dropout_2", "model.hidden_1", "new.key")] == [
        "dropout rate p",
        "learning rate",
        "dropout rate p, layer 2",
        "width of hidden layer 1",
        "new.key",  # a key the table lacks is shown as itself, never hidden
    ]
    assert value_text("optim.lr", 0.123456789) == "0.1235"  # 4 significant figures
    assert value_text("optim.max_norm", None) == "off" and value_text("data.train_limit", None) == "all"
    assert value_text("model.hidden", [1024, 1024]) == "1024x1024" and value_text("model.dropout", [0.5, 0.5]) == "0.5"
    assert value_text("model.dropout", [0.2, 0.5]) == "0.2,0.5"


def test_every_key_a_search_or_sweep_can_vary_has_a_readable_name():
    from dropcli.config import load_config, to_dict
    from dropcli.config.labels import READABLE

    def keys(tree, prefix=""):
        for key, value in tree.items():
            yield from keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]

    # data.root (a path) and metrics.* (what is recorded, not how the net is trained) are never axes.
    wanted = [key for key in keys(to_dict(load_config(None, []))) if key != "data.root" and not key.startswith("metrics.")]
    assert [key for key in wanted if key not in READABLE] == []


def test_a_legend_shows_only_the_settings_that_differ_in_readable_names(tmp_path):
    import yaml

    fixture = Path(__file__).parents[1] / "fixtures" / "run-v2"
    for name, lr, max_norm, seed in (("a", 0.123456789, None, 0), ("b", 0.05, 3.0, 0), ("c", 0.05, 3.0, 1)):
        shutil.copytree(fixture, tmp_path / name)
        config = yaml.safe_load((tmp_path / name / "config.yaml").read_text())
        config["optim"] |= {"lr": lr, "max_norm": max_norm}
        config["seed"] = seed
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    groups = plots.run_groups([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert [(label, [path.name for path in paths]) for label, paths in groups] == [
        ("learning rate = 0.1235, max-norm bound = off", ["a"]),
        ("learning rate = 0.05, max-norm bound = 3", ["b", "c"]),  # seeds of one setting: one colour
    ]
    legend = [t.get_text() for legend in plots.runs_figure(groups).legends for t in legend.get_texts()]
    assert "learning rate = 0.1235, max-norm bound = off" in legend and not any("None" in text for text in legend)


def test_curves_that_coincide_both_stay_visible():
    same = history(4, 0, val=False)
    figure = plots.learning_curves([plots.RunCurves("scratch", [same]), plots.RunCurves("builtin", [same])], "c")
    first, second = figure.axes[1].get_lines()[::2]  # the train curves of each group
    assert list(first.get_ydata()) == list(second.get_ydata())
    assert first.get_marker() != second.get_marker()  # a shape of its own
    assert first.get_linewidth() > second.get_linewidth() and first.get_markersize() > second.get_markersize()  # a rim
    assert first.get_markerfacecolor() == "none"  # open: the other shows through


# --- evaluate's figures, on a study made of known probabilities ----------------------------------


def fake_study(methods=("deterministic", "mc dropout K=1", "mc dropout K=3"), runs=1, replicates=0, n=600):
    """What evaluate's figures read of a study, with scores of real calibration code: most
    examples confident, a few spread over the low-confidence bins (some nearly empty)."""
    from types import SimpleNamespace

    import torch

    from dropcli.config import Config
    from dropcli.uncertainty import bootstrap, calibration, shifts

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (n,), generator=generator)
    study = SimpleNamespace(
        members=[SimpleNamespace(checkpoint=Path("exp/r/checkpoints/last.pt"), config=Config(), epoch=2)] * runs,
        split="test",
        labels=labels,
        mc_samples=3,
        methods=list(methods),
        shifts=[shifts.NONE],
        scores={},
        member_scores={},
        passes={method: int(method[-1]) if "K=" in method else 1 for method in methods},
        level=0.95,
        intervals={},
        threshold_intervals={},
        selective_intervals={},
        multiply_adds={},  # none counted: the compute axis falls back to forward passes
    )
    weights = bootstrap.weights(n, replicates) if replicates else None
    for number, method in enumerate(methods):
        parts = []
        for run in range(runs):
            sharpness = torch.full((n,), 3.5 + number + run)
            sharpness[: n // 50] = torch.rand(n // 50, generator=generator) * 2  # a few unsure examples
            logits = torch.randn(n, 10, generator=generator)
            logits[torch.arange(n), labels] += sharpness * (torch.rand(n, generator=generator) < 0.85)
            parts.append(torch.softmax(logits, dim=1))
        scored = [calibration.score(p, labels) for p in parts]
        study.member_scores[method, shifts.NONE] = scored
        study.scores[method, shifts.NONE] = calibration.mean(scored)
        if weights is not None:
            examples = [bootstrap.per_example(p, labels) for p in parts]
            study.intervals[method, shifts.NONE] = bootstrap.intervals(bootstrap.replicates(examples, weights))
            above = bootstrap.threshold_accuracies(examples, weights)
            study.threshold_intervals[method, shifts.NONE] = bootstrap.nan_intervals(above)
            selective = bootstrap.selective_accuracies(examples, weights)
            study.selective_intervals[method, shifts.NONE] = bootstrap.intervals(selective)
    return study


def test_a_reliability_diagram_counts_each_bin_and_draws_no_bar_from_a_nearly_empty_one(tmp_path):
    from dropcli.cli.display import uncertainty_plots
    from dropcli.uncertainty import calibration, shifts

    study = fake_study(runs=2)
    figure = uncertainty_plots.reliability(study)
    panels = [ax for ax in figure.axes if ax.child_axes]  # each with its strip of counts above
    drawn = uncertainty_plots.headline(study)  # a swept family at its largest K
    assert drawn == ["deterministic", "mc dropout K=3"] and len(panels) == 2
    left_out = 0
    for method, panel in zip(drawn, panels):
        strip = panel.child_axes[0]
        scores = study.scores[method, shifts.NONE]
        filled = [b for b in scores.bins if b.count]
        sparse = [b for b in filled if b.count < uncertainty_plots.MIN_BIN_EXAMPLES]
        assert sorted(round(bar.get_height()) for bar in strip.patches) == sorted(b.count for b in filled)  # every count
        assert len(panel.containers[0]) == len(filled) - len(sparse)  # no bar from a nearly empty bin
        left_out += len(sparse)
        # The title's ECE is the table's (the mean of per-run ECEs), not the pooled bins' ECE.
        assert f"ECE {scores.ece:.4f} (mean of 2)" in strip.get_title().replace("\n", " ")  # digit for digit the table's
        assert f"{calibration.pooled_ece(scores.bins):.4f}" != f"{scores.ece:.4f}"
    assert left_out  # the study has nearly empty bins to leave out
    save(figure, tmp_path / "reliability.png")
    assert_decodes(tmp_path / "reliability.png")


def test_the_threshold_figure_leaves_out_thin_thresholds_and_draws_the_bootstrap_band(tmp_path):
    from dropcli.cli.display import uncertainty_plots
    from dropcli.uncertainty import shifts

    plain = uncertainty_plots.selective_curves(fake_study())
    study = fake_study(replicates=50)
    banded = uncertainty_plots.selective_curves(study)
    above = banded.axes[0]
    assert above.get_ylabel() == "accuracy,\nconfidence ≥ t"
    kept = study.scores["deterministic", shifts.NONE].thresholds
    thin = [t for t, (a, f) in kept.items() if a is not None and f * len(study.labels) < uncertainty_plots.MIN_THRESHOLD_EXAMPLES]
    assert thin  # e.g. 0.99: too few examples to say
    drawn = set(above.get_lines()[0].get_xdata())
    assert drawn and not drawn & set(thin)
    assert len(above.collections) == 2 and not plain.axes[0].collections  # a band per method drawn, with --bootstrap only
    coverage = banded.axes[2]
    assert coverage.get_ylabel() == "selective\naccuracy" and len(coverage.collections) == 2 and not plain.axes[2].collections
    assert "bands: 95% bootstrap interval" in " ".join(caption_texts(banded))
    save(banded, tmp_path / "selective.png")
    assert_decodes(tmp_path / "selective.png")


def test_the_compute_figure_names_the_ks_drawn():
    from dropcli.cli.display import uncertainty_plots

    figure = uncertainty_plots.compute_curves(fake_study())
    assert "drawn: mc dropout K = 1, 3" in " ".join(caption_texts(figure)).replace("\n", " ")


def test_figures_with_a_column_per_shift_have_no_label_running_into_another():
    """At the default width two shift columns' "multiply-adds per example (M)" (and the selective
    figure's "confidence threshold t") overlapped: a label the columns share is written once."""
    from dropcli.cli.display import uncertainty_plots
    from dropcli.uncertainty import shifts

    study = fake_study()
    rotated = shifts.Shift("rotate", 60)
    study.shifts.append(rotated)
    for method in study.methods:
        study.scores[method, rotated] = study.scores[method, shifts.NONE]
    drawn = {"multiply-adds per example (M)": uncertainty_plots.compute_curves(study)}
    drawn["confidence threshold t"] = uncertainty_plots.selective_curves(study)
    for shared, figure in drawn.items():
        figure.canvas.draw()
        texts = [t for ax in figure.axes for t in (ax.xaxis.label, ax.yaxis.label, ax.title) if t.get_text()]
        boxes = [t.get_window_extent() for t in texts]
        assert [ax.get_xlabel() for ax in figure.axes].count(shared) in (1, 2)  # once a row, not once a panel
        for i, first in enumerate(boxes):
            for j in range(i + 1, len(boxes)):
                assert not first.overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())
            assert first.x0 >= 0 and first.x1 <= figure.bbox.width + 1, texts[i].get_text()  # not cut at an edge


def test_the_shift_figure_draws_every_shift_family_with_its_axis_named():
    from dropcli.cli.display import uncertainty_plots
    from dropcli.uncertainty import shifts

    study = fake_study()
    for family in shifts.FAMILIES:  # the corruptions too: blur at three intensities once crashed it
        for value in (0.25, 0.5):
            shift = shifts.Shift(family, value)
            study.shifts.append(shift)
            for method in study.methods:
                study.scores[method, shift] = study.scores[method, shifts.NONE]
    figure = uncertainty_plots.shift_curves(study)
    labels = {ax.get_xlabel() for ax in figure.axes}
    assert {uncertainty_plots.SHIFT_AXES[family] for family in shifts.FAMILIES} <= labels


# --- tune's figure --------------------------------------------------------------------------------


def found(complete: int, pruned: int):
    from dropcli.experiments.tune_results import Found, TrialRow

    rows = [
        TrialRow(n, "complete", 0.8 + n / 100, 3, {"optim.lr": 0.1 * (n + 1), "model.dropout": 0.5}, f"trial-{n:04d}")
        for n in range(complete)
    ]
    rows += [
        TrialRow(complete + n, "pruned", 0.5 + n / 100, 1, {"optim.lr": 2.0, "model.dropout": 0.2}, None) for n in range(pruned)
    ]
    importances = {"optim.lr": 0.7, "model.dropout": 0.3} if complete >= 8 else None
    return Found(rows, rows[complete - 1], None, {"complete": complete, "pruned": pruned}, importances)


def test_tunes_history_tells_pruned_trials_from_complete_ones_and_importance_says_its_trials(tmp_path):
    from dropcli.cli.display import tune_view

    figure = tune_view.figure(found(8, 3), "study x")
    history, spent, importance = figure.axes
    lines = {line.get_label(): line for line in history.get_lines()}
    pruned = lines["pruned: value at its last epoch"]
    assert list(pruned.get_ydata()) == [0.5, 0.51, 0.52] and pruned.get_marker() == "x"
    assert len(lines["complete: final value"].get_ydata()) == 8
    assert importance.get_title() == "importance of each key\n(8 complete trials)"
    assert {label.get_text() for label in importance.get_yticklabels()} == {"learning rate", "dropout rate p"}
    assert tune_view.importance_note(found(8, 3)) is None
    save(figure, tmp_path / "tune.png")
    assert_decodes(tmp_path / "tune.png")


def test_tunes_history_under_nll_names_it_and_its_best_so_far_is_the_lowest():
    import dataclasses

    from dropcli.cli.display import tune_view
    from dropcli.experiments.tune_results import TrialRow

    values = [0.40, 0.30, 0.35, 0.25]  # validation NLL: lower is better
    rows = [TrialRow(n, "complete", value, 3, {"optim.lr": 0.1}, f"trial-{n:04d}") for n, value in enumerate(values)]
    nll = dataclasses.replace(found(4, 0), rows=rows, best=rows[3], objectives=("nll",))
    history = tune_view.figure(nll, "study x").axes[0]
    assert history.get_ylabel() == "validation NLL (nats)"
    best = {line.get_label(): line for line in history.get_lines()}["best complete so far"]
    assert list(best.get_ydata()) == [0.40, 0.30, 0.30, 0.25]
    assert tune_view.figure(found(8, 3), "study x").axes[0].get_ylabel() == "validation accuracy"


def test_tunes_anytime_curve_is_the_best_so_far_against_the_epochs_trained_by_then(tmp_path):
    import dataclasses

    from dropcli.cli.display import tune_view
    from dropcli.experiments.tune_results import TrialRow, anytime

    # (state, value, epochs it trained): pruned trials cost epochs but are never the best.
    trials = [("pruned", 0.70, 3), ("complete", 0.80, 10), ("pruned", 0.95, 4), ("complete", 0.78, 10), ("complete", 0.85, 10)]
    rows = [TrialRow(n, state, value, None, {}, None, trained=cost) for n, (state, value, cost) in enumerate(trials)]
    assert anytime(rows) == [(13, 0.80), (17, 0.80), (27, 0.80), (37, 0.85)]
    assert anytime(rows[::-1]) == anytime(rows)  # in the order the trials began
    assert anytime(rows, "nll") == [(13, 0.80), (17, 0.80), (27, 0.78), (37, 0.78)]  # lower is better
    study = dataclasses.replace(found(4, 0), rows=rows, best=rows[4])
    figure = tune_view.figure(study, "study x")
    curve = figure.axes[1].get_lines()[0]
    assert list(curve.get_xdata()) == [13, 17, 27, 37] and list(curve.get_ydata()) == [0.80, 0.80, 0.80, 0.85]
    assert tune_view.pruning_lines(study)[-1].endswith("the best trial (#4) was found with 37 epochs of them")
    save(figure, tmp_path / "anytime.png")
    assert_decodes(tmp_path / "anytime.png")


def test_tunes_importance_is_withheld_below_its_minimum_and_says_so_in_one_line():
    from dropcli.cli.display import tune_view
    from dropcli.experiments.tune_results import MIN_TRIALS_FOR_IMPORTANCE

    few = found(3, 2)
    figure = tune_view.figure(few, "study x")
    assert [axes.get_title() for axes in figure.axes] == ["optimisation history", "anytime"]  # no importance
    note = tune_view.importance_note(few)
    assert (
        note == f"importance of each key withheld: it rests on 3 complete trials, and needs at least {MIN_TRIALS_FOR_IMPORTANCE}"
    )


@pytest.mark.parametrize("command", ["plot", "compare", "sweep", "evaluate", "tune"])
def test_every_command_that_draws_takes_the_paper_options(invoke, command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    for option in ("--width", "--font-size", "--no-footer"):
        assert option in result.output, (command, option)


def test_the_bands_replicates_are_the_resampled_sets_selective_and_threshold_accuracy():
    """The bands' bootstrap against calibration's own scores: unit weights give the estimate, and
    a replicate's weights give the scores of the resampled set."""
    import torch

    from dropcli.uncertainty import bootstrap, calibration

    generator = torch.Generator().manual_seed(4)
    p = torch.softmax(2 * torch.randn(500, 10, generator=generator), dim=1)
    y = torch.randint(0, 10, (500,), generator=generator)
    drawn = torch.randint(0, 500, (500,), generator=generator)
    weights = torch.stack([torch.ones(500), torch.bincount(drawn, minlength=500)]).double()
    examples = [bootstrap.per_example(p, y)]
    selective = bootstrap.selective_accuracies(examples, weights)
    above = bootstrap.threshold_accuracies(examples, weights)
    for row, scores in enumerate((calibration.score(p, y), calibration.score(p[drawn], y[drawn]))):
        assert selective[row].tolist() == pytest.approx([scores.selective[c] for c in calibration.COVERAGES], abs=1e-12)
        expected = [math.nan if a is None else a for a, _ in scores.thresholds.values()]
        assert above[row].tolist() == pytest.approx(expected, abs=1e-12, nan_ok=True)


def test_titles_and_captions_wrap_between_words_never_inside_one():
    from dropcli.cli.display.figure import wrapped

    text = wrapped("At equal compute: each method against its multiply-adds per test example", 3.25, 8)
    assert len(text.splitlines()) == 2 and "multiply-adds" in text.split()  # not "multiply-" and "adds"
