"""Results tables: collect finished runs into one table, compare configurations, plot a sweep.

Data flows one way: Hydra run folders (``.hydra/config.yaml``, ``.hydra/hydra.yaml``,
``.hydra/overrides.yaml``, the run record ``metrics.json``) and sweep tables (``trials.csv``) -> one tidy
DataFrame with one row per run (``collect``) -> leaderboards (``compare``), text tables (``table``) and
PNGs (``plot``). Nothing here trains or reaches back into a run; a run's record is the single source of
its numbers.
"""
