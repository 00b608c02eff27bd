"""Checkpoints for the export tests: a zoo model with calibrated BatchNorm statistics, saved as landzoo saves them.

Freshly initialised networks output almost nothing (EfficientNet's logits are ~1e-12), so a parity check on them
could not fail; running a few batches in train mode with cumulative BatchNorm statistics gives outputs of order
one, as a trained model has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from landzoo.checkpoint import DataContract, save_checkpoint
from landzoo.export import export_checkpoint
from landzoo.models import create_model

#: One architecture per family of the zoo, with options that keep it small where the builder takes them.
FAMILY_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "wrn": ("wrn10_2_eca", {"init": "torch"}),
    "wrn_eca": ("wrn_eca_b0", {"init": "torch", "width_multiplier": 0.5}),
    "efficientnet_eca": ("efficientnet_eca_b0", {"init": "torch", "width_multiplier": 0.25, "depth_multiplier": 0.3}),
    "efficientnet_custom": (
        "efficientnet_cbam_b0_ghost",
        {"init": "torch", "width_multiplier": 0.25, "depth_multiplier": 0.3},
    ),
    "vit": (
        "vit_p20_120",
        {"dim": 16, "depth": 1, "num_heads": 2, "key_dim": 8, "mlp_widths": [16], "head_widths": [16]},
    ),
    "mixer": ("mixer_tiny_p12_120", {}),
    "resnet": ("resnet50", {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64], "stem_width": 8}),
    "vgg": ("vgg16", {}),
    "densenet": ("densenet121", {"growth_rate": 4, "block_config": [1, 1, 1, 1], "stem_type": ""}),
    "efficientnet": ("efficientnet_b0", {}),  # timm's builder takes no width/depth options
}


def calibrated_model(
    name: str, kwargs: dict[str, Any], bands: str = "s2_10m_20m", classes: str = "ben19", *, native: bool = True
):
    torch.manual_seed(0)
    model = create_model(name, bands, classes, native=native, **kwargs)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    size = model.input_size
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model.backbone(torch.randn(4, len(model.bands), size, size))
    return model.eval()


def save_trained_like(
    folder: Path,
    name: str,
    kwargs: dict[str, Any],
    bands: str = "s2_10m_20m",
    classes: str = "ben19",
    *,
    native: bool = True,
) -> tuple[Path, Any]:
    """A checkpoint ``folder/model.safetensors`` (+ sidecar) of the calibrated model, and the model."""
    model = calibrated_model(name, kwargs, bands, classes, native=native)
    dc = DataContract.from_names(model.bands, classes, model.input_size, native=native)
    metrics = {"test": {"f1_micro": 0.5, "f1_macro": 0.4}}
    path = save_checkpoint(
        folder / "model.safetensors", model.state_dict(), dc, arch=name, arch_kwargs=kwargs, metrics=metrics
    )
    return path, model


def raw_groups(model, batch: int, seed: int, px: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Raw uint16 band groups as a store delivers them (BigEarthNet native sizes unless ``px`` says otherwise),
    drawn around each band's mean and std, so that the normalised input looks like what BatchNorm was calibrated on."""
    from landzoo import contract

    g = torch.Generator().manual_seed(seed)
    out = {}
    for group, names in model.transform.groups.items():
        side = (px or {}).get(group, contract.BANDS[names[0]].ben_patch_px)
        mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in contract.band_stats(names))
        x = torch.randn(batch, len(names), side, side, generator=g) * std + mean
        out[group] = x.round().clamp(0, 65535).to(torch.int32).to(torch.uint16)
    return out


def check_family_graphs(family: str, tmp_path: Path) -> None:
    """Export one family's model with every graph format and compare each graph, opened by its own loader."""
    name, kwargs = FAMILY_CASES[family]
    ckpt, model = save_trained_like(tmp_path / "run", name, kwargs)
    lines: list[str] = []
    result = export_checkpoint(
        ckpt, tmp_path / "hub", formats=["onnx", "torchscript", "torch-export"], log=lines.append
    )
    assert [r.format for r in result.graphs] == ["onnx", "torchscript", "torch-export"]
    assert all(0 <= r.max_abs_diff <= 1e-4 for r in result.graphs)
    assert sum("max |onnx - PyTorch|" in line for line in lines) == 1  # the difference is reported

    groups = raw_groups(model, batch=5, seed=7)
    with torch.no_grad():
        logits = model(groups)
    assert float(logits.abs().max()) > 1e-2  # outputs of a size the comparison can see
    probs = torch.sigmoid(logits)
    feeds = [groups[g].float() for g in model.transform.groups]

    session = ort.InferenceSession(str(tmp_path / "hub" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(model.transform.groups)
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    assert all(i.shape[0] == "batch" for i in session.get_inputs())  # a symbolic batch dimension
    assert all(o.shape[0] == "batch" for o in session.get_outputs())
    onnx_logits, onnx_probs = session.run(
        None, {n: x.numpy() for n, x in zip(model.transform.groups, feeds, strict=True)}
    )
    np.testing.assert_allclose(onnx_logits, logits.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(onnx_probs, probs.numpy(), rtol=0, atol=1e-4)

    scripted = torch.jit.load(str(tmp_path / "hub" / "model.torchscript.pt"))
    exported = torch.export.load(str(tmp_path / "hub" / "model.pt2")).module()
    with torch.no_grad():
        for graph in (scripted, exported):
            g_logits, g_probs = graph(*feeds)
            torch.testing.assert_close(g_logits, logits, rtol=0, atol=1e-4)
            torch.testing.assert_close(g_probs, probs, rtol=0, atol=1e-4)

    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert [r["file"] for r in config["graphs"]] == ["model.onnx", "model.torchscript.pt", "model.pt2"]
    assert [i["name"] for i in config["graph_inputs"]] == list(model.transform.groups)
    assert "model.onnx" in (tmp_path / "hub" / "README.md").read_text()
