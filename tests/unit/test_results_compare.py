"""`aesweep compare`: a leaderboard across a runs.csv and a trials.csv, checked against hand-computed numbers."""

import io
import math

import pandas as pd
import pytest

from aesweep.cli import main

# Baseline: one configuration run with seeds 0, 1, 2 (plus a failed seed 3, left out).
BASE_VAL = [0.50, 0.54, 0.52]
BASE_MEAN = (0.50 + 0.54 + 0.52) / 3  # 0.52
BASE_STD = math.sqrt(((0.50 - 0.52) ** 2 + (0.54 - 0.52) ** 2 + (0.52 - 0.52) ** 2) / (3 - 1))  # 0.02
# Sweep "wide": bottleneck 32 with seeds 0 and 1, bottleneck 64 with seed 0 (its seed 1 was pruned).
WIDE32_MEAN = (0.80 + 0.84) / 2
WIDE32_STD = math.sqrt(((0.80 - 0.82) ** 2 + (0.84 - 0.82) ** 2) / (2 - 1))


@pytest.fixture
def tables(tmp_path):
    runs_csv = tmp_path / "a" / "runs.csv"
    runs_csv.parent.mkdir()
    pd.DataFrame({
        "run_dir": [f"outputs/sweeps/baseline/t/{i}" for i in range(4)],
        "sweep": ["baseline"] * 4,
        "seed": [0, 1, 2, 3],
        "state": ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"],
        "status": ["completed", "completed", "completed", "diverged"],
        "model.bottleneck": [10] * 4,
        "optimizer": ["SGD"] * 4,
        "val.mapped_acc": BASE_VAL + [float("nan")],
        "test.mapped_acc": [0.49, 0.55, 0.51, float("nan")],
    }).to_csv(runs_csv, index=False)
    trials_csv = tmp_path / "outputs" / "sweeps" / "wide" / "2026-01-03_08-00-00" / "trials.csv"
    trials_csv.parent.mkdir(parents=True)
    pd.DataFrame({
        "number": [0, 1, 2, 3],
        "state": ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"],
        "val.mapped_acc": [0.80, 0.84, 0.90, 0.40],
        "model.bottleneck": [32, 32, 64, 64],
        "seed": [0, 1, 0, 1],
        "test.mapped_acc": [0.79, 0.85, 0.88, float("nan")],
        "run_dir": [f"outputs/sweeps/wide/2026-01-03_08-00-00/{i}" for i in range(4)],
        "study_name": ["wide"] * 4,
    }).to_csv(trials_csv, index=False)
    return runs_csv, trials_csv


def run_compare(capsys, *args):
    status = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def leaderboard(capsys, *args):
    status, out, err = run_compare(capsys, *args, "--format", "csv")
    assert status == 0, err
    return pd.read_csv(io.StringIO(out)), err


def test_compare_ranks_configurations_with_mean_std_over_seeds_and_gain_over_baseline(tables, capsys):
    table, _ = leaderboard(capsys, *tables)

    assert table["model.bottleneck"].tolist() == [64, 32, 10]
    assert table["runs"].tolist() == [1, 2, 3]
    assert table["seeds"].tolist() == ["0", "0,1", "0,1,2"]
    assert table["sweep"].tolist() == ["wide", "wide", "baseline"]
    assert table["mean val.mapped_acc"].tolist() == pytest.approx([0.90, WIDE32_MEAN, BASE_MEAN])
    assert math.isnan(table["std val.mapped_acc"][0])  # one run: no sample std
    assert table["std val.mapped_acc"][1:].tolist() == pytest.approx([WIDE32_STD, BASE_STD])
    assert table["best val.mapped_acc"].tolist() == [0.90, 0.84, 0.54]
    assert table["test.mapped_acc of best"].tolist() == [0.88, 0.85, 0.55]
    assert table["mean test.mapped_acc"].tolist() == pytest.approx([0.88, (0.79 + 0.85) / 2, (0.49 + 0.55 + 0.51) / 3])
    assert table["gain pts"].tolist() == pytest.approx([(0.90 - BASE_MEAN) * 100, (WIDE32_MEAN - BASE_MEAN) * 100, 0])
    assert table["gain ratio"].tolist() == pytest.approx([0.90 / BASE_MEAN, WIDE32_MEAN / BASE_MEAN, 1.0])
    assert table["best run_dir"][0] == "outputs/sweeps/wide/2026-01-03_08-00-00/2"


def test_compare_notes_say_ddof_left_out_runs_and_baseline(tables, capsys):
    _, err = leaderboard(capsys, *tables)

    assert "std with ddof=1" in err
    assert "2 pruned, failed or diverged runs left out" in err
    assert "baseline's mean 0.5200 (sweep 'baseline', 3 runs)" in err


def test_compare_by_groups_runs_by_a_parameter(tables, capsys):
    table, _ = leaderboard(capsys, *tables, "--by", "model.bottleneck")

    assert table["model.bottleneck"].tolist() == [64, 32, 10]
    assert table["runs"].tolist() == [1, 2, 3]
    assert table["configs"].tolist() == [1, 1, 1]
    assert table["mean val.mapped_acc"].tolist() == pytest.approx([0.90, WIDE32_MEAN, BASE_MEAN])
    assert table["best val.mapped_acc"].tolist() == [0.90, 0.84, 0.54]


