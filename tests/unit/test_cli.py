"""The `aesweep` command line: subcommands, delegation to aesweep.data / aesweep.bench, one-line usage errors."""

import argparse
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import aesweep
from aesweep.arguments import hydra_override
from aesweep.cli import main


def test_python_dash_m_aesweep_lists_the_subcommands():
    env = {"PYTHONPATH": str(Path(aesweep.__file__).parents[1]), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "aesweep", "--help"], capture_output=True, text=True, env=env,
                          timeout=60)

    assert done.returncode == 0
    assert "{collect,compare,plot,data,bench}" in done.stdout or all(
        name in done.stdout for name in ("collect", "compare", "plot", "data", "bench"))


def test_help_returns_zero(capsys):
    assert main(["compare", "--help"]) == 0
    assert "--where EXPR" in capsys.readouterr().out


def test_data_hands_every_remaining_argument_to_aesweep_data_main(monkeypatch):
    received = []
    monkeypatch.setitem(sys.modules, "aesweep.data",
                        types.SimpleNamespace(main=lambda argv: received.append(argv) or 3))

    assert main(["data", "verify", "--root", "x", "--help"]) == 3
    assert received == [["verify", "--root", "x", "--help"]]


def test_bench_returning_none_means_success(monkeypatch):
    monkeypatch.setitem(sys.modules, "aesweep.bench", types.SimpleNamespace(main=lambda argv: None))

    assert main(["bench"]) == 0


def test_delegated_command_whose_module_is_missing_is_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "aesweep.bench", None)  # makes the import fail as if the file were absent

    assert main(["bench", "--quick"]) == 2
    assert capsys.readouterr().err == (
        "aesweep bench: error: not available in this installation (aesweep.bench is missing)\n")


@pytest.mark.parametrize("argv, expected", [
    ([], "aesweep: error: the following arguments are required: COMMAND"),
    (["colect"], "aesweep: error: argument COMMAND: invalid choice: 'colect'"),
    (["compare"], "aesweep compare: error: the following arguments are required: CSV_OR_DIR"),
    (["compare", "x.csv", "--top", "many"], "aesweep compare: error: argument --top: 'many' is not allowed"),
    (["plot"], "aesweep plot: error: the following arguments are required: SWEEP_DIR"),
])
def test_usage_mistakes_print_one_line_and_return_2(capsys, argv, expected):
    assert main(argv) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(expected)


def test_collect_refuses_an_unwritable_out_before_reading_any_run(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "passwd"
    blocker.write_text("")
    monkeypatch.setattr("aesweep.results.collect.collect_runs", lambda *a, **k: pytest.fail("collected before checking --out"))

    assert main(["collect", str(tmp_path), "--out", str(blocker / "x.csv")]) == 2

    assert capsys.readouterr().err == (
        f"aesweep collect: error: --out='{blocker}/x.csv': cannot write there (Not a directory: {blocker})\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]


def test_collect_whose_table_cannot_be_written_is_one_line_naming_the_place(tmp_path, monkeypatch, capsys):
    import pandas as pd

    (tmp_path / "runs.csv").mkdir()  # the default --out, DIR/runs.csv, is taken by a folder
    monkeypatch.setattr("aesweep.results.collect.collect_runs", lambda *a, **k: pd.DataFrame({"seed": [0]}))

    assert main(["collect", str(tmp_path)]) == 2

    assert capsys.readouterr().err == (
        f"aesweep collect: error: --out='{tmp_path}/runs.csv': cannot write there (Is a directory)\n")
    assert list((tmp_path / "runs.csv").iterdir()) == []


@pytest.mark.parametrize("text", ["nokey", "=16", "+=1"])
def test_an_override_needs_key_equals_value(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{re.escape(repr(text))} is not allowed: KEY=VALUE"):
        hydra_override(text)


@pytest.mark.parametrize("text", ["model.bottleneck=16", "+model.extra=1", "~model.hidden", "data.subset=null"])
def test_overrides_in_hydras_forms_pass_unchanged(text):
    assert hydra_override(text) == text
