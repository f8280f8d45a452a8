"""data.classes: train, validate and test on some classes; every command honours it; runs record it."""

import json

import pytest
import torch
import yaml

from dropcli import data
from dropcli.config import DataConfig, load_config
from dropcli.errors import DropcliError

CPU = torch.device("cpu")
KEPT = (0, 2, 5, 7)


def test_every_split_holds_the_chosen_classes_only_with_their_labels(fake_data):
    config = DataConfig(root=str(fake_data), classes=KEPT, val_split=0.1, train_limit=2000, test_limit=500)
    splits = data.load(config, seed=0, device=CPU)
    for split in (splits.train, splits.val, splits.test):
        assert set(split.y.tolist()) == set(KEPT)
    # The limits count the chosen classes' examples: the first N of them, in file order.
    assert len(splits.train) + len(splits.val) == 2000 and len(splits.test) == 500
    raw = data.read_raw(fake_data)
    images, labels = raw["test"]
    chosen = [i for i, label in enumerate(labels.tolist()) if label in KEPT][:500]
    assert torch.equal(splits.test.y, labels[chosen].long())
    assert torch.equal(splits.test.X, images[chosen].reshape(500, -1).float() / 255)


def test_the_held_out_classes_are_the_rest():
    images, labels = torch.arange(10 * 4, dtype=torch.uint8).view(10, 2, 2), torch.arange(10, dtype=torch.uint8)
    _, kept = data.of_classes(images, labels, KEPT)
    held, out = data.of_classes(images, labels, KEPT, keep=False)
    assert kept.tolist() == list(KEPT) and out.tolist() == [1, 3, 4, 6, 8, 9]
    assert torch.equal(held, images[[1, 3, 4, 6, 8, 9]])
    assert len(data.of_classes(images, labels, None, keep=False)[1]) == 0  # all classes kept: none held out


@pytest.mark.parametrize(
    "value, message",
    [
        ("[0]", "data.classes must be null or a list of 2 to 10 distinct class numbers 0-9"),
        ("[1,1,2]", "data.classes must be null or a list of 2 to 10 distinct class numbers 0-9"),
        ("[0,10]", "data.classes must be null or a list of 2 to 10 distinct class numbers 0-9"),
        ("3", "data.classes must be a list or null, got 3"),
        ("[0,a]", "data.classes must be an integer, got 'a'"),
    ],
)
def test_bad_classes_are_refused_naming_the_key(value, message):
    with pytest.raises(DropcliError, match=message.replace("(", r"\(")):
        load_config(overrides=[f"data.classes={value}"])


def test_a_yaml_list_and_null_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  classes: [3, 1]\n")
    assert load_config(path).data.classes == (3, 1)
    assert load_config(path, overrides=["data.classes=null"]).data.classes is None


def test_train_and_evaluate_honour_it_and_the_run_records_it(in_tmp, invoke, small_args):
    result = invoke("train", *small_args(1, train=1500, test=400), "--set", "data.classes=[0,2,5,7]", "--run-dir", "r", "-q")
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((in_tmp / "r" / "config.yaml").read_text())
    assert saved["data"]["classes"] == list(KEPT)
    result = invoke("evaluate", in_tmp / "r", "--bootstrap", "0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # The test split holds the chosen classes only: the others' rows of the confusion matrix are empty.
    confusion = report["confusion"]
    assert [sum(row) for i, row in enumerate(confusion) if i not in KEPT] == [0] * 6
    assert sum(sum(row) for row in confusion) == report["uncertainty"]["examples"] == 400
