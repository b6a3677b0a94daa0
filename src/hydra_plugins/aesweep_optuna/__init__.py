"""aesweep's Hydra Sweeper on Optuna >= 4: ``override /hydra/sweeper: aesweep_optuna``.

Modules: ``config`` (the sweeper's config schema), ``optuna_sweeper`` (the Hydra plugin class),
``_search_space`` (override grammar -> Optuna distributions), ``_workers`` (which process owns a
trial, heartbeats, stale trials, the claim lock), ``_tables`` (trials.csv, best.yaml, study.yaml,
the summary) and ``_sweep`` (the ask -> launch -> tell loop). Modules starting with ``_`` are not
imported by Hydra's plugin scan, so a plain ``python train.py`` never imports Optuna.
"""
