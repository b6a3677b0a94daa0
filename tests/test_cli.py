"""The `aesweep` command line: subcommands, delegation to aesweep.data / aesweep.bench, one-line usage errors."""

import subprocess
import sys
import types
from pathlib import Path

import pytest

import aesweep
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
