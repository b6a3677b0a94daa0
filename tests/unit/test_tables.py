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


def seeded_trial(number_of_seeds_values: list[float], value: float):
    attrs = {f"value.seed{seed}": v for seed, v in enumerate(number_of_seeds_values)}
    return create_trial(value=value, user_attrs=attrs)


def test_trials_that_share_their_worst_seed_rank_by_their_mean_over_the_seeds():
    from hydra_plugins.aesweep_optuna._tables import best_trial, ranking

    study = optuna.create_study(direction="maximize")
    study.add_trial(seeded_trial([0.9764, 0.9694, 0.9694], value=0.9694))  # mean 0.9717
    study.add_trial(seeded_trial([0.9694, 0.9710, 0.9794], value=0.9694))  # mean 0.9733: the better of the tie
    study.add_trial(seeded_trial([0.9680, 0.9710, 0.9694], value=0.9680))  # a lower worst seed, whatever its mean
    study.add_trial(seeded_trial([0.9794, 0.9794, 0.9694], value=0.9694))  # mean 0.9761: best of all

    assert best_trial(study).number == 3
    table = trials_frame(study, [], ["val.mapped_acc"])
    assert ranking(table, study, ["val.mapped_acc"], top_k=4)["number"].tolist() == [3, 1, 0, 2]


def test_a_tie_when_minimising_goes_to_the_lower_mean_and_a_full_tie_to_the_earlier_trial():
    from hydra_plugins.aesweep_optuna._tables import best_trial

    study = optuna.create_study(direction="minimize")
    study.add_trial(seeded_trial([0.05, 0.04], value=0.05))
    study.add_trial(seeded_trial([0.05, 0.02], value=0.05))
    study.add_trial(seeded_trial([0.05, 0.02], value=0.05))
    assert best_trial(study).number == 1
