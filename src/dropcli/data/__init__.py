"""The IDX data sets (data.name): find the four files, verify them, and hold them as tensors.

Fashion-MNIST (the default), MNIST and KMNIST share the format, the file names and the sizes;
each has its own class names, torchvision downloader and cache directory. The files are looked
for in the `--data-dir` / `data.root` directory when one is named, else in `$DROPCLI_DATA` when
set (only there, as a named directory: Fashion-MNIST itself, the others in its subdirectory
`mnist/` or `kmnist/`); else in the Debian package's directory (Fashion-MNIST only) and
dropcli's download cache, in that order. Each may hold the files directly or in torchvision's
layout (`FashionMNIST/raw/`, `MNIST/raw/`, ...), gzipped or not. Where none has them, they are
downloaded with torchvision (which needs internet).
"""

import contextlib
import gzip
import io
import math
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from dropcli.config import DataConfig
from dropcli.errors import DropcliError

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
IMAGE_SIDE = 28
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEFAULT = "fashion-mnist"


@dataclass(frozen=True)
class IdxDataset:
    """One data set of the IDX family, as data.name names it."""

    name: str
    title: str  # as messages name it
    class_names: tuple[str, ...]
    torchvision: str  # the torchvision.datasets class that downloads it; also its folder in torchvision's layout


