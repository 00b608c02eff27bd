"""One scene through the model: windows in, averaged map rows out, reading and inference overlapped.

The loop (all of it bounded in memory, see :mod:`landzoo.mapping.reader`):

1. the read-ahead thread yields batches of raw windows of one window row (nodata and cloudy windows
   already left out);
2. the batch goes to the device as raw integers, becomes float there, gets the product's radiometric offset
   (clipped at 0, as pre-04.00 products stored it) and enters the model's own stem, which normalises and
   resamples each band group exactly as in training and ``landzoo predict``. On a CPU, batches run in
   parallel in one thread per core, each with one intra-op thread: measured on the 2-core VM under load, 6.9
   ms of CPU per window against 9.7 ms with one batch at a time over two intra-op threads (whose OpenMP
   threads spin at every barrier while the other waits); results come back in order;
3. when a window row is complete it is added to a ring of ``k`` accumulating map rows (``k`` = footprint /
   stride); the map row no later window can touch is averaged (float64 sums, mean cast to float32) and
   handed to the writers.

With the default stride a map pixel is one window, so its probability is the model's float32 output itself:
the same number ``landzoo predict`` gives for that patch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landzoo.mapping.errors import MapError
from landzoo.mapping.grid import FOOTPRINT_M, WindowGrid
from landzoo.mapping.model import MapModel
from landzoo.mapping.reader import RGB, ReadAhead, StripReader, WindowBatch, auto_threads
from landzoo.mapping.sources import Scene
from landzoo.mapping.writers import DTYPES, MapWriter

__all__ = ["MapOptions", "RowAccumulator", "map_scene", "memory_bound", "resolve_device"]

#: Side (px) the quicklook panels are decimated to, at most.
QUICKLOOK_PX = 1000


@dataclass(frozen=True)
class MapOptions:
    """How scenes are mapped; the first group decides the map's content (and a finished map's identity)."""

    stride: int = FOOTPRINT_M
    dtype: str = "uint8"
    mask_clouds: bool = False
    cloud_threshold: float = 0.1
    nodata_threshold: float = 0.0
    offset: float | None = None
    bands: tuple[str, ...] | None = None
    threshold: float | None = None
    # how fast, not what: never part of a map's identity
    batch_size: int = 256
    band_threads: int = 0
    gdal_threads: int | str = 0
    prefetch: int = 3
    infer_threads: int = 0
    device: str = "auto"
    memory_format: str = "channels_last"
    verify: bool = True
    quicklook: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise MapError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        for name in ("cloud_threshold", "nodata_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise MapError(f"{name.replace('_', '-')} {v} must be a fraction in [0, 1)")
        if self.batch_size < 1 or self.band_threads < 0 or self.prefetch < 1 or self.infer_threads < 0:
            raise MapError("batch size and prefetch depth must be positive, thread counts not negative")

    def identity(self) -> dict[str, Any]:
        """What makes two maps of one scene the same map (resume compares it)."""
        keep = ("stride", "dtype", "mask_clouds", "nodata_threshold", "offset", "bands", "quicklook")
        out = {k: v for k, v in asdict(self).items() if k in keep}
        out["bands"] = list(self.bands) if self.bands else None
        if self.mask_clouds:
            out["cloud_threshold"] = self.cloud_threshold
        return out


def resolve_device(name: str) -> Any:
    """``auto``: this process's GPU (``LOCAL_RANK`` under torchrun/SLURM) when CUDA is available, else the CPU."""
    import os

    import torch

    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")))
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise MapError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:1, auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MapError(f"--device {name}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MapError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda"):
        raise MapError(f"--device {name}: landzoo map runs on cpu or cuda")
    return dev


class RowAccumulator:
    """Averages window rows onto map rows: window row ``r`` covers map rows ``r .. r + k - 1``, columns likewise."""

    def __init__(self, grid: WindowGrid, classes: int) -> None:
        self.grid, self.k = grid, grid.k
        self.sum = np.zeros((self.k, grid.cell_cols, classes), dtype=np.float64)
        self.count = np.zeros((self.k, grid.cell_cols), dtype=np.int64)

    def add(self, row: int, probs: np.ndarray) -> tuple[int, np.ndarray]:
        """Add window row ``row`` (``[cols, classes]``, NaN = not scored); returns the map row now complete."""
        valid = ~np.isnan(probs[:, 0])
        p = np.where(valid[:, None], probs, 0.0).astype(np.float64)
        n = probs.shape[0]
        for dy in range(self.k):
            slot = (row + dy) % self.k
            for dx in range(self.k):
                self.sum[slot, dx : dx + n] += p
                self.count[slot, dx : dx + n] += valid
        return row, self._emit(row)

    def _emit(self, row: int) -> np.ndarray:
        slot = row % self.k
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (self.sum[slot] / self.count[slot][:, None]).astype(np.float32)
        mean[self.count[slot] == 0] = np.nan
        self.sum[slot] = 0.0
        self.count[slot] = 0
        return mean

    def finish(self) -> Iterator[tuple[int, np.ndarray]]:
        """The last ``k - 1`` map rows, below the last window row."""
        for row in range(self.grid.rows, self.grid.cell_rows):
            yield row, self._emit(row)


