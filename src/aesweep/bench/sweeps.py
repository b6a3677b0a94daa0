"""`aesweep bench pruning` and `aesweep bench curves`: tables read from finished sweeps - the same sweep with
and without its pruner, pruners replayed on an unpruned sweep's learning curves, and from which epoch
those curves rank the trials as they will end."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from aesweep.bench.common import BenchError, rounded, show_table
from aesweep.io import check_writable
from aesweep.trial import pruner_from_config

def read_trials(source: Path) -> pd.DataFrame:
    path = source / "trials.csv" if source.is_dir() else source
    if not path.is_file():
        raise BenchError(f"{source}: no trials.csv there; give a sweep directory or its trials.csv")
    return pd.read_csv(path)


def read_sweeps(sources: Sequence[str], metric: str) -> dict[str, pd.DataFrame]:
    """Each sweep's trials.csv by the name it was given, checked for the columns the comparisons read."""
    tables = {source: read_trials(Path(source)) for source in sources}
    for table in tables.values():
        require_columns(table, metric)
    return tables


def time_to_target(trials_table: pd.DataFrame, target: float, metric: str) -> dict:
    """Trial-seconds spent (in trial-number order) until the first COMPLETE trial reached `target`.

    Trial-seconds are the sum of each trial's own `seconds`: the wall time of a sweep that runs one
    trial at a time, the device time of one that runs several at once. (Columns: see `require_columns`.)
    """
    table, spent = in_trial_order(trials_table)
    complete = table["state"] == "COMPLETE"
    reached = complete & (table[metric] >= target)
    first = reached.idxmax() if reached.any() else None
    return {
        "trials": len(table), "complete": int(complete.sum()), "pruned": int((table["state"] == "PRUNED").sum()),
        f"best {metric}": table.loc[complete, metric].max(), "trial_seconds_total": float(spent.iloc[-1]),
        "trial_seconds_to_target": float(spent.loc[first]) if first is not None else math.nan,
        "trials_to_target": int(table.index.get_loc(first)) + 1 if first is not None else math.nan,
    }


def require_columns(trials_table: pd.DataFrame, metric: str) -> None:
    for column in ("number", "state", "seconds", metric):
        if column not in trials_table:
            raise BenchError(f"trials.csv has no column {column!r} (columns: {', '.join(trials_table.columns)})")


