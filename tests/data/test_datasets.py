"""data.name: MNIST and KMNIST beside Fashion-MNIST, from small IDX files the tests write.

Only Fashion-MNIST exists on the machines these tests were written on; the others are the same
format, so stand-in files in it exercise the real loader, lookup chain and downloader wiring.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import write_fashion_mnist
from dropcli import data, runs
from dropcli.config import DataConfig
from dropcli.errors import DropcliError

CPU = torch.device("cpu")
SMALL = {"train": 600, "test": 200}


@pytest.fixture
def small_sizes(monkeypatch):
    """Small files count as complete: the loader checks lengths against data.SPLIT_SIZES."""
    monkeypatch.setattr(data, "SPLIT_SIZES", SMALL)


def write_set(directory: Path, gz: bool = True) -> Path:
    return write_fashion_mnist(directory, gz=gz, sizes=SMALL)


@pytest.mark.parametrize("name, torchvision", [("mnist", "MNIST"), ("kmnist", "KMNIST")])
def test_each_set_is_found_in_its_own_places(name, torchvision, small_sizes, no_system_data, tmp_path, monkeypatch):
    # $DROPCLI_DATA holds Fashion-MNIST itself; another set must not be taken for it (same file names).
    fashion = write_set(tmp_path / "env")
    monkeypatch.setenv("DROPCLI_DATA", str(fashion))
    monkeypatch.setattr(data, "SYSTEM_DIR", write_set(tmp_path / "debian"))  # Debian packages Fashion-MNIST only
    assert data.find(None, name) is None
    assert data.find(None) == fashion
    own = write_set(tmp_path / "env" / name)
    assert data.find(None, name) == own
    # torchvision's layout in a named directory, and a named directory is the only one searched.
    named = tmp_path / "named"
    write_set(named / torchvision / "raw")
    assert data.find(named, name) == named and data.find(named) is None
    assert data.search_dirs(None, name) == [own]  # $DROPCLI_DATA names the place: the only one searched


def test_a_missing_set_says_how_to_get_it(small_sizes, no_system_data):
    with pytest.raises(
        DropcliError, match=r"KMNIST not found \(searched .*dropcli/kmnist\); .*dropcli data fetch --dataset kmnist"
    ):
        data.locate(None, "kmnist")


@pytest.mark.parametrize("name, downloader_name", [("mnist", "MNIST"), ("kmnist", "KMNIST")])
def test_fetch_uses_the_sets_own_torchvision_downloader(
    name, downloader_name, small_sizes, no_system_data, tmp_path, monkeypatch
):
    import torchvision.datasets

    source = write_set(tmp_path / "source")

    class Downloader:
        def __init__(self, root, train, download):
            raw = Path(root) / downloader_name / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for file in data.FILES["train" if train else "test"]:
                shutil.copy(source / f"{file}.gz", raw / f"{file}.gz")

    monkeypatch.setattr(torchvision.datasets, downloader_name, Downloader)
    loaded = data.load(DataConfig(name=name), seed=0, device=CPU)
    assert loaded.source == tmp_path / "no-cache" / "dropcli" / name
    assert len(loaded.train) == SMALL["train"] and len(loaded.test) == SMALL["test"]


def test_training_and_evaluating_on_mnist_names_its_classes(small_sizes, in_tmp, invoke):
    directory = write_set(in_tmp / "mnist", gz=False)
    args = ["--data-dir", directory, "--device", "cpu", "--set", "data.name=mnist", "--set", "train.epochs=1", "-q"]
    assert invoke("train", *args, "--run-dir", "r").exit_code == 0
    assert json.loads((in_tmp / "r" / runs.SUMMARY_FILE).read_text())["data"]["train"] == SMALL["train"]
    scored = json.loads(invoke("evaluate", "r", "--json").stdout)
    assert scored["class_names"] == [str(digit) for digit in range(10)]
    assert invoke("data", "info", "--dataset", "mnist", "--data-dir", directory).exit_code == 0


def test_the_default_is_fashion_mnist_and_the_class_names_differ():
    assert DataConfig().name == "fashion-mnist"
    names = {name: data.dataset(name).class_names for name in data.DATASETS}
    assert names["fashion-mnist"][0] == "T-shirt/top" and names["kmnist"][0] == "o"
    assert len({tuple(classes) for classes in names.values()}) == 3 and all(len(c) == 10 for c in names.values())


def test_an_unknown_set_is_refused(invoke):
    result = invoke("train", "--set", "data.name=emnist")
    assert result.exit_code == 2 and "data.name must be one of fashion-mnist, mnist, kmnist, got 'emnist'" in result.stderr
    result = invoke("data", "info", "--dataset", "emnist")
    assert result.exit_code == 2 and "--dataset must be one of" in result.stderr
