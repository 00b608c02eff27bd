"""``landzoo bench-map``: how fast a whole Sentinel-2 tile is mapped, and where the time goes.

On a synthetic full-size tile (10,980 x 10,980 px at 10 m, no nodata corner and no clouds so every window is
scored; generated once into ``--work-dir`` and reused), it measures:

* **read rows**: the scene read alone (every band the model needs, windowed by strips, windows cut out, no
  model), from the band COGs (DEFLATE) and from the ``.SAFE`` JPEG 2000 files, with 1 or 2 threads over bands
  and 1 or all GDAL threads per file: what JPEG 2000 decoding costs, and whether the thread pool helps;
* **map rows**: ``landzoo map`` end to end in a fresh process per row (what a user waits for: start-up,
  checkpoint loading, manifest verification, reading, inference, writing the COGs and the quicklook), with its
  own split read / infer / write from the summary, windows/s, and the process's peak resident memory;
* the machine and versions beside the numbers.

The GPU figure comes from the same command on a GPU machine (``--device cuda``); only the COG input is needed
there (``--inputs tif`` generates no JPEG 2000 at all).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["FULL_TILE_KM", "format_table", "run_bench"]

#: A Sentinel-2 tile: 109.8 km, 10,980 px at 10 m.
FULL_TILE_KM = 109.8


def _scene(
    work: Path, size_km: float, inputs: Sequence[str], workers: int, log: Callable[[str], None], progress: bool = True
) -> Any:
    from landzoo.synthetic.s2_product import ScenePaths, generate_s2_scene, product_names

    folder = work / f"scene-{size_km:g}km"
    done = folder / "done.json"
    need_jp2 = "safe" in inputs
    if done.is_file():
        meta = json.loads(done.read_text())
        if meta.get("jp2") or not need_jp2:
            safe = folder / f"{meta['product']}.SAFE"
            return ScenePaths(
                meta["product"], safe if meta.get("jp2") else None, folder / f"{meta['product']}_tif", None, Path()
            )
    from datetime import datetime

    product = product_names("T32TNS", "S2B", datetime(2024, 6, 12, 10, 25, 59), "05.10")["product"]
    log(f"generating a {size_km:g} km synthetic scene in {folder} (once; reused by later runs) ...")
    t0 = time.perf_counter()
    paths = generate_s2_scene(
        folder, size_km=size_km, seed=0, nodata_corner=0.0, clouds=0.0, jp2=need_jp2, workers=workers,
        overwrite=True, progress=progress,
    )  # fmt: skip
    done.write_text(json.dumps({"product": product, "jp2": need_jp2, "seconds": time.perf_counter() - t0}))
    return paths


def _checkpoint(work: Path, arch: str) -> Path:
    import torch

    from landzoo.checkpoint import DataContract, save_checkpoint
    from landzoo.models import create_model

    path = work / "checkpoint" / f"{arch}.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        model = create_model(arch, bands="s2_10m_20m", classes="ben19")
        dc = DataContract.from_names("s2_10m_20m", "ben19", model.input_size)
        save_checkpoint(path, model.state_dict(), dc, arch=arch)
    return path


def read_only(scene_path: Path, bands: Sequence[str], band_threads: int, gdal_threads: int | str) -> dict[str, Any]:
    """Read the whole scene as ``map`` does (strips, windows cut out) without a model; seconds and windows."""
    from landzoo import contract
    from landzoo.mapping.grid import WindowGrid
    from landzoo.mapping.reader import StripReader
    from landzoo.mapping.sources import open_scene

    scene = open_scene(scene_path)
    layers, _, sgrid = scene.layers(bands)
    grid = WindowGrid.build(sgrid.origin, sgrid.width_m, sgrid.height_m, 1200, [la.gsd for la in layers])
    by = {la.band: la for la in layers}
    groups = {g: [by[b] for b in names] for g, names in contract.band_groups(bands).items()}
    reader = StripReader(grid, groups, batch=256, band_threads=band_threads, gdal_threads=gdal_threads)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    n = sum(batch.size for batch in reader)
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(time.process_time() - cpu0, 2),
        "windows": n,
        "windows_per_s": round(n / seconds, 1),
        "decoded_mb": round(reader.read_bytes / 2**20, 1),
    }


def _map_process(checkpoint: Path, scene_path: Path, out: Path, extra: Sequence[str]) -> dict[str, Any]:
    """``landzoo map`` in a fresh process: wall time, peak memory (from the kernel), and its summary."""
    cmd = [sys.executable, "-m", "landzoo", "map", str(checkpoint), str(scene_path), "--out", str(out), "--force"]
    import tempfile

    # the child's output goes to files, not pipes: a child that writes more than a pipe holds cannot block
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        t0 = time.perf_counter()
        proc = subprocess.Popen([*cmd, "--no-progress", *extra], stdout=out_f, stderr=err_f, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        wall = time.perf_counter() - t0
        out_f.seek(0)
        err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {stderr.strip() or stdout.strip()}")
    (summary_path,) = out.glob("*_summary.json")
    summary = json.loads(summary_path.read_text())
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "summary": summary,
    }


def run_bench(
    work_dir: str | os.PathLike,
    *,
    size_km: float = FULL_TILE_KM,
    checkpoint: str | os.PathLike | None = None,
    arch: str = "wrn_eca_b0",
    inputs: Sequence[str] = ("tif", "safe"),
    strides: Sequence[int] = (1200, 600),
    read_configs: Sequence[tuple[int, int | str]] = ((1, 1), (2, 1), (2, "ALL_CPUS")),
    map_options: Sequence[str] = (),
    workers: int = 2,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate (once) and map a synthetic scene; see the module docstring. Returns the report dict."""
    import rasterio
    import torch

    from landzoo import __version__, contract
    from landzoo.store.bench import hardware

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    scene = _scene(work, size_km, inputs, workers, log, progress)
    ckpt = Path(checkpoint) if checkpoint else _checkpoint(work, arch)
    paths = {"tif": scene.tif, "safe": scene.safe}
    bands = contract.BAND_SELECTIONS["s2_10m_20m"]
    load0 = os.getloadavg()[0]
    report: dict[str, Any] = {
        "hardware": hardware(),
        "versions": {"landzoo": __version__, "torch": torch.__version__, "gdal": rasterio.__gdal_version__},
        "scene": {
            "size_km": size_km,
            "pixels_10m": round(size_km * 100),
            "bands": list(bands),
            "product": scene.product,
        },
        "checkpoint": str(ckpt),
        "read": [],
        "map": [],
    }
    for inp in inputs:
        for band_threads, gdal_threads in read_configs:
            row = {"input": inp, "band_threads": band_threads, "gdal_threads": gdal_threads}
            load_before = os.getloadavg()[0]
            row.update(read_only(paths[inp], bands, band_threads, gdal_threads))
            row["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            report["read"].append(row)
            log(f"read {inp:<4} band threads {band_threads}, GDAL threads {gdal_threads!s:<8} {row['seconds']:>7.1f} s")
    for inp in inputs:
        for stride in strides if inp == "tif" else strides[:1]:
            out = work / f"out-{inp}-{stride}"
            load_before = os.getloadavg()[0]
            res = _map_process(ckpt, paths[inp], out, ["--stride", str(stride), *map_options])
            s = res["summary"]
            row = {
                "input": inp,
                "stride_m": stride,
                "windows": s["windows"]["total"],
                "scored": s["windows"]["scored"],
                "command_wall_s": res["wall_s"],
                "command_cpu_s": res["cpu_s"],
                "map_s": s["timings_s"]["total"],
                "windows_per_s": s["windows_per_s"],
                "timings_s": s["timings_s"],
                "peak_rss_mb": res["peak_rss_mb"],
                "memory_bound_mb": s["memory_bound_mb"],
                "device": s["device"],
                "threads": s["threads"],
                "options": list(map_options),
                "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
            report["map"].append(row)
            log(
                f"map  {inp:<4} stride {stride:>4} m: {row['scored']:,} windows, {row['map_s']:.1f} s "
                f"({row['command_wall_s']:.1f} s with start-up), {row['windows_per_s']:.0f} windows/s, "
                f"peak RSS {row['peak_rss_mb']:.0f} MiB"
            )
    report["load_average_1m"] = {"start": round(load0, 2), "end": round(os.getloadavg()[0], 2)}
    return report


def format_table(report: dict[str, Any]) -> str:
    """The report as two Markdown tables."""
    lines = [f"{report['hardware']}", "", "| input | stride m | windows | end to end s | map s | read s | infer s |"
             " write s | windows/s | CPU s | peak RSS MiB | load |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in report["map"]:
        t = r["timings_s"]
        lines.append(
            f"| {r['input']} | {r['stride_m']} | {r['scored']:,} | {r['command_wall_s']:.1f} | {r['map_s']:.1f} | "
            f"{t['read']:.1f} | {t['infer']:.1f} | {t['write'] + t['quicklook']:.1f} | {r['windows_per_s']:.0f} | "
            f"{r['command_cpu_s']:.0f} | {r['peak_rss_mb']:.0f} | {r['load_average_1m'][0]:.1f} |"
        )
    lines += [
        "",
        "| read only | band threads | GDAL threads | s | CPU s | MiB decoded |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["read"]:
        lines.append(
            f"| {r['input']} | {r['band_threads']} | {r['gdal_threads']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} "
            f"| {r['decoded_mb']:,.0f} |"
        )
    return "\n".join(lines)
