"""`aesweep bench`: how fast the project trains and how much search a sweep does per hour, each measured side
by side with its reference.

    aesweep bench --quick                          # the fast CPU speed modes (no compile) in under a minute on 2 cores
    aesweep bench --device cuda                    # the GPU modes: whole-step CUDA graph, compile, bf16, batches
    aesweep bench --model conv --override model.channels=[32,64,128] --batch-size 256
    aesweep bench trials --concurrency 1,4         # trials/hour: N train.py processes at once vs one at a time
    aesweep bench memory --device cpu              # peak resident memory of one real train.py run
    aesweep bench pruning WITH_DIR WITHOUT_DIR --target 0.8,0.9   # time to target val.mapped_acc, pruner on/off
    aesweep bench pruning WITHOUT_DIR --replay '{_target_: optuna.pruners.MedianPruner}' --target 0.9   # estimate
    aesweep bench curves WITHOUT_DIR [WITHOUT_DIR ...]   # from which epoch trials rank as they will end
    aesweep bench dispatch --trials 12 --pairs 3   # one sweep, runs started as slots free vs in batches
    aesweep bench overhead --trials 1000           # the sweeper's own cost per trial, from trials that do nothing

The command line: one parser per subcommand, and the defaults that depend on the device.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from aesweep.bench.common import DEVICES
from aesweep.bench.dispatch import dispatch
from aesweep.bench.overhead import overhead
from aesweep.bench.loops import serve_modes
from aesweep.bench.speed import speed
from aesweep.bench.sweeps import UNPRUNED_BEST, curves, pruning
from aesweep.bench.trials import memory, trials
from aesweep.config import CONF_DIR
from aesweep.arguments import OneLineParser, hydra_override, one_line_errors, positive_int
from aesweep.errors import ConfigError
from aesweep.trial import checked_pruner


def _targets(text: str) -> list[float | str]:
    parts = text.split(",")
    try:
        return [part if part == UNPRUNED_BEST else float(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or comma-separated numbers "
                                         f"(or {UNPRUNED_BEST})") from None


def _pruner(text: str) -> dict:
    """--replay: a pruner as the sweep files write one, in YAML flow style, built now so a typo fails here."""
    import yaml

    try:
        pruner_cfg = yaml.safe_load(text)
    except yaml.YAMLError:
        pruner_cfg = None
    if not isinstance(pruner_cfg, dict) or "_target_" not in pruner_cfg:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pruner: write it as in a sweep file, e.g. "
                                         "'{_target_: optuna.pruners.MedianPruner, n_warmup_steps: 5}'")
    checked_pruner(pruner_cfg, "--replay")
    return pruner_cfg


def _int_list(text: str) -> list[int]:
    return [positive_int(part) for part in text.split(",")]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# What --override, --out and --timeout mean for each subcommand that runs the project's training.
MODEL_OPTION_HELP = {
    "speed": {"override": "of the project config, repeatable (e.g. --override model.bottleneck=16); each speed "
                          "mode then sets its own switches on top",
              "out": ".csv, with the .md and the modes' stderr (.log) beside it; default: "
                     "outputs/bench/<timestamp>/bench.csv",
              "timeout": "seconds allowed per speed mode (default 600)"},
    "trials": {"override": "of every trial's config, repeatable (e.g. --override model.bottleneck=16)",
               "out": ".csv, with the .md beside it; default: outputs/bench/<timestamp>/trials.csv",
               "timeout": "seconds allowed for all the trials at one concurrency (default 600)"},
    "memory": {"override": "of the run's config, repeatable (e.g. --override model.bottleneck=16)",
               "out": ".csv, with the .md beside it; default: outputs/bench/<timestamp>/memory.csv",
               "timeout": "seconds allowed for the run (default 600)"},
}


def model_options() -> list[str]:
    """The model config group's options: conf/model/*.yaml."""
    return sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))


def _add_model_options(parser: argparse.ArgumentParser, command: str) -> None:
    helps = MODEL_OPTION_HELP[command]
    parser.add_argument("--model", default="blog",
                        help=f"model config group option: {' | '.join(model_options())} (default: blog)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", type=hydra_override,
                        help=f"any Hydra override {helps['override']}")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto (cuda if present) | cpu | cuda")
    parser.add_argument("--batch-size", type=positive_int, help="trainer.batch_size (default: the config's)")
    parser.add_argument("--out", metavar="CSV", help=f"where to write the table ({helps['out']})")
    parser.add_argument("--timeout", type=float, default=600, help=helps["timeout"])


