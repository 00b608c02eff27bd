"""``python -m landzoo`` runs the command line."""

from landzoo.cli import entry

entry()
