"""ONNX, TorchScript and torch.export graphs of landzoo's own families, opened with the ecosystem's own loaders.

For each family one small model is exported with ``--format all``; the graphs are then opened with
``onnxruntime.InferenceSession``, ``torch.jit.load`` and ``torch.export.load`` (not through landzoo) and fed raw
uint16 band groups as a store delivers them (cast to float32), at a batch size the export never saw; their
logits and probabilities must equal the landzoo model's on the same dict input within 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import check_family_graphs

FAMILIES = [
    "wrn",
    "wrn_eca",
    pytest.param("efficientnet_eca", marks=pytest.mark.slow),
    pytest.param("efficientnet_custom", marks=pytest.mark.slow),
    "vit",
    "mixer",
]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_exports_graphs_that_match_pytorch(family: str, tmp_path: Path) -> None:
    check_family_graphs(family, tmp_path)
