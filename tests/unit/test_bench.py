"""`aesweep bench`: the speed table end to end on CPU, its FLOP count against a hand count, and the helpers."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from aesweep import bench
from aesweep.bench import cli as bench_cli
from aesweep.bench import loops, speed, sweeps, trials
from aesweep.model import BlogAutoencoder

# Multiply-accumulates per image of each layer of the blog's network, counted by hand:
# a convolution does (output pixels x output channels) dot products of length (input channels x k x k);
# a transposed convolution scatters every input pixel of every input channel into k x k x output channels.
SEED_MACS_PER_IMAGE = {
    "Conv2d(1, 4, 5): 28x28 -> 24x24": 24 * 24 * 4 * (1 * 5 * 5),  # 57,600
    "Conv2d(4, 8, 5): 24x24 -> 20x20": 20 * 20 * 8 * (4 * 5 * 5),  # 320,000
    "Linear(3200, 10)": 3200 * 10,
    "Linear(10, 400)": 10 * 400,
    "Linear(400, 4000)": 400 * 4000,
    "ConvTranspose2d(10, 10, 5): 20x20 -> 24x24": 20 * 20 * 10 * (10 * 5 * 5),  # 1,000,000
    "ConvTranspose2d(10, 1, 5): 24x24 -> 28x28": 24 * 24 * 10 * (1 * 5 * 5),  # 144,000
}
FIRST_LAYER = "Conv2d(1, 4, 5): 28x28 -> 24x24"


# ------------------------------------------------------------------------------------- FLOP count


def test_blog_forward_flops_are_twice_the_hand_counted_macs():
    batch = 4
    model, x = BlogAutoencoder(), torch.rand(batch, 1, 28, 28)

    with FlopCounterMode(display=False) as counter:
        model(x)

    assert sum(SEED_MACS_PER_IMAGE.values()) == 3_157_600
    assert counter.get_total_flops() == 2 * batch * 3_157_600


def test_blog_training_step_flops_add_weight_and_input_gradients_except_the_images_gradient():
    """Backward repeats every layer's MACs once for the weight gradient and once for the input gradient,
    except the first layer's input gradient: the images need none."""
    batch = 4
    model, x = BlogAutoencoder(), torch.rand(batch, 1, 28, 28)
    macs = sum(SEED_MACS_PER_IMAGE.values())

    flops = loops.step_flops(lambda: F.mse_loss(model(x), x))

    assert flops == 2 * batch * (3 * macs - SEED_MACS_PER_IMAGE[FIRST_LAYER])
    assert flops * 60_000 / batch == 1_129_824_000_000  # 1.13 TFLOP per 60k-image epoch


# ------------------------------------------------------------------------------------------ modes


def test_cpu_modes_skip_amp_with_the_reason_and_try_each_thread_count():
    modes = {m.name: m for m in speed.speed_modes("cpu", 128, 0.01, cpu_count=2, native_bf16=False)}

    assert modes["amp"].skip == "this CPU has no native bf16 (trainer.amp=true is refused here)"
    assert "channels_last+amp" not in modes
    assert modes["threads=1"].overrides[-1] == "trainer.threads=1"
    assert modes["threads=2"].overrides[-1] == "trainer.threads=2"
    assert modes["compile"].overrides[-1] == "trainer.compile_mode=default"
    assert not modes["compile"].quick


def test_a_cpu_with_native_bf16_times_amp_alone_and_on_channels_last():
    modes = {m.name: m for m in speed.speed_modes("cpu", 128, 0.01, cpu_count=2, native_bf16=True)}

    assert modes["amp"].skip is None
    assert modes["amp"].overrides[-1] == "trainer.amp=true"
    assert modes["channels_last+amp"].overrides[-2:] == ["trainer.channels_last=true", "trainer.amp=true"]
    assert "trainer.amp=false" in modes["eager"].overrides


