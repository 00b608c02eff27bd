"""Exporting a checkpoint so that it leaves landzoo: the model-hub folder and its model card.

* :func:`export_checkpoint` (``landzoo export``): weights, sidecar, ``config.json`` and model card in one folder;
* :func:`render_model_card`: the card (``README.md``) alone.

Checkpoints themselves (save, load, the data contract) are :mod:`landzoo.checkpoint`.
"""

from __future__ import annotations

from landzoo.export.card import render_model_card
from landzoo.export.hub import export_checkpoint

__all__ = ["export_checkpoint", "render_model_card"]
