"""Atomic writers: the target is either the old file or the complete new one; no temporary file survives."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from aesweep import io as aio


def test_write_csv_atomic_writes_the_table_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "runs.csv"
    frame = pd.DataFrame({"model.bottleneck": [10, 16], "val.mapped_acc": [0.5, 0.75]})

    aio.write_csv_atomic(target, frame)

    pd.testing.assert_frame_equal(pd.read_csv(target), frame)
    assert os.listdir(tmp_path) == ["runs.csv"]


def test_write_csv_atomic_interrupted_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "runs.csv"
    target.write_text("a,b\n1,2\n")

    class FailsHalfway:
        def to_csv(self, handle, index):
            handle.write("a,b\n1,")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        aio.write_csv_atomic(target, FailsHalfway())

    assert target.read_text() == "a,b\n1,2\n"
    assert os.listdir(tmp_path) == ["runs.csv"]


def test_failed_rename_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, monkeypatch):
    target = tmp_path / "note.txt"
    target.write_text("old")

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(aio.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        aio.write_text_atomic(target, "new")

    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["note.txt"]


def test_write_text_atomic_creates_missing_parent_directories(tmp_path):
    aio.write_text_atomic(tmp_path / "a" / "b" / "best.yaml", "- model.bottleneck=16\n")

    assert (tmp_path / "a" / "b" / "best.yaml").read_text() == "- model.bottleneck=16\n"


def test_write_json_atomic_writes_strict_json_with_nan_as_null_and_numpy_as_python(tmp_path):
    target = tmp_path / "metrics.json"

    aio.write_json_atomic(target, {"val": {"mapped_acc": float("nan"), "clusters_used": np.int64(9)},
                                   "confusion": np.eye(2, dtype=int)})

    assert json.loads(target.read_text()) == {"val": {"mapped_acc": None, "clusters_used": 9},
                                              "confusion": [[1, 0], [0, 1]]}
    assert "NaN" not in target.read_text()