def test_gpu_compile_uses_cuda_graphs_and_amp_runs():
    modes = {m.name: m for m in speed.speed_modes("cuda", 128, 0.01, cpu_count=16)}

    assert "trainer.compile_mode=reduce-overhead" in modes["compile"].overrides
    assert modes["amp"].skip is None
    assert not any(name.startswith("threads=") for name in modes)


def test_larger_batches_scale_the_learning_rate_linearly():
    modes = {m.name: m for m in speed.speed_modes("cpu", 128, 0.01, cpu_count=2)}

    assert modes["batch=512"].overrides[-2:] == ["trainer.batch_size=512", "optimizer.lr=0.04"]
    assert modes["batch=1024"].overrides[-2:] == ["trainer.batch_size=1024", "optimizer.lr=0.08"]


@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
def test_every_project_mode_starts_from_all_switches_off_or_from_the_default(device_type):
    for mode in speed.speed_modes(device_type, 128, 0.01, cpu_count=2):
        if mode.loop == "project" and not mode.name.startswith("default"):
            assert mode.overrides[: len(speed.SPEED_SWITCHES_OFF)] == speed.SPEED_SWITCHES_OFF


def test_gpu_modes_on_top_of_the_default_change_one_thing_inside_the_graph():
    modes = {m.name: m for m in speed.speed_modes("cuda", 128, 0.01, cpu_count=16)}

    assert modes["default+channels_last"].overrides == ["trainer.channels_last=true"]
    assert modes["default+compile"].overrides == ["trainer.compile=true", "trainer.compile_mode=default"]
    assert modes["default+compile-autotune"].overrides[-1] == "trainer.compile_mode=max-autotune-no-cudagraphs"
    assert not modes["default+compile"].quick  # a cold compile is tens of seconds


