"""``python -m adapt``: kept working; the command line itself lives above this package, in
:mod:`transferlab.cli`."""

import sys

from transferlab.cli import main

sys.exit(main())
