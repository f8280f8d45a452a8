import gzip
import shutil
from pathlib import Path

import pytest
import torch

from dropcli import data
from dropcli.config import DataConfig
from dropcli.errors import DropcliError

CPU = torch.device("cpu")


def copy_files(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("fixture", ["fake_data", "fake_data_gz"])
def test_loads_both_splits_as_scaled_tensors(request, fixture):
    directory = request.getfixturevalue(fixture)
    dataset = data.load(DataConfig(root=str(directory)), seed=0, device=CPU)
    assert dataset.train.X.shape == (60_000, 784) and dataset.train.X.dtype == torch.float32
    assert dataset.test.X.shape == (10_000, 784)
    assert dataset.train.y.dtype == torch.int64 and set(dataset.test.y.unique().tolist()) <= set(range(10))
    assert 0 <= float(dataset.train.X.min()) and float(dataset.train.X.max()) <= 1
    assert dataset.val is None and dataset.source == directory


def test_values_are_the_file_bytes_over_255(fake_data):
    images = data.read_idx(fake_data / "t10k-images-idx3-ubyte", data.IMAGES_MAGIC, 10_000)
    dataset = data.load(DataConfig(root=str(fake_data)), seed=0, device=CPU)
    assert torch.equal(dataset.test.X[7], images[7].reshape(-1).float() / 255)


def test_limits_and_validation_split(fake_data):
    config = DataConfig(root=str(fake_data), train_limit=1000, test_limit=300, val_split=0.2)
    dataset = data.load(config, seed=0, device=CPU)
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (800, 200, 300)
    # Validation examples are carved out of the training examples, with no overlap.
    full = data.load(DataConfig(root=str(fake_data), train_limit=1000), seed=0, device=CPU).train.X
    rows = {tuple(row.tolist()) for row in full[:, :40]}
    train_rows = {tuple(row.tolist()) for row in dataset.train.X[:, :40]}
    val_rows = {tuple(row.tolist()) for row in dataset.val.X[:, :40]}
    assert train_rows | val_rows == rows and not train_rows & val_rows


def test_search_order_named_then_env_then_system(fake_data, fake_data_gz, monkeypatch, no_system_data):
    monkeypatch.setenv("DROPCLI_DATA", str(fake_data_gz))
    assert data.locate(None) == fake_data_gz
    assert data.locate(fake_data) == fake_data
    monkeypatch.delenv("DROPCLI_DATA")
    monkeypatch.setattr(data, "SYSTEM_DIR", fake_data)
    assert data.locate(None) == fake_data


def test_torchvision_layout_is_found(fake_data_gz, tmp_path):
    copy_files(fake_data_gz, tmp_path / "FashionMNIST" / "raw")
    assert data.find_files(tmp_path) is not None
    assert len(data.read_raw(tmp_path)["test"][1]) == 10_000


def test_nothing_found_says_the_three_ways(no_system_data, tmp_path):
    with pytest.raises(DropcliError) as error:
        data.locate(tmp_path / "empty")
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir or $DROPCLI_DATA" in message
    assert "dropcli data fetch" in message


@pytest.mark.parametrize(
    "fixture, name, cut, message",
    [
        ("fake_data", "train-images-idx3-ubyte", 100, r"train-images-idx3-ubyte: truncated: 47039916 bytes, expected 47040016"),
        ("fake_data_gz", "t10k-labels-idx1-ubyte.gz", 50, r"t10k-labels-idx1-ubyte.gz: cannot be read"),
    ],
)
def test_a_truncated_file_is_named(request, tmp_path, fixture, name, cut, message):
    directory = copy_files(request.getfixturevalue(fixture), tmp_path / "d")
    path = directory / name
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(DropcliError, match=message):
        data.read_raw(directory)


def test_not_gzip_is_named(fake_data_gz, tmp_path):
    directory = copy_files(fake_data_gz, tmp_path / "d")
    (directory / "t10k-images-idx3-ubyte.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DropcliError, match=r"t10k-images-idx3-ubyte.gz: cannot be read"):
        data.read_raw(directory)


def test_bad_magic_is_named(fake_data, tmp_path):
    directory = copy_files(fake_data, tmp_path / "d")
    path = directory / "t10k-labels-idx1-ubyte"
    content = bytearray(path.read_bytes())
    content[3] = 0x03  # an image file's magic on a labels file
    path.write_bytes(bytes(content))
    with pytest.raises(DropcliError, match=r"t10k-labels-idx1-ubyte: bad magic number 0x00000803, expected 0x00000801"):
        data.read_raw(directory)


def test_wrong_count_is_named(tmp_path):
    from conftest import write_fashion_mnist

    directory = write_fashion_mnist(tmp_path / "d", gz=True, sizes={"train": 500, "test": 10_000})
    with pytest.raises(
        DropcliError, match=r"train-images-idx3-ubyte.gz: header says shape \(500, 28, 28\), expected \(60000, 28, 28\)"
    ):
        data.read_raw(directory)


def test_labels_out_of_range_are_named(fake_data, tmp_path):
    directory = copy_files(fake_data, tmp_path / "d")
    path = directory / "t10k-labels-idx1-ubyte"
    content = bytearray(path.read_bytes())
    content[-1] = 12
    path.write_bytes(bytes(content))
    with pytest.raises(DropcliError, match=r"t10k-labels-idx1-ubyte: labels must be 0-9, found 12"):
        data.read_raw(directory)


def test_missing_file_in_named_directory(fake_data, tmp_path, no_system_data):
    directory = copy_files(fake_data, tmp_path / "d")
    (directory / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DropcliError, match="Fashion-MNIST files missing in"):
        data.read_raw(directory)


class FakeTorchvisionFashionMNIST:
    """Stands in for torchvision's downloader: writes the .gz files where torchvision would."""

    source: Path

    def __init__(self, root, train, download):
        raw = Path(root) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name in data.FILES["train" if train else "test"]:
            shutil.copy(self.source / f"{name}.gz", raw / f"{name}.gz")
            with gzip.open(raw / f"{name}.gz") as compressed:  # torchvision also leaves these
                (raw / name).write_bytes(compressed.read())


def test_fetch_moves_the_downloaded_files_into_place(fake_data_gz, tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(FakeTorchvisionFashionMNIST, "source", fake_data_gz, raising=False)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeTorchvisionFashionMNIST)
    target = data.fetch(tmp_path / "cache")
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for pair in data.FILES.values() for n in pair)
    assert len(data.read_raw(target)["train"][1]) == 60_000


def test_failed_fetch_leaves_nothing_behind(tmp_path, no_system_data):
    with pytest.raises(
        DropcliError,
        match=r"could not download Fashion-MNIST into .*\(\[Errno -3\] name lookup failed\); get it one of three ways",
    ):
        data.fetch(tmp_path / "cache" / "fashion-mnist")
    assert list(tmp_path.iterdir()) == []  # not even the directories it made
    (tmp_path / "mine").mkdir()
    with pytest.raises(DropcliError, match="could not download"):
        data.fetch(tmp_path / "mine")
    assert list(tmp_path.iterdir()) == [tmp_path / "mine"]  # a directory that was there stays


def test_a_named_directory_is_the_only_one_searched(fake_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DROPCLI_DATA", str(fake_data))
    assert data.find(tmp_path / "empty") is None
    assert data.find(None) == fake_data


def test_dropcli_data_naming_an_empty_directory_is_the_only_one_searched(fake_data, tmp_path, monkeypatch):
    # As with --data-dir: the data elsewhere (here the "system" copy) is not used in its place.
    monkeypatch.setattr(data, "SYSTEM_DIR", fake_data)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("DROPCLI_DATA", str(tmp_path / "empty"))
    assert data.search_dirs(None) == [tmp_path / "empty"] and data.find(None) is None
    with pytest.raises(DropcliError, match=r"Fashion-MNIST not found \(searched .*empty\)"):
        data.locate(None)


def test_load_downloads_when_nothing_is_found(fake_data_gz, tmp_path, monkeypatch, no_system_data):
    import torchvision.datasets

    monkeypatch.setattr(FakeTorchvisionFashionMNIST, "source", fake_data_gz, raising=False)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeTorchvisionFashionMNIST)
    dataset = data.load(DataConfig(root=str(tmp_path / "new"), test_limit=10), seed=0, device=CPU)
    assert dataset.source == tmp_path / "new" and len(dataset.test) == 10
