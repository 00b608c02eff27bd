"""The pretrained side of a transfer: the source checkpoint, ImageNet weight files, and initialising a target model.

A source is found by path (file, folder, run folder) or by name in a zoo folder, loaded with its data contract
(band names are required: the first layer is matched by them), and its weights are put into a model built for
the target's bands and classes by :func:`initialise` (:mod:`.adapt` does the band-aware first layer).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landzoo.errors import LandzooError
from landzoo.transfer import adapt as adapt_mod
from landzoo.transfer.config import IMAGENET_BANDS, TransferConfig, TransferError
from landzoo.transfer.protocols import TransferProtocol

__all__ = ["Source", "head_name", "initialise", "load_weight_file", "resolve_source"]


@dataclass
class Source:
    """A pretrained checkpoint: where it is, its architecture, data contract and weights."""

    path: Path
    arch: str
    arch_kwargs: dict[str, Any]
    contract: Any  # landzoo.checkpoint.DataContract
    state: dict[str, Tensor]
    sha256: str

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "arch": self.arch,
            "arch_kwargs": self.arch_kwargs,
            "bands": list(self.contract.bands),
            "class_set": self.contract.class_set,
            "input_size": self.contract.input_size,
            "sha256": self.sha256,
        }


def _zoo_candidates(name: str, zoo: Path) -> list[Path]:
    return [zoo / name, zoo / "runs" / name, zoo / f"{name}.safetensors"]


def resolve_source(spec: str, zoo: str | os.PathLike | None = None) -> Source:
    """A checkpoint path (file, folder, run folder) or a name in a zoo folder -> loaded :class:`Source`.

    A checkpoint without band names in its data contract is refused (its first layer cannot be matched).
    """
    from landzoo import checkpoint as ckpt

    path = Path(spec)
    tried: list[Path] = []
    if not path.exists():
        zoos = [Path(z) for z in (zoo, os.environ.get("LANDZOO_ZOO")) if z]
        for z in zoos:
            tried += _zoo_candidates(spec, z)
        found = next((p for p in tried if p.exists()), None)
        if found is None:
            hint = ""
            try:
                from landzoo.models import get_model_info

                get_model_info(spec)
                hint = (
                    f" ({spec!r} is an architecture of the zoo, but landzoo ships no weights: train it with "
                    "`landzoo fit` or `landzoo benchmark` and pass the run folder, or --zoo BENCHMARK_OUT)"
                )
            except LandzooError:
                pass
            where = f"; looked in {', '.join(map(str, tried))}" if tried else " (no --zoo folder or LANDZOO_ZOO given)"
            raise TransferError(f"no checkpoint {spec!r}{where}{hint}")
        path = found
    if path.is_dir() and not (path / ckpt.FOLDER_WEIGHTS).is_file():
        raise TransferError(f"{path} holds no {ckpt.FOLDER_WEIGHTS}: not a checkpoint or finished run folder")
    state, meta = ckpt.load_checkpoint(path)
    if not meta.contract.bands:  # pragma: no cover - DataContract refuses this already
        raise TransferError(f"checkpoint {path} names no bands in its data contract")
    return Source(path, meta.arch, dict(meta.arch_kwargs), meta.contract, dict(state), meta.weights_sha256)


def _align_keys(state: dict[str, Tensor], model_keys: Sequence[str]) -> dict[str, Tensor]:
    """Rename ``state`` keys to the model's when they differ by a prefix (``backbone.``, ``module.``, ``model.``)."""
    keys = set(model_keys)
    if sum(k in keys for k in state) >= 0.5 * len(state):
        return state
    for add in ("backbone.", ""):
        for strip in ("", "module.", "model.", "state_dict."):
            renamed = {add + k.removeprefix(strip): v for k, v in state.items() if k.startswith(strip)}
            if renamed and sum(k in keys for k in renamed) >= 0.5 * len(renamed):
                return renamed
    return state


def load_weight_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """A timm-style weight file (safetensors or a torch pickle of a state dict) as a flat state dict."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: one line naming it
        raise TransferError(f"cannot read weight file {path}: {err}") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise TransferError(f"weight file {path} does not hold a state dict of tensors")
    return dict(state)


def initialise(
    model: nn.Module,
    init: str,
    source: Source,
    imagenet: dict[str, Tensor] | None,
    cfg: TransferConfig,
    bands: tuple[str, ...],
    proto: TransferProtocol,
    example: Tensor,
) -> dict[str, Any]:
    """Load the initialisation's weights into ``model``; returns what was done (adaptation and load reports)."""
    if init == "random":
        return {"init": "random", "note": "architecture's own initialisation, seeded"}
    if init == "zoo":
        state, src_bands, what = source.state, source.contract.bands, f"checkpoint {source.path}"
    else:
        assert imagenet is not None
        state = _align_keys(imagenet, list(model.state_dict()))
        src_bands, what = IMAGENET_BANDS, f"ImageNet weights {cfg.imagenet_weights} (RGB = B04,B03,B02)"
    try:
        rep, load = adapt_mod.transfer_weights(
            model, state, src_bands, bands, len(proto.classes), rule=cfg.new_band_rule, example=example
        )
    except adapt_mod.AdaptError as err:
        raise TransferError(f"{init} initialisation from {what}: {err}") from None
    return {"init": init, "from": what, "adaptation": rep.to_dict(), "load": load.to_dict(), "_report": rep}


def head_name(model: nn.Module, num_classes: int, example: Tensor) -> str:
    """Dotted name of the model's classifier (the report names it; :func:`landzoo.transfer.adapt.find_head`)."""
    return adapt_mod.find_head(model, num_classes, example)
