"""Many scenes: resume, the split over ranks, and the summary that marks a scene finished.

* **Resume.** A scene is finished when ``<scene>_summary.json`` exists, was made with the same request (the
  checkpoint's weights digest, the decision threshold and every option that changes the map) and every file
  it lists exists with the size it records. The summary is written last, after the rasters and the quicklook
  (each renamed into place atomically), so a run killed at any point leaves either a finished scene or one that
  the next run redoes from scratch; its stale temporary files are removed first.
* **Ranks.** Several GPUs or nodes split the (sorted) scene list: rank ``r`` of ``w`` takes scenes
  ``r, r + w, ...``. The rank comes from ``torch.distributed`` when it is initialised, else from the variables
  torchrun sets (``RANK``/``WORLD_SIZE``), else from a SLURM array (``SLURM_ARRAY_TASK_ID`` minus
  ``SLURM_ARRAY_TASK_MIN``, over ``SLURM_ARRAY_TASK_COUNT``, times the tasks of each array job), else from
  SLURM tasks (``SLURM_PROCID``/``SLURM_NTASKS``). No scheduler of our own: the split is a pure function of the
  list, so a rerun of the same array re-derives it, and resume makes a requeued task skip what is done.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from landzoo.files import atomic_write_text, check_writable_dir
from landzoo.mapping.engine import MapOptions, map_scene, resolve_device
from landzoo.mapping.errors import MapError
from landzoo.mapping.sources import open_scene, scene_stem

__all__ = ["MAP_FORMAT", "MapOptions", "is_finished", "map_scenes", "rank_world", "scene_shard"]

#: Version of the summary layout and of the map recipe; a change makes earlier maps unfinished.
MAP_FORMAT = 1
_OUTPUT_SUFFIXES = ("_probs.tif", "_labels.tif", "_class.tif", "_quicklook.png", "_summary.json")


def rank_world(env: dict[str, str] | None = None) -> tuple[int, int, str]:
    """``(rank, world size, where they came from)`` of this process (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    if "torch.distributed" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size(), "torch.distributed"
    try:
        if "RANK" in env and "WORLD_SIZE" in env:
            return int(env["RANK"]), int(env["WORLD_SIZE"]), "torchrun (RANK/WORLD_SIZE)"
        if "SLURM_ARRAY_TASK_COUNT" in env and "SLURM_ARRAY_TASK_ID" in env:
            step = int(env.get("SLURM_ARRAY_TASK_STEP", "1") or 1)
            task = (int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0") or 0)) // step
            tasks, procid = int(env.get("SLURM_NTASKS", "1") or 1), int(env.get("SLURM_PROCID", "0") or 0)
            return task * tasks + procid, int(env["SLURM_ARRAY_TASK_COUNT"]) * tasks, "SLURM array"
        if "SLURM_NTASKS" in env and "SLURM_PROCID" in env:
            return int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), "SLURM tasks (SLURM_PROCID/SLURM_NTASKS)"
    except ValueError as err:
        raise MapError(f"cannot read this process's rank from the environment: {err}") from None
    return 0, 1, "single process"


def scene_shard(scenes: Sequence[str | os.PathLike], env: dict[str, str] | None = None) -> tuple[list[Path], int, int]:
    """This rank's share of ``scenes`` (sorted, de-duplicated first, so every rank agrees), and (rank, world)."""
    rank, world, source = rank_world(env)
    if world < 1 or not 0 <= rank < world:
        raise MapError(f"rank {rank} of {world} from {source} is not a valid rank (use a contiguous --array=0-N)")
    unique = _unique(scenes)
    return [Path(s) for s in unique[rank::world]], rank, world


def _unique(scenes: Sequence[str | os.PathLike]) -> list[str]:
    """The scenes sorted, each once however it was spelt (``a.SAFE``, ``./a.SAFE``, ``/data/a.SAFE``)."""
    by_real: dict[str, str] = {}
    for s in scenes:
        by_real.setdefault(os.path.realpath(s), str(Path(s)))
    return sorted(by_real.values(), key=lambda s: os.path.realpath(s))


def versions() -> dict[str, Any]:
    import numpy
    import rasterio
    import torch

    from landzoo import __version__
    from landzoo.hardware import cpu_name

    return {
        "landzoo": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "cpu": cpu_name(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
    }


def is_finished(summary_path: Path, request: dict[str, Any]) -> bool:
    """Whether ``summary_path`` marks a scene finished with ``request`` (all listed files there, same sizes)."""
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(summary, dict) or summary.get("format") != "landzoo-map" or summary.get("request") != request:
        return False
    files = summary.get("files") or {}
    for name, size in files.items():
        path = summary_path.parent / name
        try:
            if path.stat().st_size != size:
                return False
        except OSError:
            return False
    return bool(files)


def _clean(out: Path, stem: str) -> None:
    """Remove what an interrupted run left of this scene: temporary files and an outdated summary."""
    for sfx in _OUTPUT_SUFFIXES:
        for p in glob.glob(os.path.join(glob.escape(str(out)), f".{glob.escape(stem)}{sfx}.*.tmp")):
            Path(p).unlink(missing_ok=True)
    (out / f"{stem}_summary.json").unlink(missing_ok=True)


def map_scenes(
    checkpoint: str | os.PathLike,
    scenes: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    options: MapOptions,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Map this rank's share of ``scenes`` into ``out``, skipping finished ones; returns each scene's summary.

    Everything that can be checked before the long work is: the output folder takes files, every scene of this
    rank opens and holds the checkpoint's bands on one grid, no two scenes share an output name.
    """
    from landzoo.mapping.model import load_map_model

    if not scenes:
        raise MapError("no scene given")
    out = check_writable_dir(out)
    stems: dict[str, str] = {}
    for s in _unique(scenes):
        stem = scene_stem(s)
        if stem in stems:
            raise MapError(f"scenes {stems[stem]} and {s} would both write {stem}_*: map them into different --out")
        stems[stem] = s
    mine, rank, world = scene_shard(scenes)
    if not mine:
        log(f"map: rank {rank} of {world} has none of the {len(stems)} scenes")
        return []
    resolve_device(options.device)  # a device this machine lacks is refused before any long work
    opened = [open_scene(p, bands=options.bands, offset=options.offset) for p in mine]
    model = load_map_model(checkpoint, threshold=options.threshold, memory_format=options.memory_format)
    for scene in opened:  # a scene that lacks a band fails now, not after hours of other scenes
        scene.layers(model.bands, scl=options.mask_clouds, offset=options.offset)
    request = {
        "map_format": MAP_FORMAT,
        "checkpoint_sha256": model.digest,
        "threshold": model.threshold,
        **options.identity(),
    }
    where = f" (rank {rank} of {world}: {len(mine)} of {len(stems)} scenes)" if world > 1 else ""
    log(f"map: {len(opened)} scene(s) with {model.arch} ({','.join(model.bands)}) into {out}{where}")
    results = []
    for scene in opened:
        summary_path = out / f"{scene.name}_summary.json"
        # the radiometric offset that applies (it changes when product metadata appears beside band files)
        log(f"{scene.name}: radiometric offset: {scene.offset_source}")
        request = {**request, "offset_source": scene.offset_source}
        if not force and is_finished(summary_path, request):
            log(f"skipped {scene.name}: finished ({summary_path})")
            results.append(json.loads(summary_path.read_text(encoding="utf-8")))
            continue
        _clean(out, scene.name)
        body = map_scene(scene, model, out, options)
        files = {name: (out / name).stat().st_size for name in body["outputs"].values()}
        summary = {
            "format": "landzoo-map",
            "request": request,
            "checkpoint": model.describe(),
            **body,
            "files": files,
            "rank": {"rank": rank, "world_size": world},
            "versions": versions(),
        }
        atomic_write_text(summary_path, json.dumps(summary, indent=2, default=str) + "\n")
        w = summary["windows"]
        log(
            f"mapped {scene.name}: {w['scored']:,} of {w['total']:,} windows scored "
            f"({w['skipped_nodata']:,} nodata, {w['skipped_cloud']:,} cloud) in {body['timings_s']['total']:.1f} s"
            f" -> {out / scene.name}_*"
        )
        results.append(summary)
    return results
