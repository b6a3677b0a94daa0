"""Atomic writers: the target is either the old file or the complete new one; no temporary file survives."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from aesweep import io as aio
from aesweep.errors import OutputError


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


# ----------------------------------------------------------------- where a command may write (--out)


def test_check_writable_accepts_missing_folders_and_creates_nothing(tmp_path):
    aio.check_writable(tmp_path / "a" / "b" / "bench.csv")
    aio.check_writable(tmp_path / "reseed", folder=True)

    assert os.listdir(tmp_path) == []


def test_check_writable_refuses_a_path_below_a_file_naming_the_file(tmp_path):
    blocker = tmp_path / "passwd"
    blocker.write_text("root:x:0:0\n")

    with pytest.raises(OutputError) as refused:
        aio.check_writable(blocker / "sub" / "m.csv")

    assert str(refused.value) == f"--out='{blocker}/sub/m.csv': cannot write there (Not a directory: {blocker})"
    assert blocker.read_text() == "root:x:0:0\n" and os.listdir(tmp_path) == ["passwd"]


def test_check_writable_refuses_a_folder_for_a_file_and_a_file_for_a_folder(tmp_path):
    (tmp_path / "table.csv").write_text("a\n")

    with pytest.raises(OutputError, match=r"^--out='.*': cannot write there \(Is a directory\)$"):
        aio.check_writable(tmp_path)
    with pytest.raises(OutputError, match=r"^--root='.*table.csv': cannot write there \(Not a directory\)$"):
        aio.check_writable(tmp_path / "table.csv", option="--root", folder=True)


def test_a_failed_write_becomes_one_output_error_naming_the_option_and_the_path(tmp_path):
    blocker = tmp_path / "passwd"
    blocker.write_text("")
    target = blocker / "x.csv"

    with pytest.raises(OutputError) as refused, aio.writing_to(target):
        aio.write_csv_atomic(target, pd.DataFrame({"a": [1]}))  # mkdir of the file's folder: "File exists"

    assert str(refused.value) == f"--out='{target}': cannot write there (Not a directory: {blocker})"


def test_a_full_disk_while_writing_is_named_by_its_strerror(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(aio.os, "replace", full)
    with pytest.raises(OutputError, match=r"^--out='t.csv': cannot write there \(No space left on device\)$"), \
            aio.writing_to("t.csv"):
        aio.write_text_atomic(tmp_path / "t.csv", "a\n")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_get_the_permissions_the_umask_allows_like_any_new_file(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        aio.write_text_atomic(tmp_path / "trials.csv", "number\n0\n")
        aio.write_json_atomic(tmp_path / "metrics.json", {"status": "completed"})
    finally:
        os.umask(previous)
    assert oct((tmp_path / "trials.csv").stat().st_mode & 0o777) == oct(mode)
    assert oct((tmp_path / "metrics.json").stat().st_mode & 0o777) == oct(mode)