DATASETS = {
    "fashion-mnist": IdxDataset("fashion-mnist", "Fashion-MNIST", CLASS_NAMES, "FashionMNIST"),
    "mnist": IdxDataset("mnist", "MNIST", tuple(str(digit) for digit in range(10)), "MNIST"),
    # Kuzushiji-MNIST: ten cursive hiragana, by their romanised names (Clanuwat et al. 2018).
    "kmnist": IdxDataset("kmnist", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"), "KMNIST"),
}
# IDX magic numbers: two zero bytes, 0x08 for unsigned bytes, then the number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

HOW_TO_GET_DATA = (
    "get it one of three ways: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu); "
    "point --data-dir or $DROPCLI_DATA at a directory holding the four IDX files; "
    "or run `dropcli data fetch` on a machine with internet access"
)


def how_to_get(name: str) -> str:
    if name == DEFAULT:
        return HOW_TO_GET_DATA
    return (
        f"get it one of two ways: point --data-dir at a directory holding its four IDX files (or put them in "
        f"$DROPCLI_DATA/{name}); or run `dropcli data fetch --dataset {name}` on a machine with internet access"
    )


def dataset(name: str) -> IdxDataset:
    return DATASETS[name]


@dataclass(frozen=True)
class Split:
    """Images flattened to (n, 784) floats in [0, 1] and labels (n,) int64, on one device."""

    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Splits:
    """The splits of a loaded data set (Fashion-MNIST or another of DATASETS), and where it was read."""

    train: Split
    test: Split
    val: Split | None
    source: Path


def download_dir(name: str = DEFAULT) -> Path:
    """Where `dropcli data fetch` puts the files when no directory is named."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "dropcli" / name


def env_dir(name: str = DEFAULT) -> Path | None:
    """$DROPCLI_DATA for Fashion-MNIST, its subdirectory for the others (so that one never
    stands in for another: the files have the same names); None when it is not set."""
    if not os.environ.get("DROPCLI_DATA"):
        return None
    directory = _directory(os.environ["DROPCLI_DATA"], "$DROPCLI_DATA")
    return directory if name == DEFAULT else directory / name


def search_dirs(root: str | Path | None, name: str = DEFAULT) -> list[Path]:
    """The directories searched for the files, in order. A directory the user names (--data-dir,
    else $DROPCLI_DATA) is the only one: one without the files is never passed over silently."""
    if root:
        return [_directory(root, "--data-dir (data.root)")]
    env = env_dir(name)
    if env is not None:
        return [env]
    system = [SYSTEM_DIR] if name == DEFAULT else []  # Debian packages Fashion-MNIST only
    return system + [download_dir(name)]


def _directory(path: str | Path, named_by: str) -> Path:
    """A directory the user named, refused if it is something else."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DropcliError(f"{named_by} names {path}, which is a file; name the directory that holds the four IDX files")
    return path


def find_files(directory: Path, dataset_name: str = DEFAULT) -> dict[str, Path] | None:
    """The paths of the four files in `directory`, or None if any is missing."""
    found = {}
    for name in (name for pair in FILES.values() for name in pair):
        for folder in (directory, directory / DATASETS[dataset_name].torchvision / "raw"):
            path = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
            if path:
                found[name] = path
                break
        else:
            return None
    return found


def find(root: str | Path | None, name: str = DEFAULT) -> Path | None:
    """The first searched directory that holds all four files, or None."""
    return next((directory for directory in search_dirs(root, name) if find_files(directory, name)), None)


def locate(root: str | Path | None, name: str = DEFAULT) -> Path:
    """Like `find`, but a DropcliError that says how to get the data when nothing is found."""
    directory = find(root, name)
    if directory is None:
        raise DropcliError(not_found(root, name))
    return directory


def not_found(root: str | Path | None, name: str, remedy: str | None = None) -> str:
    """The data set is in none of the searched directories: where it looked, and what to do
    (`remedy`, default how_to_get's; `evaluate --ood` names its own flag)."""
    searched = ", ".join(str(d) for d in search_dirs(root, name))
    return f"{DATASETS[name].title} not found (searched {searched}); {remedy or how_to_get(name)}"


def find_or_fetch(root: str | Path | None, name: str = DEFAULT) -> Path:
    """The directory holding the files; downloads them where none does (needs internet)."""
    return find(root, name) or fetch(root or env_dir(name), name)


def for_run(config: DataConfig, recorded: Path | None = None) -> Path:
    """The directory of the data set a saved run was trained on (config.name, never another):
    where config.root, $DROPCLI_DATA or the usual places hold it, else where the run found it
    (`recorded`, from its summary) when no directory is named, else downloaded."""
    directory = find(config.root, config.name)
    if directory is None and not config.root and recorded is not None and find_files(recorded, config.name):
        return recorded
    return directory or fetch(config.root or env_dir(config.name), config.name)


def fetch(root: str | Path | None, name: str = DEFAULT) -> Path:
    """Download the files with torchvision into `root` (or the cache) unless already there.

    The download goes to a temporary directory first, so a failed one leaves nothing behind.
    """
    target = Path(root) if root else download_dir(name)
    if find_files(target, name):
        return target
    title = DATASETS[name].title
    try:
        import torchvision.datasets

        downloader = getattr(torchvision.datasets, DATASETS[name].torchvision)
    except ImportError:
        raise DropcliError(
            f"{title} is not in {target} and downloading it needs torchvision: pip install 'dropcli[download]'; "
            f"or {how_to_get(name)}"
        ) from None

    # The directories this creates, outermost first, so a failed download can take them back.
    created = [parent for parent in (*reversed(target.parents), target) if not parent.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
        _download(downloader, target, name)
    except BaseException:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty
        raise
    return target


def _download(downloader, target: Path, name: str) -> None:
    with tempfile.TemporaryDirectory(dir=target, prefix=".download-") as tmp:
        try:
            # torchvision prints its progress to stdout; keep the CLI's output clean.
            with contextlib.redirect_stdout(io.StringIO()):
                for train in (True, False):
                    downloader(tmp, train=train, download=True)
        except (RuntimeError, OSError) as error:
            # torchvision's message ends with the underlying reason, e.g. a failed name lookup.
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise DropcliError(
                f"could not download {DATASETS[name].title} into {target} ({reason}); {how_to_get(name)}"
            ) from None
        raw = Path(tmp) / DATASETS[name].torchvision / "raw"
        for name in (name for pair in FILES.values() for name in pair):
            os.replace(raw / f"{name}.gz", target / f"{name}.gz")


def read_raw(directory: Path, name: str = DEFAULT) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Read and verify both splits: {split: (images (n, 28, 28) uint8, labels (n,) uint8)}."""
    paths = find_files(directory, name)
    if paths is None:
        raise DropcliError(f"{DATASETS[name].title} files missing in {directory}; {how_to_get(name)}")
    splits = {}
    for split, (images_name, labels_name) in FILES.items():
        images = read_idx(paths[images_name], IMAGES_MAGIC, SPLIT_SIZES[split])
        labels = read_idx(paths[labels_name], LABELS_MAGIC, SPLIT_SIZES[split])
        if int(labels.max()) > 9:
            raise DropcliError(f"{paths[labels_name]}: labels must be 0-9, found {int(labels.max())}")
        splits[split] = (images, labels)
    return splits


def read_idx(path: Path, magic: int, count: int | None) -> torch.Tensor:
    """Read one IDX file (gzipped or not) holding `count` labels or 28x28 images (any number: None)."""
    content = _read_bytes(path)
    if len(content) < 8:
        raise DropcliError(f"{path}: too short to be an IDX file ({len(content)} bytes); replace it with a fresh copy")
    found_magic = int.from_bytes(content[:4], "big")
    if found_magic != magic:
        raise DropcliError(
            f"{path}: bad magic number 0x{found_magic:08x}, expected 0x{magic:08x}; the file is corrupt or not this IDX file"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    dims = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected_dims = [dims[0] if count is None else count] + [IMAGE_SIDE] * (ndim - 1)
    if dims != expected_dims:
        raise DropcliError(f"{path}: header says shape {tuple(dims)}, expected {tuple(expected_dims)} for this IDX data set")
    size = header_size + math.prod(dims)
    if len(content) != size:
        state = "truncated" if len(content) < size else "has trailing bytes"
        raise DropcliError(f"{path}: {state}: {len(content)} bytes, expected {size}; replace it with a fresh copy")
    if size == header_size:  # no images at all: frombuffer refuses an empty buffer
        return torch.empty(dims, dtype=torch.uint8)
    data = torch.frombuffer(bytearray(content[header_size:]), dtype=torch.uint8)
    return data.reshape(dims)


def load(config: DataConfig, seed: int, device: torch.device) -> Splits:
    """Find (or download), verify and move the data set `config.name` to `device`, scaled to [0, 1] once."""
    directory = find_or_fetch(config.root, config.name)
    return prepare(directory, read_raw(directory, config.name), config, seed, device)


def prepare(
    directory: Path, raw: dict[str, tuple[torch.Tensor, torch.Tensor]], config: DataConfig, seed: int, device: torch.device
) -> Splits:
    """The splits `config` asks for from files already read; `seed` draws the validation split
    (config.val_seed instead, when it is set). With config.classes, every split holds those
    classes' examples only (the limits count them), labels unchanged."""
    train_images, train_labels = of_classes(*raw["train"], config.classes)
    test_images, test_labels = of_classes(*raw["test"], config.classes)
    train = _to_split(train_images[: config.train_limit], train_labels[: config.train_limit], device)
    test = _to_split(test_images[: config.test_limit], test_labels[: config.test_limit], device)
    train, val = _split_off_validation(train, config.val_split, seed if config.val_seed is None else config.val_seed)
    return Splits(train=train, test=test, val=val, source=directory)


def of_classes(
    images: torch.Tensor, labels: torch.Tensor, classes: tuple[int, ...] | None, keep: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples whose label is one of `classes` (`keep`), or the others (not `keep`: the
    held-out classes); all of them when `classes` is None and `keep`."""
    if classes is None:
        return (images, labels) if keep else (images[:0], labels[:0])
    inside = torch.isin(labels.long(), torch.tensor(classes, dtype=torch.long))
    chosen = inside if keep else ~inside
    return images[chosen], labels[chosen]


def _to_split(images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> Split:
    # Move the bytes first: a quarter of the traffic of moving floats.
    X = images.reshape(len(images), -1).to(device).float().div_(255)  # (n, 784)
    return Split(X=X, y=labels.to(device=device, dtype=torch.int64))


def _split_off_validation(train: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    n_val = int(len(train) * fraction)
    if fraction == 0:
        return train, None
    if n_val == 0:
        raise DropcliError(
            f"data.val_split={fraction} of {len(train)} training examples is an empty validation set; "
            f"use at least {1 / len(train):.2g}, or 0 for none"
        )
    if n_val == len(train):
        raise DropcliError(f"data.val_split={fraction} leaves no training examples; use a smaller fraction")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).to(train.X.device)
    val_index, train_index = order[:n_val].sort().values, order[n_val:].sort().values
    return Split(train.X[train_index], train.y[train_index]), Split(train.X[val_index], train.y[val_index])


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                return file.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DropcliError(f"{path}: cannot be read ({error}); replace it with a fresh copy") from None
