"""ONNX, TorchScript and torch.export graphs of the families timm builds, opened with the ecosystem's own loaders.

For each family one small model is exported with ``--format all``; the graphs are then opened with
``onnxruntime.InferenceSession``, ``torch.jit.load`` and ``torch.export.load`` (not through landzoo) and fed raw
uint16 band groups as a store delivers them (cast to float32), at a batch size the export never saw; their
logits and probabilities must equal the landzoo model's on the same dict input within 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import FAMILY_CASES, check_family_graphs

FAMILIES = [
    "resnet",
    pytest.param("vgg", marks=pytest.mark.slow),
    pytest.param("densenet", marks=pytest.mark.slow),
    pytest.param("efficientnet", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_exports_graphs_that_match_pytorch(family: str, tmp_path: Path) -> None:
    check_family_graphs(family, tmp_path)


def test_both_files_cover_every_family_of_the_zoo() -> None:
    from landzoo.models import get_model_info, list_models

    assert {get_model_info(n).family for n in list_models()} == set(FAMILY_CASES)
    assert {f: get_model_info(name).family for f, (name, _) in FAMILY_CASES.items()} == {f: f for f in FAMILY_CASES}
