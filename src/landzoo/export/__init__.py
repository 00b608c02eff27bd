"""Exporting a checkpoint so that it leaves landzoo: a folder timm loads, graphs onnxruntime and torch load.

* :func:`export_checkpoint` (``landzoo export``): timm-keyed weights, ``config.json`` (timm's Hub config plus the
  data contract), the checkpoint sidecar and the model card, and with ``formats`` the ONNX, TorchScript and
  ``torch.export`` graphs, each checked against PyTorch (:mod:`landzoo.export.graphs`);
* :func:`render_model_card`: the card (``README.md``) alone.

Checkpoints themselves (save, load, the data contract) are :mod:`landzoo.checkpoint`; loading a model back from
Python is :func:`landzoo.load_model`.
"""

from __future__ import annotations

from landzoo.export.card import render_model_card
from landzoo.export.graphs import FORMATS, GRAPH_FILES, INPUTS, ExportError
from landzoo.export.hub import ExportResult, export_checkpoint, timm_config

__all__ = [
    "FORMATS",
    "GRAPH_FILES",
    "INPUTS",
    "ExportError",
    "ExportResult",
    "export_checkpoint",
    "render_model_card",
    "timm_config",
]
