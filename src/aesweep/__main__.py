"""``python -m aesweep`` runs the ``aesweep`` console command."""

import sys

from aesweep.cli import main

sys.exit(main())