def test_compare_by_seed_pools_configurations(tables, capsys):
    table, _ = leaderboard(capsys, *tables, "--by", "seed", "--sort", "seed:asc")

    assert table["seed"].tolist() == [0, 1, 2]
    assert table["runs"].tolist() == [3, 2, 1]
    assert table["configs"].tolist() == [3, 2, 1]
    assert table["mean val.mapped_acc"][0] == pytest.approx((0.50 + 0.80 + 0.90) / 3)


def test_compare_where_filters_runs_but_keeps_the_baseline(tables, capsys):
    table, _ = leaderboard(capsys, *tables, "--where", "model.bottleneck >= 32 and seed == 0")

    assert table["model.bottleneck"].tolist() == [64, 32]
    assert table["mean val.mapped_acc"].tolist() == pytest.approx([0.90, 0.80])
    assert table["gain pts"].tolist() == pytest.approx([(0.90 - BASE_MEAN) * 100, (0.80 - BASE_MEAN) * 100])


def test_compare_sort_and_top(tables, capsys):
    table, _ = leaderboard(capsys, *tables, "--sort", "runs", "--top", "1")

    assert table["model.bottleneck"].tolist() == [10]


def test_compare_format_md_is_a_markdown_table_with_notes(tables, capsys):
    status, out, _ = run_compare(capsys, *tables, "--format", "md")

    lines = out.splitlines()
    assert status == 0
    assert lines[0] == ("| model.bottleneck | optimizer | sweep | runs | seeds | mean val.mapped_acc | std val.mapped_acc"
                        " | best val.mapped_acc | test.mapped_acc of best | mean test.mapped_acc | gain pts | gain ratio"
                        " | best run_dir |")
    assert set(lines[1]) <= set("|-:")
    assert lines[2].startswith("| 64 |  | wide | 1 | 0 | 0.9000 |  | 0.9000 | 0.8800 | 0.8800 | +38.00 | 1.731 |")
    assert lines[4].startswith("| 10 | SGD | baseline | 3 | 0,1,2 | 0.5200 | 0.0200 | 0.5400 | 0.5500 | 0.5167 | +0.00 |")
    assert lines[5] == ""
    assert lines[6].startswith("_one row per configuration") and "ddof=1" in lines[6]


def test_compare_format_table_is_aligned_text(tables, capsys):
    status, out, _ = run_compare(capsys, *tables)

    assert status == 0
    header, first = out.splitlines()[:2]
    assert header.split()[:5] == ["model.bottleneck", "optimizer", "sweep", "runs", "seeds"]
    assert first.split()[:5] == ["64", "wide", "1", "0", "0.9000"]  # no optimizer in the trials.csv: blank


def test_compare_baseline_can_be_another_table(tables, capsys):
    runs_csv, trials_csv = tables
    table, err = leaderboard(capsys, trials_csv, "--baseline", runs_csv)

    assert table["gain pts"].tolist() == pytest.approx([(0.90 - BASE_MEAN) * 100, (WIDE32_MEAN - BASE_MEAN) * 100])
    assert f"('{runs_csv}', 3 runs)" in err


def test_compare_without_a_baseline_sweep_has_no_gain_columns(tables, capsys):
    table, err = leaderboard(capsys, tables[1])

    assert "gain pts" not in table.columns
    assert "no sweep named 'baseline' among the inputs" in err


@pytest.mark.parametrize("args, expected", [
    (["--where", "model.bottlenek > 3"], ["--where 'model.bottlenek > 3'", "model.bottleneck"]),
    (["--where", "model.bottleneck >"], ["--where 'model.bottleneck >'", "columns: "]),
    (["--by", "model.bottlenek"], ["--by='model.bottlenek'", "model.bottleneck"]),
    (["--sort", "speed"], ["--sort='speed'", "mean val.mapped_acc"]),
    (["--format", "xml"], ["invalid choice: 'xml'", "'table', 'md', 'csv'"]),
    (["--baseline", "nosuch"], ["--baseline='nosuch'", "baseline, wide"]),
    (["--metric", "val.speed"], ["--metric='val.speed'", "val.mapped_acc"]),
    (["--top", "0"], ["--top: '0' is not allowed: a positive whole number"]),
])
def test_compare_user_mistakes_are_one_line_errors_with_status_2(tables, capsys, args, expected):
    status, out, err = run_compare(capsys, *tables, *args)

    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("aesweep compare: error: ")
    for text in expected:
        assert text in err


def test_compare_missing_input_is_an_error(tmp_path, capsys):
    status, _, err = run_compare(capsys, tmp_path / "nope.csv")

    assert status == 2
    assert f"no such file or directory: '{tmp_path / 'nope.csv'}'" in err


