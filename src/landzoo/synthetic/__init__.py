"""Format-exact synthetic copies of BigEarthNet v1/v2, SEN12MS and EuroSAT, with a learnable signal.

``generate("bigearthnet-v1", out, patches=1000, seed=0)`` writes the dataset exactly as the real one is laid
out on disk (file names, TIFF structure, JSON/parquet/pickle/split-list formats) and returns the root to hand
to :func:`landzoo.datasets.open_dataset`. :func:`synthesize` does the same and also returns the ground truth
(labels, splits and optionally the pixel arrays as written), which never goes into the dataset folder.

How pixels are made: :mod:`landzoo.synthetic.scene` (segmentation, textures, sensor) from the shared kind
table in :mod:`landzoo.synthetic.signatures`; how files are written: :mod:`landzoo.synthetic.tiff`.

Determinism: the plan (names, splits, georeferencing) comes from ``seed``; each patch's pixels come from
``(seed, dataset, patch index)`` only, and texture banks from ``seed``. So the same seed and count give
byte-identical files whatever the number of worker processes.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import shutil
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landzoo.errors import LandzooError

__all__ = ["DATASETS", "GenerateError", "Generated", "PatchTruth", "generate", "patch_rng", "synthesize"]

#: Dataset name -> module that writes it.
DATASETS: dict[str, str] = {
    "bigearthnet-v1": "landzoo.synthetic.bigearthnet_v1",
    "bigearthnet-v2": "landzoo.synthetic.bigearthnet_v2",
    "sen12ms": "landzoo.synthetic.sen12ms",
    "eurosat": "landzoo.synthetic.eurosat",
}


class GenerateError(LandzooError):
    """A bad generation request (unknown dataset, bad count or seed, output folder in the way)."""


@dataclass
class PatchTruth:
    """What the generator intended for one patch: id, split, labels (in the dataset's own class set), extras.

    ``labels`` are BigEarthNet-43 names for v1, BigEarthNet-19 names for v2, IGBP-17 names present in the
    LC map for SEN12MS (``meta["igbp_fractions"]`` holds the exact fractions) and the class for EuroSAT.
    ``arrays`` (with ``keep_arrays=True``) maps band name -> the array written to disk.
    """

    id: str
    split: str | None
    labels: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] | None = None


@dataclass
class Generated:
    """Result of :func:`synthesize`: the root to open with the reader, and the ground truth per patch."""

    dataset: str
    root: Path
    seed: int
    patches: list[PatchTruth]

    def by_id(self) -> dict[str, PatchTruth]:
        return {p.id: p for p in self.patches}


def _module(dataset: str) -> Any:
    try:
        return importlib.import_module(DATASETS[dataset])
    except KeyError:
        raise GenerateError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}") from None


def _salt(dataset: str) -> int:
    return zlib.crc32(dataset.encode())


def patch_rng(seed: int, dataset: str, index: int) -> np.random.Generator:
    """The random generator of patch ``index``: a pure function of (seed, dataset, index)."""
    return np.random.default_rng([seed, _salt(dataset), 1, index])


_BANKS: dict[int, Any] = {}


def _bank(seed: int) -> Any:
    from landzoo.synthetic.scene import Bank

    if seed not in _BANKS:
        _BANKS.clear()
        _BANKS[seed] = Bank(seed)
    return _BANKS[seed]


def _run_chunk(
    dataset: str, seed: int, options: dict[str, Any], root: str, jobs: Sequence[Any], keep_arrays: bool
) -> list[PatchTruth]:
    """Render and write ``jobs`` (runs in a worker process or in-process)."""
    mod = _module(dataset)
    bank = _bank(seed)
    return [mod.make(job, patch_rng(seed, dataset, job.index), bank, options, Path(root), keep_arrays) for job in jobs]


def _prepare_out(out: Path, outputs: Sequence[str], overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise GenerateError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise GenerateError(
                f"output folder {out} is not empty (pass --overwrite to replace what the generator writes there)"
            )
        for name in outputs:  # only what this dataset writes; anything else in OUT is left alone
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def synthesize(
    dataset: str,
    out: str | os.PathLike,
    patches: int,
    seed: int = 0,
    *,
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = True,
    keep_arrays: bool = False,
    **options: Any,
) -> Generated:
    """Write a synthetic ``dataset`` of ``patches`` patches under ``out``; return the root and the ground truth.

    Options by dataset: ``s1=True`` (BigEarthNet v1/v2, SEN12MS: also write Sentinel-1 patches),
    ``patch_px`` (SEN12MS: patch side, default 256), ``flagged`` (BigEarthNet v2: how many snow/cloud
    patches go to the second parquet, default ``ceil(patches / 20)``).
    """
    mod = _module(dataset)
    if isinstance(patches, bool) or not isinstance(patches, int) or patches < 1:
        raise GenerateError(f"the number of patches must be a positive integer, not {patches!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise GenerateError(f"the seed must be a non-negative integer, not {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise GenerateError(f"workers must be a positive integer, not {workers!r}")
    options = mod.check_options(patches, dict(options))
    out = Path(out)
    try:
        _prepare_out(out, mod.OUTPUTS, overwrite)
        plan_rng = np.random.default_rng([seed, _salt(dataset), 0])
        jobs = mod.plan(plan_rng, patches, options)
        truths = _render(dataset, seed, options, out, jobs, keep_arrays, workers, progress)
        root = mod.finish(out, jobs, truths, options)
    except OSError as err:  # disk full, no permission, ...: the message names the file
        raise GenerateError(f"cannot write the {dataset} dataset under {out}: {err}") from None
    return Generated(dataset, root, seed, truths)


def _render(
    dataset: str,
    seed: int,
    options: dict[str, Any],
    out: Path,
    jobs: Sequence[Any],
    keep_arrays: bool,
    workers: int,
    progress: bool,
) -> list[PatchTruth]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc=f"generating {dataset}", unit="patch", disable=not progress)
    chunk = max(1, min(64, math.ceil(len(jobs) / (workers * 8))))
    chunks = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    results: list[list[PatchTruth]] = [[] for _ in chunks]
    try:
        if workers == 1 or len(chunks) == 1:
            for i, part in enumerate(chunks):
                results[i] = _run_chunk(dataset, seed, options, str(out), part, keep_arrays)
                bar.update(len(part))
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            ctx = multiprocessing.get_context(method)
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = {
                    pool.submit(_run_chunk, dataset, seed, options, str(out), part, keep_arrays): i
                    for i, part in enumerate(chunks)
                }
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update(len(chunks[futures[fut]]))
    finally:
        bar.close()
    return [t for part in results for t in part]


def generate(
    dataset: str,
    out: str | os.PathLike,
    patches: int,
    seed: int = 0,
    *,
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Write a synthetic ``dataset`` under ``out`` in its exact on-disk format; return the root for the reader."""
    return synthesize(
        dataset, out, patches, seed, workers=workers, overwrite=overwrite, progress=progress, **options
    ).root