def check_model(name: str) -> None:
    """--model names a file in conf/model/ (checked here, so the error names --model, not Hydra's search path)."""
    if name not in model_options():
        raise ConfigError("--model", name, "one of: " + ", ".join(model_options()))


def build_parser() -> dict[str, argparse.ArgumentParser]:
    speed_parser = OneLineParser(prog="aesweep bench", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                                 epilog="More: `aesweep bench trials|memory|pruning|curves --help`.")
    _add_model_options(speed_parser, "speed")
    speed_parser.add_argument("--modes", type=_names, metavar="NAME[,NAME...]",
                              help="only these modes (default: every mode for the device; --quick: the fast ones)")
    speed_parser.add_argument("--warmup", type=positive_int, help="untimed warm-up steps per mode (default 5)")
    speed_parser.add_argument("--steps", type=positive_int,
                              help="timed steps per repeat at the base batch size (default 50; larger batches "
                                   "time the same number of images)")
    speed_parser.add_argument("--repeats", type=positive_int, help="timed repeats per mode; the median counts "
                                                                   "(default 3)")
    speed_parser.add_argument("--quick", action="store_true",
                              help="only the fast modes (not batch=512, nor a CPU's compile and "
                                   "channels_last+threads=1, nor a GPU's compile+amp and default+compile*), "
                                   "5 warm-up + 10 timed steps, 1 repeat: under a minute on 2 CPU cores")

    trials_parser = OneLineParser(prog="aesweep bench trials",
                                  description="Trials per hour: the same small trial (a real `python train.py`) "
                                              "run one at a time and several at once on one device.")
    _add_model_options(trials_parser, "trials")
    trials_parser.add_argument("--concurrency", type=_int_list, metavar="N[,N...]",
                               help="trials running at once; the first is the reference (default: 1,4 on a GPU, "
                                    "1,<cores> on a CPU)")
    trials_parser.add_argument("--trials", type=positive_int,
                               help="trials per concurrency setting (default: 2 x the largest concurrency)")
    trials_parser.add_argument("--subset", type=positive_int, help="data.subset of one trial (default 5000)")
    trials_parser.add_argument("--epochs", type=positive_int, help="trainer.epochs of one trial (default 2)")
    trials_parser.add_argument("--quick", action="store_true",
                               help="a tiny trial (512 images, 1 epoch), as many trials as the largest concurrency")

    memory_parser = OneLineParser(prog="aesweep bench memory",
                                  description="Peak resident memory of one real `python train.py` run, against a limit.")
    _add_model_options(memory_parser, "memory")
    memory_parser.add_argument("--epochs", type=positive_int, default=1, help="trainer.epochs (default 1)")
    memory_parser.add_argument("--subset", type=positive_int, help="data.subset (default: all 55000 images)")
    memory_parser.add_argument("--limit-mb", type=float, default=1536, help="the target (default 1536 = 1.5 GiB)")

    pruning_parser = OneLineParser(prog="aesweep bench pruning",
                                   description="Time to a target metric: the same sweep with and without the pruner.")
    pruning_parser.add_argument("sweeps", nargs="+", metavar="WITH WITHOUT",
                                help="sweep directories (or their trials.csv) in pairs: the sweep with its pruner, "
                                     "then the same sweep run with hydra.sweeper.pruner=null; more pairs (e.g. "
                                     "other sampler seeds) add rows and a median. With --replay: unpruned sweeps only")
    pruning_parser.add_argument("--replay", type=_pruner, action="append", metavar="PRUNER",
                                help="estimate instead of measure: what this pruner (YAML as in a sweep file, e.g. "
                                     "'{_target_: optuna.pruners.SuccessiveHalvingPruner, min_resource: 3}') would "
                                     "have cut from each unpruned sweep, from its trials' recorded learning curves; "
                                     "repeat to compare pruners in one table")
    pruning_parser.add_argument("--target", type=_targets, required=True,
                                help="the metric value(s) to reach, comma-separated (e.g. 0.8,0.9); "
                                     f"{UNPRUNED_BEST}: the best value the pair's unpruned sweep found")
    pruning_parser.add_argument("--metric", default="val.mapped_acc", help="trials.csv column (default val.mapped_acc)")
    pruning_parser.add_argument("--out", metavar="CSV", help="also write the table there (.csv and .md)")
    curves_parser = OneLineParser(prog="aesweep bench curves",
                                  description="From which epoch on do the trials rank as they will end? Read from "
                                              "unpruned sweeps' learning curves: where a pruner's first rung can go.")
    curves_parser.add_argument("sweeps", nargs="+", metavar="WITHOUT",
                               help="unpruned sweep directories (or their trials.csv) whose run directories hold "
                                    "each trial's history.csv; several (e.g. sampler seeds) are each ranked "
                                    "within itself, and the table gives the median (and range) over them")
    curves_parser.add_argument("--metric", default="val.mapped_acc", help="history.csv column (default val.mapped_acc)")
    curves_parser.add_argument("--out", metavar="CSV", help="also write the table there (.csv and .md)")
    dispatch_parser = OneLineParser(prog="aesweep bench dispatch",
                                    description="One real sweep run with runs started the moment a slot frees "
                                                "(hydra.sweeper.dispatch=async) and in batches (batch), side by side: "
                                                "trials per hour, slot utilisation, best value at equal wall time.")
    dispatch_parser.add_argument("--sweep", default="default", help="the sweep file (default: default)")
    dispatch_parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", type=hydra_override,
                                 help="any override of the sweep, repeatable (e.g. --override data.subset=2000)")
    dispatch_parser.add_argument("--trials", type=positive_int, default=12, help="trials per sweep (default 12)")
    dispatch_parser.add_argument("--slots", type=positive_int, default=os.cpu_count() or 1,
                                 help="runs at once, one torch thread each (default: the CPU cores)")
    dispatch_parser.add_argument("--pairs", type=positive_int, default=3, help="async/batch pairs (default 3)")
    dispatch_parser.add_argument("--sampler-seed", type=int, default=0, help="the sampler seed of every sweep")
    dispatch_parser.add_argument("--out", metavar="CSV", help="where to write the table; default: "
                                                              "outputs/bench/<timestamp>/dispatch.csv")
    dispatch_parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per sweep")
    overhead_parser = OneLineParser(prog="aesweep bench overhead",
                                    description="The sweeper's own cost per trial (claim, sample, launch, record, "
                                                "tables), from a sweep of trials whose task returns at once.")
    overhead_parser.add_argument("--trials", type=positive_int, default=1000, help="trials (default 1000)")
    overhead_parser.add_argument("--trial-seconds", type=float, default=60.0,
                                 help="a real trial's seconds, to state the overhead as a fraction of (default 60)")
    overhead_parser.add_argument("--out", metavar="CSV", help="default: outputs/bench/<timestamp>/overhead.csv")
    overhead_parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed for the sweep")
    return {"speed": speed_parser, "trials": trials_parser, "memory": memory_parser, "pruning": pruning_parser,
            "curves": curves_parser, "dispatch": dispatch_parser, "overhead": overhead_parser}


