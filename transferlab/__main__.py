"""``python -m transferlab``: the same as the ``transferlab`` command."""

import sys

from transferlab.cli import main

sys.exit(main())
