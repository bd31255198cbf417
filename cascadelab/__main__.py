"""``python -m cascadelab`` = the ``cascadelab`` command."""

import sys

from cascadelab.cli import main

sys.exit(main())