def _fill_defaults(args: argparse.Namespace, command: str) -> None:
    if command == "speed":
        defaults = {"warmup": 5, "steps": 10, "repeats": 1} if args.quick else {"warmup": 5, "steps": 50, "repeats": 3}
        for key, value in defaults.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    elif command == "trials":
        if args.concurrency is None:
            on_gpu = args.device == "cuda" or (args.device == "auto" and _has_cuda())
            args.concurrency = [1, 4] if on_gpu else sorted({1, os.cpu_count() or 1})
        args.subset = args.subset or (512 if args.quick else 5000)
        args.epochs = args.epochs or (1 if args.quick else 2)
        args.trials = args.trials or (max(args.concurrency) if args.quick else 2 * max(args.concurrency))


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


COMMANDS = {"speed": speed, "trials": trials, "memory": memory, "pruning": pruning, "curves": curves,
            "dispatch": dispatch, "overhead": overhead}


def main(argv: Sequence[str] | None = None) -> int:
    """`aesweep bench [speed] ...`, `aesweep bench trials|memory|pruning|curves ...`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["_serve"]:
        return serve_modes()
    command = argv[0] if argv[:1] and argv[0] in COMMANDS else "speed"
    parser = build_parser()[command]

    def run() -> int:
        args = parser.parse_args(argv[1:] if argv[:1] == [command] else argv)
        if command in MODEL_OPTION_HELP:
            check_model(args.model)
        _fill_defaults(args, command)
        return COMMANDS[command](args)

    return one_line_errors(parser.prog, run)

