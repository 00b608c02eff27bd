"""Windows of a scene, read strip by strip behind the model: bounded memory, each file block decoded once.

How a scene is read, and why:

* **Strips of window rows.** Window row ``r`` needs rows ``[r s, r s + h)`` of every band (``h``: window
  side, ``s``: stride, in that band's native pixels). Consecutive strips overlap when the stride is smaller
  than the footprint, so each band keeps a rolling buffer (:class:`BandReader`) and only new rows are read.
* **Block-aligned chunks.** A band is read in chunks of whole file blocks (a JPEG 2000 tile row of 1024 lines
  in an ESA product, a 1024 or 512 block row of a COG), from the file's own grid, at full width. A JP2 tile is
  therefore decoded once, whatever the stride, instead of once per window row that touches it.
* **Native grids.** A band is read on its native grid; a finer file (a 20 m band in a 10 m stack) is
  averaged onto it by GDAL on read (``Resampling.average``), integer factors only.
* **A thread pool over bands** reads the bands of a chunk concurrently (GDAL releases the GIL; JP2 decoding
  is the costly part) and a **read-ahead thread** (:class:`ReadAhead`) prepares the next batches while the
  model runs on the current one.
* **Nodata and clouds per window** are counted from the strip itself (column sums, no second read): a window
  whose share of nodata pixels (value 0 in L2A, the tile's empty corner) exceeds ``--nodata-threshold``
  (default 0: any nodata pixel) is skipped, and with ``--mask-clouds`` a window whose SCL
  cloud/cirrus/shadow cover exceeds the threshold.

Memory: per band one chunk (block rows x scene width, plus one window height), the read-ahead queue (at most
``prefetch`` batches of ``batch`` windows), and the quicklook rows: independent of the stride.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from landzoo import contract
from landzoo.mapping.errors import MapError, gdal_reason
from landzoo.mapping.grid import WindowGrid
from landzoo.mapping.product import CLOUD_CLASSES
from landzoo.mapping.sources import Layer

__all__ = ["BandReader", "ReadAhead", "StripReader", "WindowBatch"]

#: Smallest chunk (native rows) read at once from a file with small blocks (stripped TIFFs).
MIN_CHUNK_ROWS = 256
#: Largest chunk: a file stored as one block (untiled, one strip) is still read in bounded pieces.
MAX_CHUNK_ROWS = 2048
#: Bands of the true-colour quicklook, red, green, blue.
RGB = ("B04", "B03", "B02")


#: GDAL block cache (MiB) while mapping: each block is decoded once into the reader's own chunk buffers, so a
#: larger cache (GDAL's default is 5 % of RAM) would only hold blocks that are never asked for again.
GDAL_CACHE_MB = 64


def gdal_options(threads: int | str) -> dict[str, Any]:
    """GDAL settings of every read: decoding threads per file, a small block cache, no directory listing."""
    return {
        "GDAL_NUM_THREADS": str(threads),
        "GDAL_CACHEMAX": GDAL_CACHE_MB,
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    }


def auto_threads(layers: int, band_threads: int, gdal_threads: int | str) -> tuple[int, int | str]:
    """0 means automatic: one thread per band up to the CPU count, GDAL threads sharing what is left."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    bt = band_threads if band_threads > 0 else max(1, min(layers, cpus))
    gt = gdal_threads if gdal_threads not in (0, "0") else max(1, cpus // bt)
    return bt, gt


class BandReader:
    """Rows of one band on its native grid through a rolling, block-aligned buffer (rows only move forward)."""

    def __init__(self, layer: Layer, width: int, height: int, min_rows: int) -> None:
        import rasterio
        from rasterio.errors import RasterioError

        self.layer = layer
        self.width, self.height = width, height
        try:
            self.ds = rasterio.open(layer.file.path)
        except RasterioError as err:
            raise MapError(f"cannot open {layer.file.display} (band {layer.band}): {gdal_reason(err)}") from None
        block_h = self.ds.block_shapes[layer.file.index - 1][0]
        block = max(1, math.ceil(block_h / layer.factor))
        self.align = block if block <= MAX_CHUNK_ROWS else 1
        self.chunk = min(max(block, min_rows, MIN_CHUNK_ROWS), max(MAX_CHUNK_ROWS, min_rows))
        self.c0 = self.c1 = 0
        self.buf = np.empty((0, width), dtype=self.ds.dtypes[layer.file.index - 1])
        self.read_bytes = 0

    def close(self) -> None:
        self.ds.close()

    def _read(self, a: int, b: int) -> np.ndarray:
        from rasterio.enums import Resampling
        from rasterio.errors import RasterioError
        from rasterio.windows import Window

        f = self.layer.factor
        win = Window(0, a * f, self.width * f, (b - a) * f)
        try:
            if f == 1:
                out = self.ds.read(self.layer.file.index, window=win)
            else:
                out = self.ds.read(
                    self.layer.file.index, window=win, out_shape=(b - a, self.width), resampling=Resampling.average
                )
        except RasterioError as err:
            raise MapError(
                f"cannot read {self.layer.file.display} (band {self.layer.band}, rows {a * f}-{b * f}): "
                f"{gdal_reason(err)}"
            ) from None
        self.read_bytes += out.nbytes
        return out

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``[y0, y1)`` (native pixels) at full width; ``y0`` never goes back before an earlier ``y0``."""
        if y1 > self.c1 or y0 < self.c0:
            start = max(y0, self.c1) if self.c0 <= y0 <= self.c1 else y0
            end = min(self.height, max(y1, start + self.chunk))
            end = min(self.height, math.ceil(end / self.align) * self.align)
            fresh = self._read(start, end)
            keep = self.buf[y0 - self.c0 :] if self.c0 <= y0 < self.c1 else self.buf[:0]
            self.buf = np.concatenate([keep, fresh]) if keep.size else fresh
            self.c0, self.c1 = y0, end
        return self.buf[y0 - self.c0 : y1 - self.c0]


@dataclass
class WindowBatch:
    """Raw windows of one window row ready for the model, plus what was skipped there (on the row's last batch)."""

    row: int
    cols: np.ndarray
    groups: dict[str, np.ndarray]
    last: bool
    nodata: int = 0
    cloud: int = 0
    read_s: float = 0.0
    rgb: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.cols.size)


def _window_sums(mask: np.ndarray, n: int, side: int, step: int) -> np.ndarray:
    """Count of True pixels in each of ``n`` windows (``side`` wide, every ``step`` columns) of a strip mask."""
    cs = np.concatenate([[0], np.cumsum(mask.sum(axis=0, dtype=np.int64))])
    starts = np.arange(n) * step
    return cs[starts + side] - cs[starts]


class StripReader:
    """Iterates :class:`WindowBatch` es over a scene, window row by window row (see the module docstring).

    ``groups``: band-group name -> its layers in the model's channel order. ``scl``: the SCL layer when
    clouds are masked. ``quicklook``: decimation of the 10 m true-colour rows kept for the quicklook (0: none).
    """

    def __init__(
        self,
        grid: WindowGrid,
        groups: dict[str, list[Layer]],
        *,
        scl: Layer | None = None,
        cloud_threshold: float = 0.1,
        nodata_threshold: float = 0.0,
        batch: int = 256,
        band_threads: int = 2,
        gdal_threads: int | str = 1,
        quicklook: int = 0,
    ) -> None:
        self.grid = grid
        self.groups = groups
        self.scl = scl
        self.cloud_threshold = cloud_threshold
        self.nodata_threshold = nodata_threshold
        self.batch = max(1, int(batch))
        self.band_threads = max(1, int(band_threads))
        self.env = gdal_options(gdal_threads)
        self.quicklook = quicklook
        self.read_bytes = 0
        self._readers: dict[str, list[BandReader]] = {}
        self._scl_reader: BandReader | None = None
        ten = groups.get(contract.group_name(10), [])
        names = [la.band for la in ten]
        self._rgb_index = [names.index(b) for b in RGB] if quicklook and all(b in names for b in RGB) else None

    @property
    def has_rgb(self) -> bool:
        return self._rgb_index is not None

    def _open(self) -> None:
        """Open every band; each reader is kept as soon as it is open, so :meth:`close` closes all on a failure."""
        for name, layers in self.groups.items():
            gsd = layers[0].gsd
            side, _ = self.grid.px(gsd)
            w, h = self.grid.width_m // gsd, self.grid.height_m // gsd
            self._readers[name] = []
            for la in layers:
                self._readers[name].append(BandReader(la, w, h, side))
        if self.scl is not None:
            g = self.scl.gsd
            self._scl_reader = BandReader(self.scl, self.grid.width_m // g, self.grid.height_m // g, self.grid.px(g)[0])

    def close(self) -> None:
        for readers in self._readers.values():
            for r in readers:
                self.read_bytes += r.read_bytes
                r.close()
        if self._scl_reader is not None:
            self.read_bytes += self._scl_reader.read_bytes
            self._scl_reader.close()
        self._readers.clear()
        self._scl_reader = None

    def __iter__(self) -> Iterator[WindowBatch]:
        import rasterio

        with rasterio.Env(**self.env):
            try:
                self._open()
                with ThreadPoolExecutor(max_workers=self.band_threads) as pool:
                    yield from self._batches(pool)
            finally:
                self.close()

    def _strip(self, pool: ThreadPoolExecutor, row: int) -> tuple[dict[str, list[np.ndarray]], np.ndarray | None]:
        """Rows of window row ``row`` for every band (a list per group) and for SCL."""
        import rasterio

        jobs: list[tuple[str, BandReader]] = [(g, r) for g, rs in self._readers.items() for r in rs]
        if self._scl_reader is not None:
            jobs.append(("SCL", self._scl_reader))

        def fetch(job: tuple[str, BandReader]) -> np.ndarray:
            _, reader = job
            side, step = self.grid.px(reader.layer.gsd)
            with rasterio.Env(**self.env):  # GDAL settings are per thread
                return reader.rows(row * step, row * step + side)

        parts = list(pool.map(fetch, jobs)) if self.band_threads > 1 else [fetch(j) for j in jobs]
        out: dict[str, list[np.ndarray]] = {g: [] for g in self._readers}
        scl = None
        for (g, _), arr in zip(jobs, parts, strict=True):
            if g == "SCL":
                scl = arr
            else:
                out[g].append(arr)
        return out, scl

    def _batches(self, pool: ThreadPoolExecutor) -> Iterator[WindowBatch]:
        n = self.grid.cols
        ql_next = 0  # first 10 m row not yet taken for the quicklook
        for row in range(self.grid.rows):
            t0 = time.perf_counter()
            strips, scl = self._strip(pool, row)
            nodata = np.zeros(n, dtype=bool)
            for g, rows in strips.items():
                layers = self.groups[g]
                side, step = self.grid.px(layers[0].gsd)
                mask = np.zeros(rows[0].shape, dtype=bool)
                for la, arr in zip(layers, rows, strict=True):
                    if la.nodata is not None:
                        mask |= arr == la.nodata
                frac = _window_sums(mask, n, side, step) / float(side * side)
                nodata |= frac > self.nodata_threshold
            cloud = np.zeros(n, dtype=bool)
            if scl is not None and self.scl is not None:
                side, step = self.grid.px(self.scl.gsd)
                frac = _window_sums(np.isin(scl, CLOUD_CLASSES), n, side, step) / float(side * side)
                cloud = (frac > self.cloud_threshold) & ~nodata
            cols = np.flatnonzero(~nodata & ~cloud)
            rgb = self._rgb_rows(strips, row, ql_next) if self._rgb_index is not None else None
            if rgb is not None:
                ql_next = row * self.grid.px(10)[1] + self.grid.px(10)[0]
            chunks = [cols[i : i + self.batch] for i in range(0, cols.size, self.batch)] or [cols]
            for i, part in enumerate(chunks):
                groups = {g: self._windows(g, rows, part) for g, rows in strips.items()}
                last = i == len(chunks) - 1
                yield WindowBatch(
                    row,
                    part,
                    groups,
                    last,
                    nodata=int(nodata.sum()) if last else 0,
                    cloud=int(cloud.sum()) if last else 0,
                    read_s=time.perf_counter() - t0,
                    rgb=rgb if last else None,
                )
                t0 = time.perf_counter()

    def _windows(self, group: str, rows: Sequence[np.ndarray], cols: np.ndarray) -> np.ndarray:
        """``[len(cols), C, side, side]`` raw windows of one group (one copy per band)."""
        side, step = self.grid.px(self.groups[group][0].gsd)
        out = np.empty((cols.size, len(rows), side, side), dtype=rows[0].dtype)
        run = cols.size and cols[-1] - cols[0] + 1 == cols.size  # a contiguous run: a slice, not a gather
        for c, arr in enumerate(rows):
            view = np.lib.stride_tricks.sliding_window_view(arr, side, axis=1)[:, ::step]  # [side, n, side]
            picked = view[:, cols[0] : cols[-1] + 1] if run else view[:, cols]
            out[:, c] = picked.transpose(1, 0, 2)
        return out

    def _rgb_rows(self, strips: dict[str, list[np.ndarray]], row: int, start: int) -> np.ndarray:
        """The quicklook's rows of this strip not taken before: every ``quicklook``-th row and column, R, G, B."""
        assert self._rgb_index is not None
        side, step = self.grid.px(10)
        top = row * step
        first = max(start, top)
        first += (-first) % self.quicklook
        bands = [strips[contract.group_name(10)][i] for i in self._rgb_index]
        width = self.grid.cell_cols * self.grid.stride // 10
        return np.stack([b[first - top : side : self.quicklook, : width : self.quicklook] for b in bands])


class ReadAhead:
    """Run an iterator in a thread, ``depth`` items ahead of the consumer; its exceptions reach the consumer.

    Leaving the ``with`` block early (an error downstream) stops the thread at its next item.
    """

    _DONE = object()

    def __init__(self, make: Callable[[], Iterator[Any]], depth: int = 2) -> None:
        self._make = make
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="landzoo-map-read", daemon=True)
        self.wait_s = 0.0

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._make():
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as err:  # handed to the consumer, raised there
            self._put(err)

    def __enter__(self) -> ReadAhead:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[Any]:
        while True:
            t0 = time.perf_counter()
            item = self._queue.get()
            self.wait_s += time.perf_counter() - t0
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
