"""``landzoo export``: a checkpoint written as a folder that timm, onnxruntime and torch load by themselves.

The folder (:func:`export_checkpoint`):

* ``model.safetensors``: the network's weights under timm's own key names (the ``backbone.`` prefix of landzoo's
  wrapper removed); the safetensors header keeps the band order, class set, that prefix and the timm build
  arguments, so ``timm.create_model("wrn_eca_b0", pretrained=True, pretrained_cfg_overlay=dict(file=...))`` builds
  the right network from the file alone;
* ``config.json``: timm's Hub config (``architecture``, ``num_classes``, ``label_names``, ``model_args``,
  ``pretrained_cfg`` with the input size and the real per-band mean/std), so that
  ``timm.create_model("local-dir:FOLDER", pretrained=True)`` works, plus the data contract (band and class
  names, normalisation, band grouping and the graphs' inputs);
* ``landzoo.json``: the checkpoint sidecar (the folder is itself a landzoo checkpoint: ``load_checkpoint``,
  ``build_model_from_checkpoint`` and :func:`landzoo.load_model` read it);
* ``README.md``: the model card;
* with ``formats``: ``model.onnx``, ``model.torchscript.pt``, ``model.pt2`` (:mod:`landzoo.export.graphs`), each
  checked against PyTorch before it is kept.

Before it returns, the export loads the folder back through ``timm.create_model("local-dir:...")`` and checks that
the network computes what the checkpoint's does. All of it is written and checked in a staging folder beside the
destination and moved in at the end: a failed, interrupted or refused export leaves no file in the destination,
and ``overwrite`` removes the files of an earlier export (a stale ``model.onnx`` of another model) first.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from landzoo import contract
from landzoo.checkpoint import (
    FOLDER_SIDECAR,
    FOLDER_WEIGHTS,
    CheckpointError,
    CheckpointMeta,
    build_model_from_checkpoint,
    checkpoint_paths,
    file_sha256,
    read_meta,
    safetensors_bytes,
    write_json,
    write_sidecar,
)
from landzoo.export.card import render_model_card
from landzoo.files import atomic_write, atomic_write_bytes, check_writable_dir

__all__ = ["KEY_PREFIX", "ExportResult", "export_checkpoint", "timm_config"]

#: Prefix of every weight of a landzoo model (its ``backbone`` attribute); exported weights go without it.
KEY_PREFIX = "backbone."
#: safetensors header entry naming the prefix the weights' keys lost (read by ``landzoo.checkpoint.load_checkpoint``;
#: the timm build arguments are ``landzoo.models._common.HEADER_TIMM_ARGS``).
HEADER_KEY_PREFIX = "landzoo_key_prefix"


@dataclass
class ExportResult:
    """Paths written (``weights``, ``sidecar``, ``config``, ``card`` and one per graph format) and the checks."""

    paths: dict[str, Path]
    timm_max_abs_diff: float
    graphs: list[Any] = field(default_factory=list)


def timm_model_args(meta: CheckpointMeta) -> tuple[str, dict[str, Any]]:
    """The timm architecture name and ``create_model`` arguments that rebuild the checkpoint's network."""
    from landzoo.models import get_model_info

    info = get_model_info(meta.arch)
    dc = meta.contract
    args: dict[str, Any] = {"in_chans": len(dc.bands), "num_classes": len(dc.classes), **meta.arch_kwargs}
    return info.timm_name or info.name, args


