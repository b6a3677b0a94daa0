"""The sweeper's trials.csv, built from the study: one row per trial, counts kept as integers."""

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hydra_plugins.aesweep_optuna._search_space import parse_search_space
from hydra_plugins.aesweep_optuna._tables import trials_frame


def test_counts_stay_integers_where_a_pruned_trial_has_no_test_metrics(tmp_path):
    study = optuna.create_study(direction="maximize")
    lr = FloatDistribution(1e-4, 1e-2, log=True)
    complete = {"val.clusters_used": 10, "test.clusters_used": 9, "test.mapped_acc": 0.9, "params": 1234, "epochs": 5}
    study.add_trial(create_trial(value=0.91, params={"optimizer.lr": 1e-3}, distributions={"optimizer.lr": lr},
                                 user_attrs=complete))
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"optimizer.lr": 5e-3},
                                 distributions={"optimizer.lr": lr},
                                 user_attrs={"val.clusters_used": 7, "params": 1234, "epochs": 1}))
    space = parse_search_space({"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"}, [], group_options=lambda group: [])

    table = trials_frame(study, space, ["val.mapped_acc"])
    table.to_csv(tmp_path / "trials.csv", index=False)

    assert table["test.clusters_used"].tolist()[0] == 9 and table["test.clusters_used"].isna().tolist() == [False, True]
    lines = (tmp_path / "trials.csv").read_text().splitlines()
    header = lines[0].split(",")
    first, second = (dict(zip(header, line.split(","))) for line in lines[1:])
    assert (first["test.clusters_used"], first["val.clusters_used"], first["epochs"]) == ("9", "10", "5")
    assert (second["test.clusters_used"], second["val.clusters_used"], second["epochs"]) == ("", "7", "1")
    assert first["test.mapped_acc"] == "0.9"
