"""The ``aesweep`` console command: ``collect``, ``compare`` and ``plot`` results, ``dashboard`` serves a study;
``data`` and ``bench`` delegate.

User mistakes (a missing directory, a bad ``--where`` expression, an unknown column) print one line
``aesweep <command>: error: ...`` to stderr and return 2, with nothing written.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from aesweep import dashboard, record
from aesweep.arguments import OneLineParser, one_line_errors, positive_int

DEFAULT_OUTPUTS = "outputs"
FORMATS = ("table", "md", "csv")
# Subcommands implemented by other modules: everything after the name is handed to ``aesweep.<name>.main``.
DELEGATED = {
    "data": "prepare and verify MNIST and Fashion-MNIST (aesweep.data; see `aesweep data --help`)",
    "bench": "benchmarks (aesweep.bench; see `aesweep bench --help`)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="aesweep",
        description="Tables and plots for aesweep runs and sweeps (Hydra output directories).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    commands.required = True

    collect = commands.add_parser(
        "collect",
        help="gather every run under DIR into one CSV (one row per run)",
        description="Walk Hydra run and sweep directories and write one row per finished run: flattened "
        "config, every metric, sweep name, trial number, state, seconds. Crashed or half-written runs "
        "are skipped with one warning line each.",
    )
    collect.add_argument("dirs", nargs="*", metavar="DIR", default=[DEFAULT_OUTPUTS],
                         help=f"run, sweep or outputs directories (default: {DEFAULT_OUTPUTS}/)")
    collect.add_argument("--out", metavar="CSV",
                         help="where to write the table (default: DIR/runs.csv for one DIR, "
                              f"{DEFAULT_OUTPUTS}/runs.csv for several)")

    compare = commands.add_parser(
        "compare",
        help="leaderboard of configurations across runs.csv/trials.csv files or directories",
        description="Leaderboard across any number of runs.csv / trials.csv files or run/sweep "
        "directories. Runs whose configs differ only by `seed` form one configuration: mean and "
        "sample std (ddof=1) over its runs, its best run and that run's test metrics, and the gain of "
        "the mean over the baseline's mean in points and as a ratio.",
    )
    compare.add_argument("sources", nargs="+", metavar="CSV_OR_DIR",
                         help="runs.csv or trials.csv files, or directories to collect")
    compare.add_argument("--by", metavar="KEY[,KEY...]",
                         help="group runs by these columns instead of by configuration, "
                              "e.g. model.bottleneck or optimizer")
    compare.add_argument("--where", metavar="EXPR",
                         help="keep only runs matching this pandas query over the run columns, e.g. "
                              "\"model.bottleneck >= 16 and optimizer == 'Adam'\" "
                              "(dotted names need no backticks; the baseline is taken before filtering)")
    compare.add_argument("--sort", metavar="COL[:asc]",
                         help="sort by this output column, largest first unless ':asc' "
                              f"(default: mean {record.DEFAULT_OBJECTIVE})")
    compare.add_argument("--top", type=positive_int, metavar="N", help="show only the first N rows")
    compare.add_argument("--format", choices=FORMATS, default="table",
                         help="table (terminal), md (markdown, for a README) or csv (default: table)")
    compare.add_argument("--baseline", metavar="NAME_OR_PATH", default=None,
                         help="sweep name, or a runs.csv/trials.csv/directory, whose mean is the "
                              "baseline (default: the sweep named 'baseline', if present)")
    compare.add_argument("--metric", default=record.DEFAULT_OBJECTIVE, metavar="COL",
                         help=f"metric to rank by (default: {record.DEFAULT_OBJECTIVE}); metrics named *mse* or "
                              "*loss* rank lowest first")

    plot = commands.add_parser(
        "plot",
        help="PNGs for one sweep: history, metric vs each numeric parameter, importances, best confusion",
        description="Write PNGs beside the sweep's trials.csv: optimization history, the objective "
        "against each numeric parameter, parameter importances (optuna.importance, from the study "
        "named in study.yaml) and the best run's test confusion matrix.",
    )
    plot.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a sweep directory (holds trials.csv)")

    dashboard.add_arguments(commands.add_parser(
        "dashboard",
        help="optuna-dashboard on a sweep's study or a storage, with each trial's pictures",
        description="Serve optuna-dashboard on the study a sweep folder names (study.yaml) or on a storage, "
        "with the trials' uploaded files (confusion matrix, reconstructions, metrics.json, history.csv), "
        "and print its URL. Needs the dashboard extra: pip install -e '.[dashboard]'.",
    ))

    for name, help_text in DELEGATED.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aesweep`` command line; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in DELEGATED:
        return _delegate(args_list[0], args_list[1:])
    parser = build_parser()

    def command() -> int:
        args = parser.parse_args(args_list)
        prog = f"aesweep {args.command}"
        return one_line_errors(prog, lambda: _COMMANDS[args.command](args, prog))

    return one_line_errors("aesweep", command)


def _delegate(name: str, argv: list[str]) -> int:
    module_name = f"aesweep.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        print(f"aesweep {name}: error: not available in this installation ({module_name} is missing)",
              file=sys.stderr)
        return 2
    status = module.main(argv)
    return 0 if status is None else int(status)


def _warner(prog: str):
    return lambda message: print(f"{prog}: warning: {message}", file=sys.stderr)


def _note(prog: str):
    return lambda message: print(f"{prog}: {message}", file=sys.stderr)


def _run_collect(args: argparse.Namespace, prog: str) -> int:
    from aesweep.io import check_writable, writing_to
    from aesweep.results import collect as results

    dirs = [Path(d) for d in args.dirs]
    if args.out:
        out = Path(args.out)
        check_writable(out)  # before walking the directories, not after
    elif len(dirs) == 1:
        out = dirs[0] / "runs.csv"
    else:
        out = Path(DEFAULT_OUTPUTS) / "runs.csv"
    runs = results.collect_runs(dirs, warn=_warner(prog))
    with writing_to(out):
        results.write_runs_csv(runs, out)
    print(f"{len(runs)} runs ({results.describe_runs(runs)}) -> {out}")
    return 0


def _run_compare(args: argparse.Namespace, prog: str) -> int:
    from aesweep.results import compare as results

    text = results.compare(
        [Path(s) for s in args.sources],
        by=args.by, where=args.where, sort=args.sort, top=args.top, fmt=args.format,
        baseline=args.baseline, metric=args.metric, warn=_warner(prog), note=_note(prog),
    )
    sys.stdout.write(text)
    return 0


def _run_plot(args: argparse.Namespace, prog: str) -> int:
    from aesweep.results import plot as results

    written = results.plot_sweep(Path(args.sweep_dir), note=_note(prog), warn=_warner(prog))
    for path in written:
        print(path)
    return 0


_COMMANDS = {"collect": _run_collect, "compare": _run_compare, "plot": _run_plot, "dashboard": dashboard.run}
