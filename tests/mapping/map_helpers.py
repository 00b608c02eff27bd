"""Helpers of the mapping tests: a tiny checkpoint, independent window reads, BigEarthNet-v1 patches from a scene."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from landzoo import contract
from landzoo.synthetic import geo
from landzoo.synthetic.bigearthnet_v1 import band_layout

REPO = Path(__file__).resolve().parents[2]
#: The real wrn_eca_b0 (306k parameters; a few ms per window). Not a narrower one: PyTorch's CPU elementwise
#: kernels compute the tail of a vector loop with scalar code, so the ECA gate of a [batch, channels] tensor whose
#: size is not a multiple of the vector width differs in the last bit between batch sizes, and the consistency
#: test compares map and predict (different batches) exactly. Its 32/64/128 channels never leave a tail.
ARCH_KWARGS: dict = {}


def make_checkpoint(path: Path, *, bands: str = "s2_10m_20m", arch: str = "wrn_eca_b0", seed: int = 0) -> Path:
    """An untrained zoo model with fixed seed, saved as a landzoo safetensors checkpoint with its contract."""
    import torch

    from landzoo.checkpoint import DataContract, save_checkpoint
    from landzoo.models import create_model

    torch.manual_seed(seed)
    model = create_model(arch, bands=bands, classes="ben19", **ARCH_KWARGS)
    with torch.no_grad():  # move BatchNorm statistics off their defaults, so outputs vary from class to class
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # the paper's init draws gamma ~ U(-0.05, 0.05): near-constant
                m.weight.uniform_(0.8, 1.6)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    dc = DataContract.from_names(bands, "ben19", model.input_size)
    return save_checkpoint(path, model.state_dict(), dc, arch=arch, arch_kwargs=ARCH_KWARGS)


def band_file(safe: Path, band: str, res: int | None = None) -> Path:
    """The JP2 of ``band`` at ``res`` m (its native resolution by default) in a .SAFE folder."""
    res = res or contract.band(band).gsd_m
    (path,) = safe.glob(f"GRANULE/*/IMG_DATA/R{res}m/*_{band}_{res}m.jp2")
    return path


def read_window(path: Path, row: int, col: int, side: int, step: int | None = None) -> np.ndarray:
    """Window (row, col) of a grid of ``side`` px windows every ``step`` px, read directly with rasterio."""
    step = step or side
    with rasterio.open(path) as ds:
        return ds.read(1, window=Window(col * step, row * step, side, side))


def write_ben_patches(
    safe: Path, root: Path, cells: list[tuple[int, int]], *, offset: int = 1000, labels: dict | None = None
) -> list[str]:
    """Cut windows of the 1200 m grid out of the product's JP2s and write them as BigEarthNet-v1 patches.

    Values lose the product's offset (``DN - offset``, clipped at 0), as BigEarthNet stores them. Patch
    (row, col) is named ``S2B_MSIL2A_20240612T102559_<col>_<row>`` and listed in ``splits/test.csv``.
    """
    with rasterio.open(band_file(safe, "B02")) as ds:
        ulx, uly, zone = ds.transform.c, ds.transform.f, int(ds.crs.to_epsg()) - 32600
    folder = root / "BigEarthNet-v1.0"
    names = []
    for row, col in cells:
        name = f"S2B_MSIL2A_20240612T102559_{col}_{row}"
        (folder / name).mkdir(parents=True, exist_ok=True)
        x, y = ulx + 1200 * col, uly - 1200 * row
        for band in contract.S2_L2A_BANDS:
            side = contract.band(band).ben_patch_px
            raw = read_window(band_file(safe, band), row, col, side).astype(np.int64)
            arr = np.clip(raw - offset, 0, 65535).astype(np.uint16)
            (folder / name / f"{name}_{band}.tif").write_bytes(band_layout(band, zone).encode(arr, x, y))
        meta = {
            "labels": (labels or {}).get((row, col), ["Coniferous forest"]),
            "coordinates": {"ulx": x, "uly": y, "lrx": x + 1200, "lry": y - 1200},
            "projection": geo.utm_wkt(zone),
            "tile_source": "S2B_MSIL1C_20240612T102559_N0510_R108_T32TNS_20240612T112214.SAFE",
            "acquisition_date": "2024-06-12 10:25:59",
        }
        (folder / name / f"{name}_labels_metadata.json").write_text(json.dumps(meta))
        names.append(name)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    (root / "splits" / "test.csv").write_bytes("".join(f"{n}\r\n" for n in names).encode())
    return names


def map_cli(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """``python -m landzoo map ARGS`` in a subprocess (single-threaded torch, as the tests run)."""
    e = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "landzoo", "map", *args],
        cwd=REPO,
        env=e,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def read_all(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def outputs(out: Path, stem: str) -> dict[str, Path]:
    return {k: out / f"{stem}_{k}.{'png' if k == 'quicklook' else 'json' if k == 'summary' else 'tif'}" for k in (
        "probs", "labels", "class", "quicklook", "summary"
    )}  # fmt: skip