def _offsets(groups: dict[str, list[Any]], device: Any) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for g, layers in groups.items():
        values = [la.offset for la in layers]
        out[g] = None if not any(values) else torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return out


def _infer(model: MapModel, batch: WindowBatch, offsets: dict[str, Any], device: Any) -> tuple[np.ndarray, float]:
    """Probabilities ``[windows, classes]`` of one batch, and the seconds it took."""
    import torch

    t0 = time.perf_counter()
    x = {}
    for g, arr in batch.groups.items():
        t = torch.from_numpy(arr).to(device, non_blocking=True).float()
        if offsets[g] is not None:
            t = (t + offsets[g]).clamp_(min=0.0)
        x[g] = t
    with torch.inference_mode():
        probs = model.module.predict_proba(x)
    return probs.float().cpu().numpy(), time.perf_counter() - t0


class InferencePool:
    """Batches through the model in ``threads`` threads (one intra-op thread each on a CPU), results in order.

    ``threads == 1`` runs in the caller's thread with torch's own intra-op threads (the GPU case). At most
    ``2 * threads`` batches are in flight, so memory stays bounded.
    """

    def __init__(self, threads: int, cpu: bool) -> None:
        import torch

        self.threads = max(1, threads)
        self.pool: ThreadPoolExecutor | None = None
        self._torch_threads = torch.get_num_threads()
        if self.threads > 1:
            if cpu:
                torch.set_num_threads(1)
            self.pool = ThreadPoolExecutor(
                self.threads, thread_name_prefix="landzoo-map-infer", initializer=_one_thread if cpu else None
            )
        self.pending: deque[tuple[Any, Future | None]] = deque()

    def submit(self, item: Any, fn: Any, *args: Any) -> Iterator[tuple[Any, Any]]:
        """Queue ``fn(*args)`` for ``item`` (``fn`` None: nothing to run); yield the items now done, in order."""
        if fn is None:
            fut = None
        elif self.pool is None:
            fut = Future()
            fut.set_result(fn(*args))
        else:
            fut = self.pool.submit(fn, *args)
        self.pending.append((item, fut))
        yield from self._drain(2 * self.threads)

    def _drain(self, keep: int) -> Iterator[tuple[Any, Any]]:
        while len(self.pending) > keep or (self.pending and (self.pending[0][1] is None or self.pending[0][1].done())):
            item, fut = self.pending.popleft()
            yield item, None if fut is None else fut.result()

    def finish(self) -> Iterator[tuple[Any, Any]]:
        yield from self._drain(0)

    def close(self) -> None:
        import torch

        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(self._torch_threads)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def map_scene(scene: Scene, model: MapModel, out_dir: Path, options: MapOptions) -> dict[str, Any]:
    """Map ``scene`` into ``out_dir`` (probs/labels/class COGs and the quicklook); returns the summary dict.

    The summary is not written here: :func:`landzoo.mapping.run.map_scenes` writes it last, as the mark of
    a finished scene.
    """
    from tqdm.auto import tqdm

    from landzoo.mapping.quicklook import render_quicklook

    t_start, cpu_start = time.perf_counter(), time.process_time()
    device = resolve_device(options.device)
    model.module.to(device)
    band_groups = model.groups()
    layers, scl, sgrid = scene.layers(model.bands, scl=options.mask_clouds, offset=options.offset)
    t0 = time.perf_counter()
    layers_checked = [*layers, *([scl] if scl else [])]
    integrity = scene.verify(layers_checked, progress=options.progress) if options.verify else {"note": "--no-verify"}
    t_verify = time.perf_counter() - t0
    by_band = {la.band: la for la in layers}
    groups = {g: [by_band[b] for b in names] for g, names in band_groups.items()}
    sizes = [la.gsd for la in layers] + ([scl.gsd] if scl is not None else [])
    grid = WindowGrid.build(sgrid.origin, sgrid.width_m, sgrid.height_m, options.stride, sizes)
    mapped_w, mapped_h = grid.cell_cols * grid.stride, grid.cell_rows * grid.stride
    ql = max(1, -(-max(mapped_w, mapped_h) // 10 // QUICKLOOK_PX)) if options.quicklook else 0
    band_threads, gdal_threads = auto_threads(
        len(layers) + (scl is not None), options.band_threads, options.gdal_threads
    )
    reader = StripReader(
        grid,
        groups,
        scl=scl,
        cloud_threshold=options.cloud_threshold,
        nodata_threshold=options.nodata_threshold,
        batch=options.batch_size,
        band_threads=band_threads,
        gdal_threads=gdal_threads,
        quicklook=ql,
    )
    classes = model.classes
    keep = max(1, -(-max(grid.cell_rows, grid.cell_cols) // QUICKLOOK_PX))
    tags = {
        "SCENE": scene.name,
        "CHECKPOINT_ARCH": model.arch,
        "CHECKPOINT_SHA256": model.digest,
        "BANDS": ",".join(model.bands),
        "STRIDE_M": str(grid.stride),
        "FOOTPRINT_M": str(grid.footprint),
        "THRESHOLD": f"{model.threshold:g}",
    }
    writer = MapWriter(
        out_dir, scene.name, grid, sgrid.crs, classes, dtype=options.dtype, threshold=model.threshold, tags=tags,
        keep_every=keep,
    )  # fmt: skip
    offsets = _offsets(groups, device)
    acc = RowAccumulator(grid, len(classes))
    counts = {"scored": 0, "nodata": 0, "cloud": 0}
    t = {"read": 0.0, "infer": 0.0, "write": 0.0, "verify": t_verify}
    rgb_rows: list[np.ndarray] = []
    row_probs = np.full((grid.cols, len(classes)), np.nan, dtype=np.float32)
    threads = options.infer_threads or (torch_threads() if device.type == "cpu" else 1)
    pool = InferencePool(threads, cpu=device.type == "cpu")

    def done(batch: WindowBatch, result: tuple[np.ndarray, float] | None) -> None:
        if result is not None:
            if not np.isfinite(result[0]).all():  # NaN would be written as "not scored": say so instead
                bad = int((~np.isfinite(result[0])).any(axis=1).sum())
                raise MapError(
                    f"{model.arch} gave NaN or infinite probabilities for {bad} window(s) of row {batch.row} of "
                    f"{scene.name}: the checkpoint's weights are not finite or the scene's values are out of range"
                )
            row_probs[batch.cols] = result[0]
            t["infer"] += result[1]
            counts["scored"] += batch.size
        if batch.rgb is not None:
            rgb_rows.append(batch.rgb)
        if batch.last:
            counts["nodata"] += batch.nodata
            counts["cloud"] += batch.cloud
            t0 = time.perf_counter()
            writer.write_row(*acc.add(batch.row, row_probs))
            row_probs[:] = np.nan
            t["write"] += time.perf_counter() - t0
        bar.update(batch.size + (batch.nodata + batch.cloud if batch.last else 0))

    try:
        bar = tqdm(total=grid.windows, desc=scene.name[:40], unit="win", disable=not options.progress, leave=False)
        with bar, ReadAhead(lambda: iter(reader), depth=options.prefetch) as ahead:
            for batch in ahead:
                t["read"] += batch.read_s
                work = (_infer, model, batch, offsets, device) if batch.size else (None,)
                for item, result in pool.submit(batch, *work):
                    done(item, result)
            for item, result in pool.finish():
                done(item, result)
            wait_s = ahead.wait_s
        t0 = time.perf_counter()
        for row, mean in acc.finish():
            writer.write_row(row, mean)
        outputs = writer.finish()
        t["write"] += time.perf_counter() - t0
    except BaseException:
        writer.abort()
        raise
    finally:
        pool.close()
    areas = {
        "labelled": _areas(classes, writer.labelled, grid.stride),
        "most_probable": _areas(classes, writer.top, grid.stride),
    }
    t0 = time.perf_counter()
    if options.quicklook:
        rgb, rgb_nodata = _quicklook_rgb(scene, model, reader, rgb_rows, mapped_w, mapped_h, ql, options)
        title = f"{scene.name}\n{model.arch}, stride {grid.stride} m, {counts['scored']:,} windows scored"
        outputs["quicklook"] = render_quicklook(
            out_dir / f"{scene.name}_quicklook.png",
            rgb,
            rgb_nodata,
            writer.class_preview(),
            classes,
            (mapped_w / 1000, mapped_h / 1000),
            title,
            areas["most_probable"],
        )
    t["quicklook"] = time.perf_counter() - t0
    total = time.perf_counter() - t_start
    return {
        "scene": scene.describe(),
        "crs": sgrid.crs.to_string(),
        "scene_extent_m": [sgrid.width_m, sgrid.height_m],
        "origin": list(sgrid.origin),
        "grid": grid.to_dict(),
        "bands": {
            la.band: {"file": la.file.display, "native_m": la.gsd, "file_pixels_per_native": la.factor} for la in layers
        },
        "scl": None if scl is None else {"file": scl.file.display, "pixel_m": scl.gsd},
        "integrity": integrity,
        "radiometry": {
            "offset_added": {la.band: la.offset for la in layers},
            "source": scene.offset_source,
            "negative_values": "clipped to 0 (the convention of pre-04.00 products and BigEarthNet)",
            "nodata_value": {la.band: la.nodata for la in layers},
        },
        "windows": {
            "total": grid.windows,
            "scored": counts["scored"],
            "skipped_nodata": counts["nodata"],
            "skipped_cloud": counts["cloud"],
            "rule": (
                f"skipped when more than {options.nodata_threshold:g} of a window is nodata"
                + (
                    f", or more than {options.cloud_threshold:g} is SCL cloud/cirrus/shadow (3, 8, 9, 10)"
                    if options.mask_clouds
                    else ""
                )
            ),
        },
        "map_pixels": {
            "total": grid.cell_rows * grid.cell_cols,
            "nodata": writer.nodata_cells,
            "area_km2_each": grid.stride**2 / 1e6,
        },
        "area_km2": areas,
        "outputs": {k: Path(v).name for k, v in outputs.items()},
        "timings_s": {
            "read": round(t["read"], 3),
            "read_wait": round(wait_s, 3),
            "infer": round(t["infer"], 3),
            "write": round(t["write"], 3),
            "quicklook": round(t["quicklook"], 3),
            "verify": round(t["verify"], 3),
            "total": round(total, 3),
            "cpu_total": round(time.process_time() - cpu_start, 3),
        },
        "windows_per_s": round(counts["scored"] / total, 1) if total > 0 else None,
        "read_bytes": reader.read_bytes,
        "device": str(device),
        "threads": {
            "inference": threads,
            "torch_intra_op": 1 if threads > 1 and device.type == "cpu" else torch_threads(),
            "band_threads": band_threads,
            "gdal_threads": gdal_threads,
        },
        "memory_bound_mb": round(memory_bound(grid, groups, options, len(classes)) / 2**20, 1),
        "notes": list(scene.notes),
    }


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _areas(classes: tuple[str, ...], counts: np.ndarray, stride: int) -> dict[str, float]:
    return {c: round(float(n) * stride**2 / 1e6, 4) for c, n in zip(classes, counts, strict=True)}


def _quicklook_rgb(
    scene: Scene,
    model: MapModel,
    reader: StripReader,
    rows: list[np.ndarray],
    width_m: int,
    height_m: int,
    step: int,
    options: MapOptions,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """True-colour rows (offset applied) and their nodata mask, from the reader or a decimated read."""
    from landzoo.mapping.quicklook import read_rgb

    if reader.has_rgb and rows:
        raw = np.concatenate(rows, axis=1)
        layers = {la.band: la for g in reader.groups.values() for la in g}
    else:
        try:
            rgb_layers, _, _ = scene.layers(RGB, offset=options.offset)
        except MapError as err:
            scene.notes.append(f"quicklook without true colour: {err}")
            return None, None
        layers = {la.band: la for la in rgb_layers}
        raw = read_rgb(layers, width_m, height_m, step)
        if raw is None:
            return None, None
    nodata = np.zeros(raw.shape[1:], dtype=bool)
    out = np.empty(raw.shape, dtype=np.float32)
    for c, band in enumerate(RGB):
        la = layers[band]
        if la.nodata is not None:
            nodata |= raw[c] == la.nodata
        out[c] = np.maximum(raw[c].astype(np.float32) + la.offset, 0.0)
    return out, nodata


def memory_bound(grid: WindowGrid, groups: dict[str, list[Any]], options: MapOptions, classes: int) -> int:
    """Bytes of data the mapping of one scene holds at most: chunk buffers, batches, map rows (docs/map.md).

    Not counted: the process itself (Python, torch, the model), the model's activations while it computes a
    batch, and GDAL's block cache (capped at :data:`landzoo.mapping.reader.GDAL_CACHE_MB` while mapping).
    """
    from landzoo.mapping.reader import MAX_CHUNK_ROWS

    total = 0
    window = 0
    for layers in groups.values():
        gsd = layers[0].gsd
        side, _ = grid.px(gsd)
        width = grid.width_m // gsd
        rows = MAX_CHUNK_ROWS + side  # a chunk plus the rows kept from the previous one
        total += len(layers) * rows * width * 2 * 2  # the buffer and its concatenated successor
        window += len(layers) * side * side * 2
    threads = options.infer_threads or torch_threads()
    per_batch = min(options.batch_size, grid.cols) * window  # a batch never spans two window rows
    batches = options.prefetch + 2 * threads + 1  # queued, in flight in the inference threads, being prepared
    total += batches * per_batch  # raw windows
    total += threads * per_batch * 2  # their float32 copies in the model's input
    total += grid.k * grid.cell_cols * classes * 16  # accumulator ring (float64 sums, counts)
    total += 4 * grid.cols * classes * 4  # the window row being filled, the map row being written
    return total
