"""A checkpoint as the mapper needs it: the model in eval mode, its data contract, identity and threshold.

This is the only place that touches the training engine (:func:`landzoo.training.load_module`, which
accepts a run folder, a Lightning ``.ckpt``, a ``.safetensors`` + ``.json`` pair or an export folder and
refuses a checkpoint whose contract it cannot check), so the rest of :mod:`landzoo.mapping` depends on
plain torch and the contract dict only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landzoo import contract
from landzoo.mapping.errors import MapError

__all__ = ["DEFAULT_THRESHOLD", "MEMORY_FORMATS", "MapModel", "load_map_model", "state_digest"]

#: Decision threshold when the checkpoint records none: the metrics' default (``score >= 0.5``).
DEFAULT_THRESHOLD = 0.5


@dataclass
class MapModel:
    """``module`` maps native band groups (dict of raw-value tensors) to logits; ``contract`` as checkpoints store it."""

    module: Any
    contract: dict[str, Any]
    arch: str
    checkpoint: str
    digest: str
    threshold: float
    threshold_source: str

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.contract["bands"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.contract["classes"])

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Band groups in the model's channel order (``10m``, ``20m``, ``60m``), as the stem expects them."""
        return contract.band_groups(self.bands, native=True)

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.checkpoint,
            "arch": self.arch,
            "weights_sha256": self.digest,
            "contract": self.contract,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
        }


def state_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 of a state dict's names and raw tensor bytes: the same weights give the same digest in any file."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(repr(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _load_module(path: Path) -> Any:
    from landzoo.training import load_module

    return load_module(path)


#: Memory formats of the convolutions: channels-last is faster with oneDNN on CPUs and with cuDNN on GPUs;
#: contiguous is what ``landzoo predict`` uses on a CPU (same arithmetic, same last bit).
MEMORY_FORMATS = ("channels_last", "contiguous")


def load_map_model(
    path: str | Path,
    *,
    threshold: float | None = None,
    device: Any = "cpu",
    memory_format: str = "channels_last",
) -> MapModel:
    """Load a checkpoint for mapping; refuse one that cannot be fed native Sentinel-2 L2A band groups."""
    import torch

    path = Path(path)
    if memory_format not in MEMORY_FORMATS:
        raise MapError(f"memory format {memory_format!r}: choose {' or '.join(MEMORY_FORMATS)}")
    module = _load_module(path)
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    model = module.model.eval().to(device, memory_format=fmt)
    for p in model.parameters():
        p.requires_grad_(False)
    c = dict(module.contract)
    bands = tuple(c["bands"])
    if not c.get("native", True):
        raise MapError(
            f"checkpoint {path} was trained on bands resampled to one 10 m grid (SEN12MS/EuroSAT style); "
            "map feeds each band at its native Sentinel-2 resolution, as BigEarthNet stores it"
        )
    not_s2 = [b for b in bands if contract.band(b).sensor != "S2"]
    if not_s2:
        raise MapError(f"checkpoint {path} takes {','.join(not_s2)}: map reads Sentinel-2 L2A scenes only")
    if threshold is not None:
        thr, source = float(threshold), "--threshold"
    elif c.get("threshold") is not None:
        thr, source = float(c["threshold"]), "checkpoint data contract"
    else:
        thr, source = DEFAULT_THRESHOLD, "default (the checkpoint records none)"
    if not 0.0 <= thr <= 1.0:
        raise MapError(f"threshold {thr} is not a probability in [0, 1]")
    arch = getattr(getattr(module, "cfg", None), "model", None)
    return MapModel(
        module=model,
        contract=c,
        arch=getattr(arch, "name", None) or getattr(model, "name", "") or type(model).__name__,
        checkpoint=str(path),
        digest=state_digest(model.state_dict()),
        threshold=thr,
        threshold_source=source,
    )
