"""`python -m aesweep.bench ...`, the same as `aesweep bench ...`."""

import sys

from aesweep.bench.cli import main

sys.exit(main())
