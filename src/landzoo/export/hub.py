"""``landzoo export``: a checkpoint written as a folder laid out like a model-hub repository."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from landzoo.checkpoint import (
    FOLDER_SIDECAR,
    FOLDER_WEIGHTS,
    CheckpointError,
    _write_json,
    checkpoint_paths,
    file_sha256,
    read_meta,
)
from landzoo.export.card import render_model_card
from landzoo.files import atomic_write

__all__ = ["export_checkpoint"]


def export_checkpoint(
    checkpoint: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False
) -> dict[str, Path]:
    """Write a model-hub style folder: ``model.safetensors``, ``landzoo.json``, ``config.json``, ``README.md``.

    The folder is itself a landzoo checkpoint (``load_checkpoint(out)`` works). An existing non-empty
    ``out`` is refused unless ``overwrite``.
    """
    meta = read_meta(checkpoint, verify=True)
    weights_src, sidecar_src = checkpoint_paths(checkpoint)
    dest = Path(out)
    if dest.exists() and not dest.is_dir():
        raise CheckpointError(f"export destination {dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise CheckpointError(f"export destination {dest} is not empty (use --overwrite to replace its files)")
    dest.mkdir(parents=True, exist_ok=True)
    paths = {
        "weights": dest / FOLDER_WEIGHTS,
        "sidecar": dest / FOLDER_SIDECAR,
        "config": dest / "config.json",
        "card": dest / "README.md",
    }
    if paths["weights"].resolve() != weights_src.resolve():
        atomic_write(paths["weights"], lambda p: shutil.copyfile(weights_src, p))
    if file_sha256(paths["weights"]) != meta.weights_sha256:  # pragma: no cover - a copy that went wrong
        raise CheckpointError(f"copying {weights_src} to {paths['weights']} changed its content")
    sidecar = json.loads(sidecar_src.read_text(encoding="utf-8"))
    sidecar.setdefault("weights", {})["file"] = FOLDER_WEIGHTS
    _write_json(paths["sidecar"], sidecar)
    dc = meta.contract
    config = {
        "library_name": "landzoo",
        "architecture": meta.arch,
        "arch_kwargs": meta.arch_kwargs,
        "in_chans": len(dc.bands),
        "num_classes": len(dc.classes),
        "contract": dc.to_dict(),
        "landzoo_version": meta.landzoo_version,
        "git_commit": meta.git_commit,
        "schema_version": meta.schema_version,
    }
    _write_json(paths["config"], config)
    card = render_model_card(meta)
    atomic_write(paths["card"], lambda p: p.write_text(card, encoding="utf-8"))
    return paths
