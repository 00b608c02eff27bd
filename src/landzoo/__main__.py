"""``python -m landzoo`` runs the command line."""

import sys

from landzoo.cli import main

sys.exit(main())
