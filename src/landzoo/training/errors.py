"""The training engine's user-facing error (the CLI prints it as one line, exit code 2)."""

from __future__ import annotations

from landzoo.errors import LandzooError

__all__ = ["RunError"]


class RunError(LandzooError):
    """A run that cannot start or continue: missing store, occupied run folder, mismatched or damaged checkpoint."""
