"""python -m vgs.sweep NAME ...: see vgs.sweep.cli."""

import sys

from vgs.sweep.cli import main

sys.exit(main())