def timm_config(
    meta: CheckpointMeta,
    network: Any,
    *,
    graphs: Sequence[Mapping[str, Any]] = (),
    graph_inputs: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """``config.json``: timm's Hub layout (what ``local-dir:`` reads) plus landzoo's data contract.

    ``mean``/``std`` are the contract's per-band statistics in channel order, in raw units (Sentinel-2 digital
    numbers, Sentinel-1 dB), not timm's [0, 1] image scale.
    """
    from timm.models import PretrainedCfg

    dc = meta.contract
    arch, args = timm_model_args(meta)
    base = dict(getattr(network, "pretrained_cfg", None) or {})
    mean, std = dc.normalisation()
    cfg: dict[str, Any] = {k: base[k] for k in ("first_conv", "classifier", "fixed_input_size") if k in base}
    cfg.update(
        input_size=[len(dc.bands), dc.input_size, dc.input_size],
        interpolation="bicubic",
        crop_pct=1.0,
        crop_mode="center",
        mean=[float(m) for m in mean],
        std=[float(s) for s in std],
        num_classes=len(dc.classes),
        pool_size=None,
        description=f"{meta.arch} ({len(dc.bands)} bands {','.join(dc.bands)}; {dc.class_set} classes), by landzoo",
        notes=[
            "inputs: raw values normalised as (x - mean) / std per band, in channel order, then resampled to "
            f"{dc.input_size} px with TensorFlow's bicubic (landzoo.transforms.resample); not timm's RGB transforms",
            "outputs: one logit per class (multi-label: sigmoid)",
        ],
    )
    PretrainedCfg(**cfg)  # what timm will build from it: refuse a field it does not know here, not at load time
    groups = {g: list(b) for g, b in contract.band_groups(dc.bands, native=dc.native).items()}
    return {
        "architecture": arch,
        "num_classes": len(dc.classes),
        "num_features": getattr(network, "num_features", None),
        "label_names": list(dc.classes),
        "model_args": args,
        "pretrained_cfg": cfg,
        "library_name": "landzoo",
        "landzoo_arch": meta.arch,
        "arch_kwargs": meta.arch_kwargs,
        "in_chans": len(dc.bands),
        "contract": dc.to_dict(),
        "band_groups": groups,
        "weights_key_prefix": KEY_PREFIX,
        "graph_inputs": list(graph_inputs),
        "graphs": list(graphs),
        "landzoo_version": meta.landzoo_version,
        "git_commit": meta.git_commit,
        "schema_version": meta.schema_version,
    }


def _weights_header(weights: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"checkpoint weights {weights} are unreadable: {err}") from None


def _write_weights(state: Mapping[str, Any], header: Mapping[str, str], path: Path) -> None:
    foreign = [k for k in state if not k.startswith(KEY_PREFIX)]
    if foreign:
        raise CheckpointError(
            f"the checkpoint's weights are not a landzoo model's (key {foreign[0]!r} lacks the {KEY_PREFIX!r} prefix)"
        )
    tensors = {k.removeprefix(KEY_PREFIX): v.contiguous() for k, v in state.items()}
    # serialised in memory (safetensors' save_file creates its file 0600 whatever the umask), header sorted:
    # the same checkpoint exports to the same bytes
    atomic_write_bytes(path, safetensors_bytes(tensors, header))


def _check_destination(dest: Path, overwrite: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise CheckpointError(f"export destination {dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise CheckpointError(f"export destination {dest} is not empty (use --overwrite to replace its files)")
    check_writable_dir(dest, what="export folder")


def _check_timm_loads(dest: Path, model: Any, tolerance: float) -> float:
    """Build the folder with ``timm.create_model("local-dir:...")`` and compare it with the checkpoint's network."""
    import timm
    import torch

    try:
        net = timm.create_model(f"local-dir:{dest.resolve()}", pretrained=True)
    except Exception as err:
        raise CheckpointError(f"timm cannot load the exported folder {dest}: {type(err).__name__}: {err}") from None
    net.eval()
    size = model.input_size
    x = torch.randn(2, len(model.bands), size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((net(x) - model.backbone.eval()(x)).abs().max())
    if not diff <= tolerance:
        raise CheckpointError(f"{dest}: timm's network differs from the checkpoint's by {diff:.3g} (max |logit|)")
    return diff


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    formats: Sequence[str] = (),
    inputs: str = "groups",
    group_px: Mapping[str, int] | None = None,
    tolerance: float = 1e-4,
    log: Any = None,
) -> ExportResult:
    """Write the export folder of ``checkpoint`` (see the module docstring) into ``out``; graphs for ``formats``.

    An existing non-empty ``out`` is refused unless ``overwrite``. ``inputs``, ``group_px``: the graphs' input
    layout (:func:`landzoo.export.graphs.graph_spec`). ``tolerance``: the largest absolute difference from PyTorch
    a graph (and timm's rebuild) may show. ``log``: a callable given one line per file written (e.g. ``print``).
    """
    from landzoo.export import graphs as g

    unknown = [f for f in formats if f not in g.FORMATS]
    if unknown:
        raise g.ExportError(f"unknown export format {unknown[0]!r}; choose from hub, {', '.join(g.FORMATS)}, all")
    meta = read_meta(checkpoint, verify=True)
    dest = Path(out)
    _check_destination(dest, overwrite)
    model, meta = build_model_from_checkpoint(checkpoint)
    model.eval()
    spec = g.graph_spec(model, inputs, native=meta.contract.native, group_px=group_px) if formats else None
    # everything is written and checked in a staging folder beside ``dest``, then moved in: a failed or
    # interrupted export leaves nothing in ``dest``, and --overwrite leaves no file of an earlier export
    stage = dest.parent / f".{dest.name}.export-{os.getpid()}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    lines: list[str] = []
    try:
        result = _write_folder(model, meta, checkpoint, stage, formats, spec, tolerance, lines.append)
        _publish(stage, dest)
    except OSError as err:  # a full disk while staging: name the file the user asked for, not the staging copy
        name = str(err.filename or "")
        if not name.startswith(str(stage)):
            raise
        raise OSError(err.errno, err.strerror, name.replace(str(stage), str(dest), 1)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    say = log or (lambda line: None)
    for line in lines:
        say(line.replace(str(stage), str(dest)))
    paths = {k: dest / v.name for k, v in result.paths.items()}
    return ExportResult(paths, result.timm_max_abs_diff, [replace(r, path=dest / r.path.name) for r in result.graphs])


def _publish(stage: Path, dest: Path) -> None:
    """Move the staged files into ``dest`` (each rename atomic), after removing an earlier export's files."""
    from landzoo.export.graphs import GRAPH_FILES

    dest.mkdir(parents=True, exist_ok=True)
    ours = {FOLDER_WEIGHTS, FOLDER_SIDECAR, "config.json", "README.md", *GRAPH_FILES.values()}
    for old in dest.iterdir():
        if old.name in ours and old.is_file():
            old.unlink()
    for new in sorted(stage.iterdir()):
        os.replace(new, dest / new.name)


def _write_folder(
    model: Any,
    meta: CheckpointMeta,
    checkpoint: str | os.PathLike,
    dest: Path,
    formats: Sequence[str],
    spec: Any,
    tolerance: float,
    say: Any,
) -> ExportResult:
    """The export folder's files, written into ``dest`` and checked (timm's rebuild, each graph's parity)."""
    from landzoo.export import graphs as g
    from landzoo.models._common import HEADER_TIMM_ARGS

    weights_src, sidecar_src = checkpoint_paths(checkpoint)
    state = model.state_dict()  # the checkpoint's tensors: build_model_from_checkpoint loaded them strictly
    paths = {
        "weights": dest / FOLDER_WEIGHTS,
        "sidecar": dest / FOLDER_SIDECAR,
        "config": dest / "config.json",
        "card": dest / "README.md",
    }
    arch, args = timm_model_args(meta)
    header = {
        **_weights_header(weights_src),
        HEADER_KEY_PREFIX: KEY_PREFIX,
        "landzoo_timm_arch": arch,
        HEADER_TIMM_ARGS: json.dumps(args, sort_keys=True),
    }
    _write_weights(state, header, paths["weights"])
    sidecar = json.loads(sidecar_src.read_text(encoding="utf-8"))
    sidecar.setdefault("weights", {}).update(
        file=FOLDER_WEIGHTS,
        sha256=file_sha256(paths["weights"]),
        source_sha256=meta.weights_sha256,
        key_prefix=KEY_PREFIX,
    )
    write_sidecar(paths["sidecar"], sidecar)
    say(f"{paths['weights']}  (timm keys: {KEY_PREFIX!r} prefix removed)")
    records = []
    graphs = g.export_graphs(model, formats, dest, spec, stats=meta.contract.stats, tolerance=tolerance) if spec else []
    for rec in graphs:
        records.append(rec)
        paths[rec.format] = rec.path
        say(
            f"{rec.path}  (max |{rec.format} - PyTorch| = {rec.max_abs_diff:.3g} at batch sizes "
            f"{', '.join(map(str, rec.batches))}; tolerance {tolerance:g})"
        )
    described = spec.describe() if spec is not None else []
    config = timm_config(meta, model.backbone, graphs=[r.to_dict() for r in records], graph_inputs=described)
    write_json(paths["config"], config)
    diff = _check_timm_loads(dest, model, tolerance)
    say(f"{paths['config']}  (timm.create_model('local-dir:{dest}', pretrained=True) checked: max diff {diff:.3g})")
    card = render_model_card(meta, config=config)
    atomic_write(paths["card"], lambda p: p.write_text(card, encoding="utf-8"))
    say(f"{paths['card']}")
    return ExportResult(paths, diff, records)
