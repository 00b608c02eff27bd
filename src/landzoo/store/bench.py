"""``bench-io``: patches/s of every way landzoo can feed a model, measured in one run on the same data.

Methods, all producing batched torch tensors of the same 10 bands (BigEarthNet-v1 layout, ``s2_10m_20m``):

* ``rasterio``: the raw-GeoTIFF per-file path (the landzoo reader with its plain-TIFF fast path switched
  off: one rasterio open per band per patch, the way torchgeo reads), collated into batch tensors;
* ``reader``: the landzoo reader as it runs by default (uncompressed TIFFs parsed directly), the path
  ``encode`` reads through;
* ``torchgeo``: torchgeo's own ``BigEarthNet`` dataset class, when torchgeo is installed (an optional extra);
* ``store``: the encoded store, memory-mapped, with 0, 1 and 2 DataLoader workers (in the main process with
  the default 2 copy threads, and once more with 1), and with cold page mappings (every batch faults its
  pages in, as a store far larger than ``release_bytes`` does);
* ``store-preloaded``: the store copied into RAM first.

Encode speed (raw -> store) is measured on the way. Page caches are warm for every method (the raw files
were just generated or read once; the store was just written) so the numbers compare software paths, not
disks. Each method runs for about ``seconds`` seconds (at least one batch; the store methods skip the
first batch, which pays for worker start-up).
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landzoo.hardware import cpu_name

__all__ = ["format_table", "hardware", "memory_mb", "run_bench"]

BANDS = "s2_10m_20m"


def hardware() -> str:
    """One line: CPU model, cores, memory, GPU if any, OS, library versions."""
    cpu = cpu_name()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        mem_s = f"{mem:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        mem_s = "RAM unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{cpu}, {cores} CPU cores, {mem_s}{gpu}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
    )


def memory_mb() -> dict[str, float]:
    """This process' resident memory (MiB): total, anonymous (heap), file-backed (mapped files), and peak."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def _timed(batches: Iterable[Any], count: Callable[[Any], int], seconds: float, skip_first: bool) -> float | None:
    """patches/s over ``batches`` until ``seconds`` have passed (at least one timed batch; None if none ran)."""
    it = iter(batches)
    if skip_first:
        next(it)
    n, t0 = 0, time.perf_counter()
    for batch in it:
        n += count(batch)
        if time.perf_counter() - t0 >= seconds:
            break
    dt = time.perf_counter() - t0
    return n / dt if dt > 0 and n else None


def _epochs(loader: Any) -> Iterable[Any]:
    epoch = 0
    while True:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _reader_batches(reader: Any, batch_size: int) -> Iterable[dict[str, Any]]:
    """The raw path as a training loop would see it: read each patch, stack the batch into tensors."""
    order = np.random.default_rng(0).permutation(len(reader))
    for start in range(0, len(order), batch_size):
        samples = [reader[int(i)] for i in order[start : start + batch_size]]
        yield {
            "image": {g: torch.from_numpy(np.stack([s["image"][g] for s in samples])) for g in samples[0]["image"]},
            "label": torch.from_numpy(np.stack([s["label"] for s in samples])).float(),
        }


def _torchgeo_row(root: Path, ids: Sequence[str], batch_size: int, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {"method": "torchgeo BigEarthNet (GeoTIFF per file)", "workers": 0, "patches_per_s": None}
    try:
        import torchgeo
        from torchgeo.datasets import BigEarthNet
    except ImportError:
        row["note"] = "not installed (pip install 'landzoo[torchgeo]')"
        return row
    try:
        # torchgeo wants <root>/BigEarthNet-v1.0/<patch> and bigearthnet-{train,val,test}.csv with "S2,S1" rows.
        tg = Path(tempfile.mkdtemp(prefix="landzoo-torchgeo-"))
        try:
            (tg / "BigEarthNet-v1.0").symlink_to(root.resolve())
            rows = "".join(f"{i},{i}\n" for i in ids)
            for split in ("train", "val", "test"):  # torchgeo checks that all three split files exist
                (tg / f"bigearthnet-{split}.csv").write_text(rows)
            ds = BigEarthNet(str(tg), split="train", bands="s2", num_classes=19)
            loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0)
            row["patches_per_s"] = _timed(loader, lambda b: len(b["image"]), seconds, skip_first=False)
            # its bands="s2" reads all 12 bands (2 more files than the others) and resamples them in rasterio
            row["note"] = f"torchgeo {getattr(torchgeo, '__version__', '?')}: 12 bands, resampled to 120 px on read"
        finally:
            shutil.rmtree(tg, ignore_errors=True)
    except Exception as err:  # an optional comparison must not sink the benchmark; say why it is missing
        row["note"] = f"failed: {type(err).__name__}: {err}"
    return row


