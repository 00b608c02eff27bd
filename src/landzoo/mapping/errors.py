"""The mapping stage's user-facing error (one line at the CLI, exit 2)."""

from __future__ import annotations

from landzoo.errors import LandzooError

__all__ = ["MapError"]


class MapError(LandzooError):
    """Bad mapping input: a scene, band file, option or checkpoint that cannot be mapped; the message names it."""