def test_compare_counts_a_run_given_twice_once(tables, capsys):
    runs_csv, _ = tables
    table, err = leaderboard(capsys, runs_csv, runs_csv)

    assert table["runs"].tolist() == [3]
    assert "4 runs appear in more than one input (same run_dir): counted once" in err


def test_a_configuration_run_twice_with_the_same_seed_is_noted_as_reruns(tables, capsys):
    runs_csv, trials_csv = tables
    _, err = leaderboard(capsys, *tables)
    assert "ran a seed more than once" not in err
    runs = pd.read_csv(runs_csv)
    rerun = runs.iloc[[0]].assign(run_dir="outputs/sweeps/baseline/u/0", **{"val.mapped_acc": 0.51})
    pd.concat([runs, rerun]).to_csv(runs_csv, index=False)

    table, err = leaderboard(capsys, runs_csv, trials_csv)

    assert table.loc[table["model.bottleneck"] == 10, ["runs", "seeds"]].values.tolist() == [[4, "0,1,2"]]
    assert ("1 configuration ran a seed more than once (runs > seeds): their std is partly rerun noise, not only "
            "the spread over seeds") in err


def test_the_baseline_is_the_study_named_baseline_when_several_studies_ran_that_sweep(tables, capsys):
    runs_csv, trials_csv = tables
    runs = pd.read_csv(runs_csv).assign(study_name="baseline")
    longer = runs.iloc[:3].assign(run_dir=lambda frame: frame["run_dir"] + "-e3", study_name="baseline-e3",
                                  **{"val.mapped_acc": [0.70, 0.72, 0.74]})
    pd.concat([runs, longer]).to_csv(runs_csv, index=False)

    _, err = leaderboard(capsys, runs_csv, trials_csv)

    assert "baseline's mean 0.5200 (sweep 'baseline', study 'baseline', 3 runs)" in err
    assert ("2 studies ran sweep 'baseline' (baseline, baseline-e3): the baseline is study 'baseline'; "
            "--baseline PATH picks one") in err


def seeded_trials(folder, bottlenecks=(32, 32, 64)):
    """A trials.csv as a sweep over seeds 0 and 1 writes it: the value (the worst seed's), each seed's value and
    their sd, the searched parameter, the mean metrics, and how long its runs held a slot (busy_seconds,
    runs_started, runs_ended). By default trials 0 and 1 sampled the same bottleneck."""
    trials_csv = folder / "trials.csv"
    trials_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "number": [0, 1, 2],
        "state": ["COMPLETE"] * 3,
        "value": [0.80, 0.82, 0.70],
        "value.seed0": [0.80, 0.86, 0.70],
        "value.seed1": [0.84, 0.82, 0.74],
        "value.std": [0.028, 0.028, 0.028],
        "model.bottleneck": list(bottlenecks),
        "val.mapped_acc": [0.82, 0.84, 0.72],
        "test.mapped_acc": [0.81, 0.85, 0.71],
        "run_dir": [str(folder / str(n)) for n in range(3)],
        "busy_seconds": [300.5, 310.25, 290.0],
        "runs_ended": [1796447576.9, 1796447999.1, 1796448356.8],
        "runs_started": [1796447366.2, 1796447786.0, 1796448117.0],
        "datetime_start": ["2026-12-05 05:09:25", "2026-12-05 05:12:25", "2026-12-05 05:15:25"],
        "study_name": ["seeded"] * 3,
    }).to_csv(trials_csv, index=False)
    return trials_csv


def test_the_columns_a_sweep_over_seeds_writes_beside_its_parameters_do_not_split_configurations(tmp_path, capsys):
    trials_csv = seeded_trials(tmp_path / "outputs" / "sweeps" / "seeded" / "2026-12-05_05-06-08")

    table, _ = leaderboard(capsys, trials_csv)

    assert table["model.bottleneck"].tolist() == [32, 64]
    assert table["runs"].tolist() == [2, 1]
    assert table["mean val.mapped_acc"].tolist() == pytest.approx([0.83, 0.72])
    assert not {"value.seed0", "value.seed1", "value.std", "busy_seconds", "runs_started", "runs_ended"} & set(
        table.columns)


def test_search_rows_without_a_seed_beside_confirmation_runs_are_not_noted_as_reruns(tmp_path, capsys):
    trials_csv = seeded_trials(tmp_path / "outputs" / "sweeps" / "seeded" / "2026-12-05_05-06-08", (16, 32, 64))
    pd.DataFrame({
        "trial": [1, 1], "seed": [10, 11], "state": ["COMPLETE"] * 2, "reason": [None, None],
        "run_dir": [str(trials_csv.parent / "confirm" / "1" / f"seed{s}") for s in (10, 11)],
        "val.mapped_acc": [0.83, 0.85], "test.mapped_acc": [0.82, 0.86],
    }).to_csv(trials_csv.parent / "confirm.csv", index=False)

    table, err = leaderboard(capsys, trials_csv)

    assert table["model.bottleneck"].tolist() == [32, 16, 64]
    assert table["confirmed test.mapped_acc"].tolist()[0] == pytest.approx(0.84)
    assert table["confirmed runs"].tolist() == [2, 0, 0]
    assert "ran a seed more than once" not in err
