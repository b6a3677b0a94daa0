"""`aesweep bench`: how fast the project trains and how much search a sweep does per hour, each measured
side by side with its reference.

One module per kind of measurement: `speed` (epochs, against the blog's own loop), `trials`
(real train.py processes: trials per hour, peak memory), `sweeps` (tables read from finished sweeps:
pruning on against off, replayed pruners, learning-curve ranking); `common` holds what they share and
`cli` the command line.
"""

from aesweep.bench.cli import main

__all__ = ["main"]
