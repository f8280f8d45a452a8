"""evaluate --ood's sources beyond another data set (held-out classes, noise, constant and inverted
images) and FPR@95 against references computed by hand."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import accepted, write_fashion_mnist
from dropcli.errors import DropcliError
from dropcli.uncertainty import ood


def fpr_reference(inside: np.ndarray, outside: np.ndarray, recall: float = 0.95) -> float:
    """Thresholds from the highest distinct score down; the first flagging >= recall of outside."""
    for threshold in sorted(set(inside) | set(outside), reverse=True):
        if (outside >= threshold).mean() >= recall:
            return float((inside >= threshold).mean())
    raise AssertionError("unreachable: the lowest threshold flags everything")


def test_fpr95_on_a_hand_computed_case():
    # 20 out-of-distribution scores 1..20: the threshold 2 flags 19 of 20 (95 %); 3 flags only 90 %.
    outside = torch.arange(1.0, 21.0)
    inside = torch.tensor([0.5, 1.5, 2.0, 2.5, 10.0])  # at or above 2: 2.0, 2.5, 10.0
    assert float(ood.fpr_at_recall(inside, outside)) == pytest.approx(3 / 5)
    # Perfect separation: nothing in-distribution is flagged; full overlap of one value: all are.
    assert float(ood.fpr_at_recall(torch.tensor([0.1, 0.2]), torch.tensor([0.5, 0.9]))) == 0.0
    assert float(ood.fpr_at_recall(torch.tensor([0.5, 0.5]), torch.tensor([0.5]))) == 1.0


def test_fpr95_matches_the_reference_with_ties_and_as_weights():
    generator = np.random.default_rng(1)
    inside = generator.integers(0, 30, 400).astype(np.float64)  # many ties
    outside = generator.integers(10, 40, 250).astype(np.float64)
    got = float(ood.fpr_at_recall(torch.tensor(inside), torch.tensor(outside)))
    assert got == pytest.approx(fpr_reference(inside, outside), abs=1e-12)
    # A weighted replicate is the resampled sets.
    drawn_in, drawn_out = generator.integers(0, 400, 400), generator.integers(0, 250, 250)
    w_in = torch.tensor(np.bincount(drawn_in, minlength=400), dtype=torch.float64)[None]
    w_out = torch.tensor(np.bincount(drawn_out, minlength=250), dtype=torch.float64)[None]
    weighted = float(ood.fpr_at_recall(torch.tensor(inside), torch.tensor(outside), w_in, w_out))
    assert weighted == pytest.approx(fpr_reference(inside[drawn_in], outside[drawn_out]), abs=1e-12)


def test_made_up_sets_are_seeded_and_what_they_say():
    inside = torch.rand(50, 784, generator=torch.Generator().manual_seed(0))
    label, noise = ood.outside_images("noise", None, None, inside)
    assert label == "noise" and noise.shape == (50, 784) and 0 <= noise.min() and noise.max() <= 1
    assert torch.equal(noise, ood.outside_images("noise", None, None, inside)[1])  # the same images every time
    _, constant = ood.outside_images("constant", None, None, inside)
    assert torch.equal(constant, constant[:, :1].expand(-1, 784)) and constant[:, 0].unique().numel() == 50
    _, inverted = ood.outside_images("inverted", None, None, inside)
    assert torch.equal(inverted, 1 - inside)


@pytest.fixture
def runs_on_six_classes(in_tmp, invoke, small_args):
    args = [*small_args(2, train=1500, test=400), "--set", "data.classes=[0,1,2,3,4,5]", "--set", "data.val_split=0.1"]
    result = invoke("compare", "scratch", *args, "--seeds", 2, "--run-dir", "six", "-q")
    assert result.exit_code == 0, result.output
    return in_tmp / "six"


def test_held_out_classes_and_made_up_sets_in_one_call(runs_on_six_classes, invoke):
    sources = ["--ood", "heldout", "--ood", "noise", "--ood", "constant", "--ood", "inverted"]
    result = invoke("evaluate", runs_on_six_classes, "--mc-samples", "3", "--bootstrap", "40", *sources, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["uncertainty"]["ood"]
    assert report["data"] == ["held-out classes [6, 7, 8, 9]", "noise", "constant", "inverted"]
    rows = {(r["data"], r["method"], r["score"]): r for r in report["results"]}
    for source in report["data"]:
        for method in ("deterministic", "mc dropout", "ensemble"):
            for score in ("max probability", "entropy"):
                row = rows[source, method, score]
                for measure in ("auroc", "aupr", "fpr95"):
                    low, high = row[f"{measure}_interval"]
                    assert 0 <= low <= row[measure] <= high <= 1, (source, method, score, measure)
        assert (source, "mc dropout", "mutual information") in rows and (
            source,
            "deterministic",
            "mutual information",
        ) not in rows
    # Per run: two runs, each with its three measures; the row is their mean.
    per_run = rows["noise", "deterministic", "entropy"]["per_run"]
    assert len(per_run) == 2 and np.mean([r["auroc"] for r in per_run]) == pytest.approx(
        rows["noise", "deterministic", "entropy"]["auroc"]
    )
    text = invoke("evaluate", runs_on_six_classes, "--bootstrap", "0", "--ood", "heldout").stdout
    assert "FPR@95" in text and "held-out classes [6, 7, 8, 9]" in text


def test_held_out_classes_of_runs_trained_on_all_are_refused(in_tmp, invoke, small_args):
    result = invoke("train", *small_args(1, train=600, test=100), "--run-dir", "all", "-q")
    assert result.exit_code == 0, result.output
    result = invoke("evaluate", in_tmp / "all", "--ood", "heldout", "--predictions", "p.npz")
    assert result.exit_code == 2 and result.stderr.startswith("error: --ood heldout: the runs were trained on every class")
    assert result.stderr.count("\n") == 1 and not (in_tmp / "p.npz").exists()
    result = invoke("evaluate", in_tmp / "all", "--ood", "noise", "--ood", "noise")
    assert result.exit_code == 2 and "--ood noise is named twice" in result.stderr


def test_held_out_classes_need_runs_trained_on_fewer_than_ten():
    ood.check_sources((ood.HELD_OUT, "noise"), (0, 1, 2, 3, 4, 5))  # four classes held out: fine
    for classes in (None, tuple(range(10))):  # every class trained on: none held out
        with pytest.raises(DropcliError, match="trained on every class"):
            ood.check_sources((ood.HELD_OUT,), classes)
    with pytest.raises(DropcliError, match="named twice"):
        ood.check_sources(("noise", "noise"), None)


def test_held_out_classes_named_on_a_real_command_line_are_the_classes_held_out():
    source = "".join(["held", "out"])  # made at run time, as sys.argv's strings are: not the interned constant
    assert source == ood.HELD_OUT and source is not ood.HELD_OUT
    images = torch.arange(6 * 784).remainder(256).to(torch.uint8).reshape(6, 28, 28)
    labels = torch.tensor([0, 7, 1, 8, 9, 2], dtype=torch.uint8)
    config = SimpleNamespace(classes=(0, 1, 2, 3, 4, 5), test_limit=None)
    label, outside = ood.outside_images(source, {"test": (images, labels)}, config, torch.zeros(3, 784))
    assert label == "held-out classes [6, 7, 8, 9]"
    assert torch.equal(outside, images[[1, 3, 4]].reshape(3, 784).float() / 255)


def test_an_ood_data_set_named_is_read_from_torchvisions_layout(in_tmp, monkeypatch):
    monkeypatch.setenv("DROPCLI_DATA", str(in_tmp / "store"))  # not ./mnist: a directory of that name would be read as one
    write_fashion_mnist(in_tmp / "store" / "mnist" / "MNIST" / "raw", gz=True, sizes={"train": 20, "test": 7})
    path, images = accepted("mnist in torchvision's layout", ood.read_images, "mnist")
    assert path == in_tmp / "store" / "mnist" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    assert images.shape == (7, 784) and images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1
    assert images.max() > 0.5  # scaled from bytes to [0, 1], not left in 0..255 nor all zero


def test_steps_turn_running_sums_back_into_the_amounts():
    running = torch.tensor([[1.0, 3.0, 6.0], [0.0, 0.0, 2.0]])
    assert torch.equal(ood._steps(running), torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 2.0]]))


def test_mutual_information_is_never_below_zero_where_the_passes_agree():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]], dtype=torch.float64)
    entropy = -(p * p.log()).sum(dim=1)
    # Passes that all agree: their mean entropy is the entropy of their mean, up to a rounding hair.
    mutual = ood.scores(p, entropy + 1e-12)["mutual information"]
    assert mutual.tolist() == [0.0, 0.0]