def in_trial_order(trials_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The trials by number, and the trial-seconds spent once each has finished."""
    table = trials_table.sort_values("number")
    return table, table["seconds"].fillna(0).cumsum()


UNPRUNED_BEST = "unpruned-best"


def unpruned_best(trials_table: pd.DataFrame, metric: str) -> float:
    """The target `unpruned-best`: what trying every trial to the end found, so the speed-up to it is how much
    sooner the pruned sweep found as good a trial (and a bound where it never did)."""
    return trials_table.loc[trials_table["state"] == "COMPLETE", metric].max()


def best_within(trials_table: pd.DataFrame, seconds: float, metric: str) -> float:
    """Best `metric` of the COMPLETE trials that finished within `seconds` of trial time (trial-number order)."""
    table, spent = in_trial_order(trials_table)
    return table.loc[(spent <= seconds) & (table["state"] == "COMPLETE"), metric].max()


def pruning(args: argparse.Namespace) -> int:
    if args.out:
        check_writable(args.out)
    if len(args.sweeps) % 2 and not args.replay:
        raise BenchError(f"give sweep directories in pairs WITH WITHOUT (got {len(args.sweeps)}: "
                         f"{' '.join(args.sweeps)})")
    tables = read_sweeps(args.sweeps, args.metric)
    # (pruner, (source, trials) with it, (source, trials) without it)
    pairs: list[tuple[str, tuple[str, pd.DataFrame], tuple[str, pd.DataFrame]]] = []
    if args.replay:
        histories = {source: trial_histories(Path(source), table, args.metric) for source, table in tables.items()}
        for pruner_cfg in args.replay:
            for source, table in tables.items():
                replayed = replay_pruner(table, histories[source], pruner_cfg, args.metric)
                pairs.append((pruner_label(pruner_cfg), (f"{source} replayed", replayed), (source, table)))
    else:
        pairs = [("as run", (with_pruner, tables[with_pruner]), (without, tables[without]))
                 for with_pruner, without in zip(args.sweeps[::2], args.sweeps[1::2])]
    rows = []
    for pair, (pruner, with_pruner, without) in enumerate(pairs, start=1):
        # the same time for both sweeps; the same cumulative sum as each trial's, so the last trial counts
        pruned_budget = float(in_trial_order(with_pruner[1])[1].iloc[-1])
        for target in args.target:
            value = unpruned_best(without[1], args.metric) if target == UNPRUNED_BEST else target
            reached = [time_to_target(trials, value, args.metric) for _, trials in (with_pruner, without)]
            unpruned_seconds = reached[1]["trial_seconds_to_target"]
            bounds = [speedup_bounds(*reached), {}]
            for label, (source, trials), reach, bound in zip(("with pruner", "without pruner"), (with_pruner, without),
                                                             reached, bounds):
                rows.append({"pair": pair, "pruner": pruner, "target": target, "target_value": value, "sweep": label,
                             "source": source, **reach,
                             "speedup_to_target": unpruned_seconds / reach["trial_seconds_to_target"],
                             **bound, "best_within_pruned_total": best_within(trials, pruned_budget, args.metric)})
    table = pd.DataFrame(rows)
    notes = [f"target: {args.metric} >= the target in a COMPLETE trial ({UNPRUNED_BEST}: the best the unpruned "
             "sweep of the pair found, target_value); trial-seconds = the trials' own seconds "
             "summed in trial-number order (the wall time of a sweep run one trial at a time); "
             "speedup_to_target = the unpruned sweep's trial-seconds to the target / this sweep's (empty: not reached); "
             "speedup_at_least / _at_most (rows with the pruner) bound it where a sweep never reached the target: "
             "one that missed it would have needed more than all its trial-seconds (inf: no upper bound; empty: "
             "neither reached it); "
             "best_within_pruned_total = the best COMPLETE value found within the pruned sweep's total trial-seconds "
             "(the same time budget for both)"]
    if args.replay:
        notes.append(REPLAY_NOTE)
    notes += pruning_summary(table) if len(pairs) > 1 else []
    show_table(rounded(table), notes, args.out, "aesweep bench pruning")
    return 0


def speedup_bounds(with_pruner: dict, without: dict) -> dict:
    """What the pair says about the speed-up to a target, also when one sweep never reached it.

    A sweep that missed the target would have needed more than all its trial-seconds, so the speed-up is
    above (the unpruned sweep missed) or below (the pruned one missed) the ratio to that total. Dropping
    such pairs would drop exactly those where pruning helped or hurt most.
    """
    pruned_to, unpruned_to = with_pruner["trial_seconds_to_target"], without["trial_seconds_to_target"]
    if not (math.isnan(pruned_to) or math.isnan(unpruned_to)):
        return {"speedup_at_least": unpruned_to / pruned_to, "speedup_at_most": unpruned_to / pruned_to}
    if not math.isnan(pruned_to):
        return {"speedup_at_least": without["trial_seconds_total"] / pruned_to, "speedup_at_most": math.inf}
    if not math.isnan(unpruned_to):
        return {"speedup_at_least": 0.0, "speedup_at_most": unpruned_to / with_pruner["trial_seconds_total"]}
    return {"speedup_at_least": math.nan, "speedup_at_most": math.nan}


def describe_bounds(low: float, high: float) -> str:
    if low == high:
        return f"{low:.3g}x"
    if math.isinf(high):
        return f">= {low:.3g}x"
    return f"<= {high:.3g}x" if low == 0 else f"{low:.3g}-{high:.3g}x"


def pruning_summary(table: pd.DataFrame) -> list[str]:
    """One line per target over the pairs (e.g. sampler seeds): the median speed-up, bounded where a sweep missed.

    The median is monotone in every value, so the median of the lower bounds bounds it from below and
    that of the upper bounds from above; pairs where neither sweep reached the target say nothing.
    """
    lines = []
    pruned_rows = table[table["sweep"] == "with pruner"]
    several_pruners = pruned_rows["pruner"].nunique() > 1
    for (pruner, target), rows in pruned_rows.groupby(["pruner", "target"], sort=False):
        known = rows.dropna(subset=["speedup_at_least"])
        if len(known):
            median = describe_bounds(known["speedup_at_least"].median(), known["speedup_at_most"].median())
        else:
            median = "-"
        values = ", ".join(describe_bounds(low, high)
                           for low, high in zip(known["speedup_at_least"], known["speedup_at_most"]))
        with_missed = int(rows["trial_seconds_to_target"].isna().sum())
        without = table[(table["sweep"] == "without pruner") & (table["target"] == target)
                        & (table["pruner"] == pruner)]
        without_missed = int(without["trial_seconds_to_target"].isna().sum())
        name = target if target == UNPRUNED_BEST else f"{target:g}"
        lines.append(f"{pruner + ', ' if several_pruners else ''}target {name}: median speed-up {median} over the "
                     f"{len(known)} of {len(rows)} pairs where a sweep reached it ({values}); not reached: "
                     f"{with_missed} with the pruner, {without_missed} without")
    for pruner, rows in table.groupby("pruner", sort=False):
        totals = rows.drop_duplicates("source").groupby("sweep")["trial_seconds_total"].sum()
        lines.append(f"{pruner + ', ' if several_pruners else ''}trial-seconds of all pairs: "
                     f"{totals.get('with pruner', math.nan):.0f} with the pruner, "
                     f"{totals.get('without pruner', math.nan):.0f} without")
    return lines


REPLAY_NOTE = (
    "replayed: each trial of the unpruned sweep, in trial-number order, reports its recorded learning curve "
    "(history.csv) to the pruner, which sees the trials before it as they would have ended; a pruned trial "
    "costs its history's seconds at that epoch. A real pruned sweep's sampler would have learnt from the "
    "pruned trials and proposed others, so this estimates what the pruner would have cut, it does not "
    "measure a sweep (run one with the pruner to confirm)"
)


def trial_histories(source: Path, trials_table: pd.DataFrame, metric: str) -> dict[int, pd.DataFrame]:
    """Each COMPLETE trial's history.csv (epoch, metric, cumulative seconds), found by its run_dir, or, where
    the sweep folder moved, by the run directory's name inside the folder that holds trials.csv. Only an
    unpruned sweep has whole curves to replay."""
    pruned = int((trials_table["state"] == "PRUNED").sum())
    if pruned:
        raise BenchError(f"{source}: {pruned} trials were pruned; --replay and curves need a sweep run without "
                         "a pruner (hydra.sweeper.pruner=null), whose trials all ran to the end")
    folder = source if source.is_dir() else source.parent
    histories = {}
    for row in trials_table[trials_table["state"] == "COMPLETE"].itertuples():
        recorded = Path(str(getattr(row, "run_dir", "") or row.number))
        path = next((place / "history.csv" for place in (recorded, folder / recorded.name)
                     if (place / "history.csv").is_file()), None)
        if path is None:
            raise BenchError(f"{source}: trial {row.number} has no history.csv (looked in {recorded} and "
                             f"{folder / recorded.name}); the whole learning curves are in the sweep's run directories")
        history = pd.read_csv(path)
        for column in ("epoch", metric, "seconds"):
            if column not in history:
                raise BenchError(f"{path}: no column {column!r} (columns: {', '.join(history.columns)})")
        histories[row.number] = history
    return histories


def replay_pruner(trials_table: pd.DataFrame, histories: dict[int, pd.DataFrame], pruner_cfg: dict,
                  metric: str) -> pd.DataFrame:
    """The unpruned sweep as `pruner_cfg` would have cut it: trials in number order, each COMPLETE one
    reporting its history to the pruner epoch by epoch and asking after each but the last, as
    `aesweep.train.run` does. FAIL and other trials stay as recorded."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a fixed name: HyperbandPruner picks each trial's bracket from a hash of the study name and trial number
    study = optuna.create_study(study_name="aesweep-replay", direction="maximize",
                                pruner=pruner_from_config(pruner_cfg))
    table, _ = in_trial_order(trials_table)
    table = table.copy()
    for index, row in table.iterrows():
        if row["state"] != "COMPLETE":
            continue
        trial = study.ask()
        history = histories[row["number"]]
        last_epoch = history["epoch"].max()
        for epoch, value, seconds in history[["epoch", metric, "seconds"]].itertuples(index=False):
            if not math.isfinite(value):  # the reporter leaves non-finite values out
                continue
            trial.report(float(value), step=int(epoch))
            if epoch < last_epoch and trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                table.loc[index, ["state", "seconds", metric]] = ["PRUNED", seconds, value]
                break
        else:
            study.tell(trial, row[metric])
    return table


def pruner_label(pruner_cfg: dict) -> str:
    """`MedianPruner(n_warmup_steps=5)` for {_target_: optuna.pruners.MedianPruner, n_warmup_steps: 5}."""
    arguments = ", ".join(f"{key}={value}" for key, value in pruner_cfg.items() if key != "_target_")
    return f"{str(pruner_cfg['_target_']).rsplit('.', 1)[-1]}({arguments})"


def curve_ranking(histories: Sequence[dict[int, pd.DataFrame]], metric: str) -> pd.DataFrame:
    """How early a sweep's trials are ranked as they will end, epoch by epoch, over unpruned sweeps' recorded
    curves: per sweep, the Spearman correlation of its trials' `metric` after that epoch with their final
    values, and where its finally best trial stood among them then. Within a sweep, since a pruner compares
    a trial with the others of its own study. Before the correlation is high a rung ranks noise."""
    from scipy.stats import spearmanr

    # per sweep: each trial's value by epoch, and after its last epoch
    sweeps = [({number: dict(zip(history["epoch"].astype(int), history[metric].astype(float)))
                for number, history in curves.items()},
               {number: float(history[metric].iloc[-1]) for number, history in curves.items()})
              for curves in histories]
    last_epoch = max(max(by_epoch) for values, _ in sweeps for by_epoch in values.values())
    rows = []
    for epoch in range(1, last_epoch + 1):
        correlations, best_ranks, top_thirds, trials = [], [], [], 0
        for values, finals in sweeps:
            at_epoch = {number: by_epoch[epoch] for number, by_epoch in values.items() if epoch in by_epoch}
            if len(at_epoch) < 3:
                continue
            ends = {number: finals[number] for number in at_epoch}
            trials += len(at_epoch)
            correlations.append(spearmanr(list(at_epoch.values()), list(ends.values()), nan_policy="omit").statistic)
            best = max(ends, key=lambda number: ends[number])
            best_ranks.append(1 + sum(value > at_epoch[best] for value in at_epoch.values()))  # 1 = ahead of all
            top_thirds.append(best_ranks[-1] <= max(1.0, len(at_epoch) / 3))
        if correlations:
            spearman = pd.Series(correlations)
            rows.append({"epoch": epoch, "sweeps": len(correlations), "trials": trials,
                         "spearman_to_final": spearman.median(), "spearman_min": spearman.min(),
                         "spearman_max": spearman.max(), "best_trial_rank": pd.Series(best_ranks).median(),
                         "best_in_top_third": sum(top_thirds)})
    return pd.DataFrame(rows)


def curves(args: argparse.Namespace) -> int:
    if args.out:
        check_writable(args.out)
    tables = read_sweeps(args.sweeps, args.metric)
    histories = [trial_histories(Path(source), table, args.metric) for source, table in tables.items()]
    table = curve_ranking(histories, args.metric)
    notes = [f"spearman_to_final: the rank correlation of a sweep's trials' {args.metric} after that epoch with "
             "their values after their last epoch, median over the sweeps (spearman_min, _max: the range); "
             "best_trial_rank: where each sweep's finally best trial stood among its trials after that epoch "
             "(1 = first), median over the sweeps; best_in_top_third: in how many sweeps it was in the top "
             "third then (what a reduction factor of 3 keeps at a rung)"]
    unsettled = table.loc[table["spearman_to_final"] < 0.8, "epoch"]
    settled_from = int(unsettled.max()) + 1 if len(unsettled) else 1
    if settled_from in set(table["epoch"]):
        notes.append(f"the ranking correlates at 0.8 or more from epoch {settled_from} on: a pruner's first rung "
                     "or warm-up before it ranks trials that will still cross")
    show_table(rounded(table), notes, args.out, "aesweep bench curves")
    return 0
