"""`aesweep bench` measuring for real on this CPU: the speed table from real loops, trials and memory from real
`python train.py` runs (on small MNIST subsets)."""

import pandas as pd
import pytest

from aesweep import bench
from aesweep.bench import speed



def test_smallest_cpu_run_writes_csv_and_markdown_with_positive_measurements(tmp_path, mnist_root, monkeypatch,
                                                                             capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the machine is shared; one thread per process
    out = tmp_path / "bench" / "bench.csv"

    status = bench.main(["--device", "cpu", "--modes", "blog-loop,eager", "--warmup", "1", "--steps", "2",
                         "--repeats", "1", "--batch-size", "16", "--override", f"data.root={mnist_root}",
                         "--out", str(out)])

    assert status == 0
    table = pd.read_csv(out)
    assert list(table.columns) == speed.COLUMNS
    assert list(table["mode"]) == ["blog-loop", "eager"]
    for column in ("images_per_s", "s_per_epoch", "vs_blog", "gflop_per_step", "floor_s_per_epoch", "achieved",
                   "peak_rss_mb"):
        assert (table[column] > 0).all(), column
    assert list(table["timed_steps"]) == [2, 2]
    assert list(table["batch_size"]) == [16, 16]
    assert table.loc[0, "vs_blog"] == 1
    assert table.loc[1, "loss_vs_eager"] == 0
    assert table["s_per_epoch"].tolist() == pytest.approx((60_000 / table["images_per_s"]).tolist(), rel=1e-2)
    markdown = out.with_suffix(".md").read_text()
    assert markdown.startswith("| mode | loop |") and "warm-up steps" in markdown
    assert capsys.readouterr().out == markdown




def test_trials_and_memory_run_real_training_jobs(tmp_path, mnist_root, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    common = ["--device", "cpu", "--override", f"data.root={mnist_root}", "--override", "data.val_size=500"]

    assert bench.main(["trials", *common, "--quick", "--concurrency", "1", "--trials", "1",
                       "--out", str(tmp_path / "trials.csv")]) == 0
    assert bench.main(["memory", *common, "--subset", "256", "--out", str(tmp_path / "memory.csv")]) == 0

    trials = pd.read_csv(tmp_path / "trials.csv")
    assert trials.loc[0, ["concurrency", "trials", "completed", "failed"]].tolist() == [1, 1, 1, 0]
    assert trials.loc[0, "trials_per_hour"] > 0 and trials.loc[0, "vs_one_at_a_time"] == 1
    assert 0 < trials.loc[0, "mean_val_mapped_acc"] <= 1
    memory = pd.read_csv(tmp_path / "memory.csv")
    assert memory.loc[0, "completed"] and 100 < memory.loc[0, "peak_rss_mb"] < 10_000