def run_bench(
    data: str | os.PathLike | None = None,
    *,
    patches: int = 4096,
    batch_size: int = 256,
    workers: Sequence[int] = (0, 1, 2),
    seconds: float = 5.0,
    raw_seconds: float = 6.0,
    encode_workers: int = 2,
    work_dir: str | os.PathLike | None = None,
    keep: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure every input path on the same data; return ``{"hardware", "results": [...], "encode", ...}``.

    ``data``: a BigEarthNet-v1 folder, or ``None``/``"generate"`` to generate ``patches`` synthetic patches.
    """
    from landzoo.datasets import open_dataset, rawtiff
    from landzoo.store.encode import encode
    from landzoo.store.reader import StoreDataset

    load_before = _load()
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="landzoo-bench-io-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if data is None or str(data) == "generate":
            from landzoo.synthetic import generate

            log(f"generating {patches} synthetic BigEarthNet-v1 patches in {work / 'raw'} ...")
            raw = generate(
                "bigearthnet-v1", work / "raw", patches=patches, seed=0, workers=2, progress=progress, overwrite=True
            )
        else:
            raw = Path(data)
        reader = open_dataset("bigearthnet-v1", raw, bands=BANDS)
        if not len(reader):
            raise ValueError(f"no BigEarthNet-v1 patches in {raw}")
        patch_dir = reader.patches_dir if hasattr(reader, "patches_dir") else raw
        reader[0]  # loads the reader's per-process tables (country/season) outside the timed part
        for record in reader.records:  # warm the page cache for the raw files too (fair comparison)
            for f in (reader.root / record.location).iterdir():
                f.read_bytes()

        store_dir = work / "store"
        shutil.rmtree(store_dir, ignore_errors=True)
        log(f"encoding {len(reader)} patches with {encode_workers} workers ...")
        enc = encode("bigearthnet-v1", raw, store_dir, bands=BANDS, workers=encode_workers, progress=progress)
        store_split = None  # the whole store: every patch the reader lists
        results: list[dict[str, Any]] = []

        log("rasterio per-file path ...")
        rawtiff.ENABLED = False
        try:
            rate = _timed(_reader_batches(reader, batch_size), lambda b: len(b["label"]), raw_seconds, False)
        finally:
            rawtiff.ENABLED = True
        results.append({"method": "rasterio (GeoTIFF per file)", "workers": 0, "patches_per_s": rate})
        results.append(_torchgeo_row(patch_dir, reader.ids(), batch_size, raw_seconds))
        log("landzoo reader (plain-TIFF fast path) ...")
        rate = _timed(_reader_batches(reader, batch_size), lambda b: len(b["label"]), raw_seconds, False)
        results.append({"method": "landzoo reader (plain-TIFF parse, per file)", "workers": 0, "patches_per_s": rate})

        memory: dict[str, Any] = {}
        for w in workers:
            log(f"store, memory-mapped, {w} loader worker(s) ...")
            ds = StoreDataset(store_dir, store_split, bands=BANDS)
            loader = ds.loader(batch_size, shuffle=True, num_workers=w)
            before = memory_mb()
            rate = _timed(_epochs(loader), lambda b: len(b["id"]), seconds, skip_first=True)
            results.append({"method": "store (memory-mapped)", "workers": w, "patches_per_s": rate})
            if w == 0:
                memory["store_w0"] = {"before": before, "after": memory_mb()}
            del loader, ds

        log("store, memory-mapped, pages dropped after every batch ...")
        # A real training split (43 GB) is far larger than release_bytes: its reads find unmapped pages and fault
        # them in. release_bytes=1 makes this small store behave so, to show that cost honestly.
        ds = StoreDataset(store_dir, store_split, bands=BANDS, release_bytes=1)
        rate = _timed(_epochs(ds.loader(batch_size, shuffle=True)), lambda b: len(b["id"]), seconds, skip_first=True)
        results.append(
            {
                "method": "store (memory-mapped, cold page mappings)",
                "workers": 0,
                "patches_per_s": rate,
                "note": "pages dropped after every batch, as in a store far larger than release_bytes",
            }
        )
        del ds

        log("store, memory-mapped, main process, 1 copy thread ...")
        ds = StoreDataset(store_dir, store_split, bands=BANDS, threads=1)
        rate = _timed(_epochs(ds.loader(batch_size, shuffle=True)), lambda b: len(b["id"]), seconds, skip_first=True)
        results.append({"method": "store (memory-mapped, 1 copy thread)", "workers": 0, "patches_per_s": rate})
        del ds

        log("store, preloaded into RAM ...")
        ds = StoreDataset(store_dir, store_split, bands=BANDS, mode="ram")
        rate = _timed(_epochs(ds.loader(batch_size, shuffle=True)), lambda b: len(b["id"]), seconds, skip_first=True)
        results.append({"method": "store (preloaded in RAM)", "workers": 0, "patches_per_s": rate})
        memory["preloaded"] = memory_mb()
        del ds

        base = results[0]["patches_per_s"]
        for r in results:
            v = r["patches_per_s"]
            r["speedup_vs_rasterio"] = (v / base) if v and base else None
        store_size = sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file())
        return {
            "hardware": hardware(),
            "data": "synthetic (landzoo generate)" if data is None or str(data) == "generate" else str(raw),
            "layout": "BigEarthNet-v1",
            "bands": BANDS,
            "patches": len(reader),
            "batch_size": batch_size,
            "results": results,
            "encode": {
                "workers": encode_workers,
                "patches": enc.encoded,
                "seconds": enc.encode_seconds,
                "seconds_with_setup": enc.seconds,
                "patches_per_s": enc.patches_per_s,
                "store_bytes": store_size,
            },
            "memory_mb": memory,
            # other processes on the cores slow every method; the 1-minute load average says how busy it was
            "load_average_1m": {"start": load_before, "end": _load()},
        }
    finally:
        if not keep and work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def format_table(report: dict[str, Any]) -> str:
    """The results as a fixed-width text table."""
    lines = [
        f"bench-io: {report['patches']} patches ({report['data']}, {report['layout']} layout, {report['bands']}), "
        f"batch {report['batch_size']}",
        f"hardware: {report['hardware']}",
        f"load average (1 min) at start/end: {report['load_average_1m']['start']}/{report['load_average_1m']['end']}",
        "",
        f"{'method':<45} {'workers':>7} {'patches/s':>11} {'x rasterio':>10}",
        "-" * 76,
    ]
    for r in report["results"]:
        v = r["patches_per_s"]
        rate = f"{v:>11,.0f}" if v is not None else f"{'-':>11}"
        sp = r.get("speedup_vs_rasterio")
        speed = f"{sp:>9,.0f}x" if sp else f"{'':>10}"
        note = f"  ({r['note']})" if r.get("note") else ""
        lines.append(f"{r['method']:<45} {r['workers']:>7} {rate} {speed}{note}")
    e = report["encode"]
    lines += [
        "",
        f"encode (raw -> store): {e['patches']} patches in {e['seconds']:.1f} s = {e['patches_per_s']:,.0f} patches/s "
        f"with {e['workers']} workers ({e['seconds_with_setup']:.1f} s with opening the reader and writing the index); "
        f"store {e['store_bytes'] / 2**20:.0f} MiB",
    ]
    return "\n".join(lines)