def test_unknown_mode_is_a_one_line_error_naming_the_known_ones(capsys):
    assert bench.main(["--device", "cpu", "--modes", "warp"]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("aesweep bench: error: --modes='warp' is not allowed: mode names for cpu: blog-loop, ")


def test_absent_gpu_is_a_one_line_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert bench.main(["--device", "cuda", "--quick"]) == 2
    assert capsys.readouterr().err.startswith("aesweep bench: error: device='cuda' is not allowed")


# ------------------------------------------------------------------------------------------ table


def measured(seconds: float, loss: float | None, batch: int = 128) -> dict:
    return {"seconds": [seconds], "images": 10 * batch, "flops_per_step": 2.4e9 * batch / 128, "warmup_s": 0.1,
            "mean_loss": loss, "threads": 1, "batch_size": batch, "device": "cpu", "matmul_flops_per_s": 1e11,
            "peak_rss_mb": 700.0}


def test_table_rates_modes_against_the_seed_loop_and_losses_against_eager():
    modes = speed.speed_modes("cpu", 128, 0.01, cpu_count=2)
    by_name = {m.name: m for m in modes}
    rows = [
        speed.mode_row(by_name["blog-loop"], measured(2.0, None), 1, 10),
        speed.mode_row(by_name["eager"], measured(1.0, 0.2), 1, 10),
        speed.mode_row(by_name["channels_last"], measured(0.5, 0.2002), 1, 10),
        speed.mode_row(by_name["amp"], {}, 1, 10),
        speed.mode_row(by_name["batch=512"], measured(1.0, 0.1, batch=512), 1, 10),
    ]

    table = speed.speed_table(rows).set_index("mode")

    assert table.loc["blog-loop", "images_per_s"] == 640
    assert table["vs_blog"].tolist()[:3] == [1, 2, 4]
    assert table.loc["channels_last", "loss_vs_eager"] == pytest.approx(0.001)
    assert math.isnan(table.loc["batch=512", "loss_vs_eager"])  # another batch size: other steps, not comparable
    assert table.loc["eager", "floor_s_per_epoch"] == pytest.approx(2.4e9 * 60_000 / 128 / 1e11)
    assert table.loc["eager", "s_per_epoch"] == 60_000 / 1280
    assert table.loc["eager", "achieved"] == pytest.approx(table.loc["eager", "floor_s_per_epoch"] / (60_000 / 1280))
    assert table.loc["amp", "note"].startswith("skipped: ")
    assert math.isnan(table.loc["amp", "images_per_s"])


def test_failed_mode_keeps_its_row_with_the_reason():
    mode = speed.Mode("compile", "project", ["trainer.compile=true"])

    row = speed.mode_row(mode, {"error": "InductorError: no C++ compiler"}, 1, 10)

    assert row["note"] == "failed: InductorError: no C++ compiler"
    assert "images_per_s" not in row


# ---------------------------------------------------------------------------------------- pruning


def trials_table(rows: list[tuple[int, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["number", "state", "val.mapped_acc", "seconds"])


def test_time_to_target_sums_trial_seconds_up_to_the_first_complete_trial_that_reaches_it():
    table = trials_table([(0, "COMPLETE", 0.40, 100.0), (1, "PRUNED", 0.70, 10.0), (2, "COMPLETE", 0.55, 100.0),
                          (3, "COMPLETE", 0.62, 90.0), (4, "COMPLETE", 0.65, 100.0)])

    result = sweeps.time_to_target(table.sample(frac=1, random_state=0), target=0.6, metric="val.mapped_acc")

    assert result["trial_seconds_to_target"] == 300.0  # trials 0-3, pruned trial 1 included; trial 1 does not count
    assert result["trials_to_target"] == 4
    assert result["best val.mapped_acc"] == 0.65
    assert (result["trials"], result["complete"], result["pruned"]) == (5, 4, 1)
    assert result["trial_seconds_total"] == 400.0


def test_pruning_comparison_reports_the_speedup_to_target(tmp_path, capsys):
    with_pruner, without = tmp_path / "with", tmp_path / "without"
    with_pruner.mkdir()
    without.mkdir()
    trials_table([(0, "PRUNED", 0.3, 20.0), (1, "COMPLETE", 0.61, 100.0)]).to_csv(with_pruner / "trials.csv",
                                                                                  index=False)
    trials_table([(0, "COMPLETE", 0.3, 100.0), (1, "COMPLETE", 0.5, 100.0),
                  (2, "COMPLETE", 0.61, 100.0)]).to_csv(without / "trials.csv", index=False)

    assert bench.main(["pruning", str(with_pruner), str(without), "--target", "0.6",
                       "--out", str(tmp_path / "pruning.csv")]) == 0

    table = pd.read_csv(tmp_path / "pruning.csv")
    assert table["trial_seconds_to_target"].tolist() == [120.0, 300.0]
    assert table["speedup_to_target"].tolist() == [2.5, 1.0]
    # in the pruned sweep's 120 trial-seconds the unpruned one completed only trial 0
    assert table["best_within_pruned_total"].tolist() == [0.61, 0.3]


def test_pairs_of_sweeps_and_several_targets_give_a_row_each_and_a_median_per_target(tmp_path, capsys):
    sweep_dirs = {}
    for name, rows in {
        "on0": [(0, "PRUNED", 0.3, 20.0), (1, "COMPLETE", 0.85, 100.0), (2, "COMPLETE", 0.95, 100.0)],
        "off0": [(0, "COMPLETE", 0.3, 100.0), (1, "COMPLETE", 0.85, 100.0), (2, "COMPLETE", 0.7, 100.0)],
        "on1": [(0, "COMPLETE", 0.81, 100.0)],
        "off1": [(0, "COMPLETE", 0.6, 100.0), (1, "COMPLETE", 0.5, 100.0), (2, "COMPLETE", 0.82, 100.0),
                 (3, "COMPLETE", 0.91, 100.0)],
    }.items():
        (tmp_path / name).mkdir()
        trials_table(rows).to_csv(tmp_path / name / "trials.csv", index=False)
        sweep_dirs[name] = str(tmp_path / name)

    assert bench.main(["pruning", sweep_dirs["on0"], sweep_dirs["off0"], sweep_dirs["on1"], sweep_dirs["off1"],
                       "--target", "0.8,0.9", "--out", str(tmp_path / "pruning.csv")]) == 0

    table = pd.read_csv(tmp_path / "pruning.csv")
    pruned = table[table["sweep"] == "with pruner"].set_index(["pair", "target"])
    assert [pruned.loc[key, "trial_seconds_to_target"] for key in [(1, 0.8), (1, 0.9), (2, 0.8)]] == [120, 220, 100]
    assert pruned.loc[(1, 0.8), "speedup_to_target"] == 1.67  # 200 / 120 trial-seconds, to 3 digits
    assert math.isnan(pruned.loc[(1, 0.9), "speedup_to_target"])  # the unpruned sweep never reached 0.9
    assert pruned.loc[(2, 0.8), "speedup_to_target"] == 3.0
    assert math.isnan(pruned.loc[(2, 0.9), "trial_seconds_to_target"])
    # a sweep that missed the target bounds the speed-up by its total: more than 300 / 220, at most 400 / 100
    assert (pruned.loc[(1, 0.9), "speedup_at_least"], pruned.loc[(1, 0.9), "speedup_at_most"]) == (1.36, math.inf)
    assert (pruned.loc[(2, 0.9), "speedup_at_least"], pruned.loc[(2, 0.9), "speedup_at_most"]) == (0.0, 4.0)
    markdown = (tmp_path / "pruning.md").read_text()
    assert "target 0.8: median speed-up 2.33x over the 2 of 2 pairs where a sweep reached it (1.67x, 3x)" in markdown
    # median of the lower bounds (1.36, 0) and of the upper ones (inf, 4): at least 0.68x, no upper bound
    assert "target 0.9: median speed-up >= 0.682x over the 2 of 2 pairs where a sweep reached it " \
           "(>= 1.36x, <= 4x); not reached: 1 with the pruner, 1 without" in markdown
    assert "trial-seconds of all pairs: 320 with the pruner, 700 without" in markdown


def test_the_median_speedup_counts_a_target_the_unpruned_sweep_never_reached_as_a_lower_bound(tmp_path):
    sources = []
    for name, rows in {
        "on0": [(0, "COMPLETE", 0.9, 100.0)], "off0": [(0, "COMPLETE", 0.5, 100.0), (1, "COMPLETE", 0.9, 100.0)],
        "on1": [(0, "COMPLETE", 0.9, 100.0)], "off1": [(0, "COMPLETE", 0.5, 100.0), (1, "COMPLETE", 0.5, 900.0)],
        "on2": [(0, "COMPLETE", 0.9, 100.0)], "off2": [(0, "COMPLETE", 0.5, 100.0), (1, "COMPLETE", 0.5, 500.0)],
        "on3": [(0, "COMPLETE", 0.5, 100.0)], "off3": [(0, "COMPLETE", 0.5, 100.0)],  # neither reaches 0.8
    }.items():
        trials_table(rows).to_csv(tmp_path / f"{name}.csv", index=False)
        sources.append(str(tmp_path / f"{name}.csv"))

    assert bench.main(["pruning", *sources, "--target", "0.8", "--out", str(tmp_path / "pruning.csv")]) == 0

    # speed-ups 2x, > 10x, > 6x: the median is at least 6x, though only one pair gives an exact value
    assert "target 0.8: median speed-up >= 6x over the 3 of 4 pairs where a sweep reached it (2x, >= 10x, >= 6x); " \
           "not reached: 1 with the pruner, 3 without" in (tmp_path / "pruning.md").read_text()


def test_the_unpruned_best_target_is_each_pairs_own_unpruned_best(tmp_path):
    sources = []
    for name, rows in {
        # pair 1: the unpruned sweep's best (0.9, after 300 s) found by the pruned one after 50 s
        "on0": [(0, "PRUNED", 0.2, 10.0), (1, "PRUNED", 0.95, 20.0), (2, "COMPLETE", 0.9, 20.0)],
        "off0": [(0, "COMPLETE", 0.5, 100.0), (1, "COMPLETE", 0.7, 100.0), (2, "COMPLETE", 0.9, 100.0)],
        # pair 2: the pruned sweep never matched 0.8 (its 0.79 is not enough): at most 100 / 60
        "on1": [(0, "COMPLETE", 0.79, 60.0)], "off1": [(0, "COMPLETE", 0.8, 100.0), (1, "FAIL", 0.99, 5.0)],
    }.items():
        trials_table(rows).to_csv(tmp_path / f"{name}.csv", index=False)
        sources.append(str(tmp_path / f"{name}.csv"))

    assert bench.main(["pruning", *sources, "--target", "0.85,unpruned-best", "--out", str(tmp_path / "p.csv")]) == 0

    table = pd.read_csv(tmp_path / "p.csv")
    pruned = table[(table["sweep"] == "with pruner") & (table["target"] == "unpruned-best")].set_index("pair")
    assert pruned["target_value"].tolist() == [0.9, 0.8]  # a FAIL row's value does not count
    assert pruned.loc[1, "trial_seconds_to_target"] == 50.0  # the PRUNED 0.95 does not count either
    assert pruned.loc[1, "speedup_to_target"] == 6.0
    assert (pruned.loc[2, "speedup_at_least"], pruned.loc[2, "speedup_at_most"]) == (0.0, 1.67)
    # medians of the lower bounds (6, 0) and of the upper ones (6, 1.67)
    assert "target unpruned-best: median speed-up 3-3.83x over the 2 of 2 pairs where a sweep reached it " \
           "(6x, <= 1.67x); not reached: 1 with the pruner, 0 without" in (tmp_path / "p.md").read_text()


def test_an_odd_number_of_sweeps_is_refused_in_one_line(tmp_path, capsys):
    assert bench.main(["pruning", str(tmp_path), str(tmp_path), str(tmp_path), "--target", "0.6"]) == 2
    assert "give sweep directories in pairs WITH WITHOUT (got 3" in capsys.readouterr().err


def test_a_target_that_is_not_a_number_is_refused(tmp_path, capsys):
    assert bench.main(["pruning", str(tmp_path), str(tmp_path), "--target", "0.8,high"]) == 2
    assert "'0.8,high' is not a number" in capsys.readouterr().err


def test_never_reaching_the_target_leaves_the_time_empty():
    table = trials_table([(0, "COMPLETE", 0.4, 100.0)])

    result = sweeps.time_to_target(table, target=0.6, metric="val.mapped_acc")

    assert math.isnan(result["trial_seconds_to_target"]) and math.isnan(result["trials_to_target"])


def test_pruning_needs_a_trials_table(tmp_path, capsys):
    assert bench.main(["pruning", str(tmp_path), str(tmp_path), "--target", "0.6"]) == 2
    assert "no trials.csv there" in capsys.readouterr().err


def recorded_sweep(folder, curves: dict[int, list[float]], epoch_seconds: float = 10.0, run_root=None):
    """An unpruned sweep on disk: trials.csv and each trial's history.csv (val.mapped_acc per epoch, cumulative
    seconds); a trial's own seconds add 2 s of final scoring to its last epoch."""
    rows = []
    for number, curve in curves.items():
        (folder / str(number)).mkdir(parents=True)
        pd.DataFrame({"epoch": range(1, len(curve) + 1), "val.mapped_acc": curve,
                      "seconds": [epoch_seconds * epoch for epoch in range(1, len(curve) + 1)]}
                     ).to_csv(folder / str(number) / "history.csv", index=False)
        rows.append({"number": number, "state": "COMPLETE", "val.mapped_acc": curve[-1],
                     "seconds": epoch_seconds * len(curve) + 2.0, "run_dir": str((run_root or folder) / str(number))})
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    return folder


# Trial 1 starts worst and ends best (the slow starter a pruner cuts); trial 3 falls behind only at the end.
CURVES = {0: [0.6, 0.8, 0.9], 1: [0.3, 0.6, 0.95], 2: [0.7, 0.9, 0.97], 3: [0.8, 0.88, 0.5]}
MEDIAN_PRUNER = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1, "n_warmup_steps": 0}


def test_a_replayed_pruner_stops_each_recorded_curve_where_it_would_have_stopped_the_trial(tmp_path):
    sweep = recorded_sweep(tmp_path, CURVES)
    table = pd.read_csv(sweep / "trials.csv")

    replayed = sweeps.replay_pruner(table, sweeps.trial_histories(sweep, table, "val.mapped_acc"), MEDIAN_PRUNER,
                                   "val.mapped_acc")

    # trial 1: 0.3 after epoch 1, below trial 0's 0.6; trial 2 stays at or above the median of the completed
    # trials; trial 3 is above it until its last epoch, after which the train loop does not ask the pruner
    assert replayed["state"].tolist() == ["COMPLETE", "PRUNED", "COMPLETE", "COMPLETE"]
    assert replayed["seconds"].tolist() == [32.0, 10.0, 32.0, 32.0]  # a pruned trial costs its history's seconds
    assert replayed["val.mapped_acc"].tolist() == [0.9, 0.3, 0.97, 0.5]  # pruned: the value it was cut at
    assert table["state"].eq("COMPLETE").all()  # the recorded table is left as it was


def test_replaying_pruners_compares_each_estimate_with_the_unpruned_sweep(tmp_path, capsys):
    # the sweep folder moved since it ran: run_dir names a place that is gone, the run folders sit beside trials.csv
    sweep = recorded_sweep(tmp_path / "sweep", CURVES, run_root=tmp_path / "gone")
    threshold = "{_target_: optuna.pruners.ThresholdPruner, lower: 0.6}"

    assert bench.main(["pruning", str(sweep), "--replay", str(MEDIAN_PRUNER), "--replay", threshold,
                       "--target", "0.95,0.97", "--out", str(tmp_path / "replay.csv")]) == 0

    table = pd.read_csv(tmp_path / "replay.csv").set_index(["pruner", "sweep", "target"])
    median = "MedianPruner(n_startup_trials=1, n_warmup_steps=0)"
    # unpruned: 0.95 in trial 1 (32 + 32 s), 0.97 in trial 2 (96 s); median pruner: trial 1 cut, so 0.95 first
    # in trial 2 (32 + 10 + 32 s)
    assert table.loc[(median, "without pruner", 0.95), "trial_seconds_to_target"] == 64.0
    assert table.loc[(median, "with pruner", 0.95), "trial_seconds_to_target"] == 74.0
    assert table.loc[(median, "with pruner", 0.97), "speedup_to_target"] == pytest.approx(96 / 74, rel=5e-3)  # 3 digits
    assert table.loc[(median, "with pruner", 0.97), "trial_seconds_total"] == 106.0
    # the threshold pruner cuts trial 1 (0.3 < 0.6 after epoch 1); trial 3 ends at 0.5, after its last epoch
    assert table.loc[("ThresholdPruner(lower=0.6)", "with pruner", 0.97), "pruned"] == 1
    assert table.loc[("ThresholdPruner(lower=0.6)", "with pruner", 0.97), "trial_seconds_total"] == 106.0
    markdown = (tmp_path / "replay.md").read_text()
    assert "replayed: each trial of the unpruned sweep" in markdown
    assert f"{median}, trial-seconds of all pairs: 106 with the pruner, 128 without" in markdown


def test_a_replay_needs_an_unpruned_sweep_with_its_histories_and_a_pruner_that_builds(tmp_path, capsys):
    sweep = recorded_sweep(tmp_path / "sweep", CURVES)
    replay = ["pruning", str(sweep), "--target", "0.9", "--replay"]

    assert bench.main([*replay, "{_target_: optuna.pruners.NoSuchPruner}"]) == 2
    assert "--replay='optuna.pruners.NoSuchPruner' is not allowed: null or an optuna.pruners class" in \
        capsys.readouterr().err
    assert bench.main([*replay, "{_target_: optuna.pruners.MedianPruner, warmup: 5}"]) == 2
    assert "unexpected keyword argument 'warmup'" in capsys.readouterr().err
    assert bench.main([*replay, "MedianPruner"]) == 2
    assert "'MedianPruner' is not a pruner: write it as in a sweep file" in capsys.readouterr().err

    (sweep / "2" / "history.csv").unlink()
    assert bench.main([*replay, str(MEDIAN_PRUNER)]) == 2
    assert "trial 2 has no history.csv" in capsys.readouterr().err

    table = pd.read_csv(sweep / "trials.csv")
    table.loc[1, "state"] = "PRUNED"
    table.to_csv(sweep / "trials.csv", index=False)
    assert bench.main([*replay, str(MEDIAN_PRUNER)]) == 2
    assert "1 trials were pruned; --replay and curves need a sweep run without a pruner" in capsys.readouterr().err



def test_curves_tell_from_which_epoch_the_trials_rank_as_they_will_end(tmp_path, capsys):
    sweep = recorded_sweep(tmp_path / "sweep", CURVES)

    assert bench.main(["curves", str(sweep), "--out", str(tmp_path / "curves.csv")]) == 0

    table = pd.read_csv(tmp_path / "curves.csv").set_index("epoch")
    # final values 0.9, 0.95, 0.97, 0.5: after epoch 1 (0.6, 0.3, 0.7, 0.8) the rank differences are 0, -2, -1, 3,
    # Spearman 1 - 6 * 14 / (4 * 15) = -0.4; after epoch 2 (0.8, 0.6, 0.9, 0.88) 0, -2, 0, 2: 0.2
    assert table["spearman_to_final"].tolist() == pytest.approx([-0.4, 0.2, 1.0])
    assert table["spearman_min"].tolist() == table["spearman_max"].tolist() == table["spearman_to_final"].tolist()
    # the best trial (2, 0.97) is second after epoch 1 (trial 3's 0.8 is ahead), first from epoch 2 on
    assert table["best_trial_rank"].tolist() == [2, 1, 1]
    assert table["best_in_top_third"].tolist() == [0, 1, 1]  # a third of 4 trials: the first
    assert "the ranking correlates at 0.8 or more from epoch 3 on" in (tmp_path / "curves.md").read_text()

    # two sweeps: each is ranked within itself (a pruner compares a trial with its own study's), then the median
    reversed_curves = {number: [1 - value for value in curve] for number, curve in CURVES.items()}
    other = recorded_sweep(tmp_path / "other", reversed_curves)
    assert bench.main(["curves", str(sweep), str(other), "--out", str(tmp_path / "two.csv")]) == 0
    two = pd.read_csv(tmp_path / "two.csv").set_index("epoch")
    assert two.loc[1, ["sweeps", "trials"]].tolist() == [2, 8]
    # reversing every value keeps each sweep's rank correlations (both ranks reverse)
    assert two["spearman_min"].tolist() == two["spearman_max"].tolist() == pytest.approx([-0.4, 0.2, 1.0])

    table = pd.read_csv(sweep / "trials.csv")
    table.loc[1, "state"] = "PRUNED"  # a pruned trial's curve stops early: its final value is unknown
    table.to_csv(sweep / "trials.csv", index=False)
    assert bench.main(["curves", str(sweep)]) == 2
    assert "1 trials were pruned" in capsys.readouterr().err

# ------------------------------------------------------------------------------ command line


@pytest.mark.parametrize("command", ["speed", "trials", "memory"])
def test_an_unwritable_out_is_refused_before_anything_is_measured(command, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "passwd"
    blocker.write_text("")
    never = lambda *args, **kwargs: pytest.fail("measured before checking --out")  # noqa: E731
    monkeypatch.setattr(speed.ModeRunner, "run", never)
    monkeypatch.setattr(trials, "run_trials_at_once", never)

    assert bench.main([command, "--device", "cpu", "--quick" if command != "memory" else "--subset=300",
                       "--out", str(blocker / "b.csv")]) == 2

    prog = "aesweep bench" if command == "speed" else f"aesweep bench {command}"
    assert capsys.readouterr().err == \
        f"{prog}: error: --out='{blocker}/b.csv': cannot write there (Not a directory: {blocker})\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]


@pytest.mark.parametrize("command", ["curves", "pruning"])
def test_tables_read_from_sweeps_refuse_an_unwritable_out_before_reading(command, tmp_path, capsys):
    sweep = recorded_sweep(tmp_path / "sweep", CURVES)
    blocker = tmp_path / "passwd"
    blocker.write_text("")
    extra = ["--replay", str(MEDIAN_PRUNER), "--target", "0.9"] if command == "pruning" else []

    assert bench.main([command, str(sweep), *extra, "--out", str(blocker / "t.csv")]) == 2

    assert capsys.readouterr() == ("", f"aesweep bench {command}: error: --out='{blocker}/t.csv': cannot write there "
                                       f"(Not a directory: {blocker})\n")


def test_an_unknown_model_names_the_option_and_the_config_files(capsys):
    assert bench.main(["--model", "nope", "--device", "cpu"]) == 2

    assert capsys.readouterr().err == "aesweep bench: error: --model='nope' is not allowed: one of: blog, conv, mlp\n"


def test_an_override_that_is_not_key_equals_value_is_refused_by_the_parser(capsys):
    assert bench.main(["trials", "--override", "nokey"]) == 2

    assert capsys.readouterr().err.startswith(
        "aesweep bench trials: error: argument --override: 'nokey' is not allowed: KEY=VALUE")


def test_an_unknown_group_option_in_an_override_is_one_line_listing_the_options(capsys):
    assert bench.main(["memory", "--device", "cpu", "--override", "optimizer=lion"]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aesweep bench memory: error: optimizer='lion' is not allowed: one of:")


def option_help(command: str) -> dict[str, str]:
    return {action.dest: action.help for action in bench_cli.build_parser()[command]._actions}


@pytest.mark.parametrize("command", ["trials", "memory"])
def test_trials_and_memory_help_says_nothing_about_speed_modes(command):
    text = bench_cli.build_parser()[command].format_help()

    assert "speed" not in text  # no "speed modes then set their own switches", no "per speed mode"
    assert option_help(command)["out"] == (f"where to write the table (.csv, with the .md beside it; default: "
                                           f"outputs/bench/<timestamp>/{command}.csv)")


def test_each_measuring_subcommand_says_what_its_timeout_bounds():
    assert option_help("speed")["timeout"] == "seconds allowed per speed mode (default 600)"
    assert option_help("trials")["timeout"] == "seconds allowed for all the trials at one concurrency (default 600)"
    assert option_help("memory")["timeout"] == "seconds allowed for the run (default 600)"


def test_quick_speed_help_promises_the_fast_modes_not_every_mode():
    parser = bench_cli.build_parser()["speed"]

    assert "every CPU speed mode" not in parser.format_help()
    assert option_help("speed")["quick"].startswith(
        "only the fast modes (not batch=512, nor a CPU's compile and channels_last+threads=1, nor a GPU's "
        "compile+amp and default+compile*)")
    # what the help promises is what Mode.quick leaves out
    for device_type, slow in (("cpu", {"batch=512", "compile", "channels_last+threads=1"}),
                              ("cuda", {"batch=512", "compile+amp", "default+compile", "default+compile-autotune"})):
        modes = speed.speed_modes(device_type, 128, 0.01, cpu_count=2, native_bf16=True)
        assert {m.name for m in modes if not m.quick} == slow


def test_curves_help_says_several_sweeps_are_ranked_each_within_itself():
    help_text = option_help("curves")["sweeps"]

    assert "pool" not in help_text
    assert "each ranked within itself, and the table gives the median (and range) over them" in help_text
