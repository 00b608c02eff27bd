"""Reproduce ``landzoo bench-io`` and commit the numbers with the hardware they ran on.

    python benchmarks/bench_io.py                      # bench-io on 4096 synthetic patches
    python benchmarks/bench_io.py --layouts            # also: the store layout comparison of docs/store.md
    python benchmarks/bench_io.py --copy-threads       # also: 1 vs 2 copy threads with 0, 1, 2 busy cores
    python benchmarks/bench_io.py --label my-node      # results/io-my-node.json

Writes ``benchmarks/results/io-<label>.json`` (default label: the host name) and prints the table.

``--layouts`` measures, on the same patches, batch reads (batch 256, random order, one process) from:
``npy-per-group`` (the store: one fixed-record ``.npy`` per band group per shard, memory-mapped, one gather per
group and shard), ``record-blob`` (what an LMDB + safetensors store does per patch: one serialised object per
record, located by offset, decoded one by one; LMDB's own B-tree lookup would come on top) and
``npy-per-patch`` (one small file per patch, the naive cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from landzoo.store.bench import format_table, hardware, run_bench

RESULTS = Path(__file__).resolve().parent / "results"


def layouts(store: Path, batch: int = 256, seconds: float = 4.0) -> list[dict]:
    """Batch-read throughput of three layouts holding the same records (taken from an encoded store)."""
    from safetensors.numpy import load as st_load
    from safetensors.numpy import save as st_save

    from landzoo.store.reader import StoreDataset

    ds = StoreDataset(store)
    n = len(ds)
    work = Path(tempfile.mkdtemp(prefix="landzoo-layouts-", dir=store.parent))
    everything = ds.get_batch(range(n))
    groups = list(everything["image"])
    # record-blob: safetensors bytes per record, concatenated; offsets kept in memory (an LMDB would look them up)
    offsets, blob = [], work / "records.bin"
    with open(blob, "wb") as fh:
        for i in range(n):
            data = st_save({g: everything["image"][g][i].numpy() for g in groups})
            offsets.append((fh.tell(), len(data)))
            fh.write(data)
    per_patch = work / "patches"
    per_patch.mkdir()
    for i in range(n):
        np.save(per_patch / f"{i}.npy", np.concatenate([everything["image"][g][i].numpy().reshape(-1) for g in groups]))
    shapes = {g: tuple(everything["image"][g].shape[1:]) for g in groups}
    sizes = {g: int(np.prod(s)) for g, s in shapes.items()}
    del everything
    for f in work.rglob("*"):  # warm the page cache for every layout
        if f.is_file():
            f.read_bytes()

    def read_blob(idx: np.ndarray) -> dict:
        fd = os.open(blob, os.O_RDONLY)
        try:
            recs = [st_load(os.pread(fd, offsets[i][1], offsets[i][0])) for i in idx]
        finally:
            os.close(fd)
        return {g: torch.from_numpy(np.stack([r[g] for r in recs])) for g in groups}

    def read_files(idx: np.ndarray) -> dict:
        arrs = [np.load(per_patch / f"{i}.npy") for i in idx]
        out, start = {}, 0
        for g in groups:
            out[g] = torch.from_numpy(np.stack([a[start : start + sizes[g]] for a in arrs]).reshape(-1, *shapes[g]))
            start += sizes[g]
        return out

    methods = {
        "npy-per-group (store, memory-mapped)": lambda idx: ds.get_batch(idx),
        "record-blob (LMDB+safetensors-like, per-record decode)": read_blob,
        "npy-per-patch (one file per patch)": read_files,
    }
    out = []
    rng = np.random.default_rng(0)
    for name, fn in methods.items():
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn(np.sort(rng.choice(n, size=min(batch, n), replace=False)))
            done += min(batch, n)
        out.append({"layout": name, "patches_per_s": done / (time.perf_counter() - t0)})
        print(f"{name:<58} {out[-1]['patches_per_s']:>10,.0f} patches/s", flush=True)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return out


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def copy_threads(store: Path, batch: int = 256, seconds: float = 3.0, repeats: int = 3) -> list[dict]:
    """patches/s of the store gather with 1 and 2 copy threads, with 0, 1 and 2 busy processes beside it."""
    import multiprocessing as mp

    from landzoo.store.reader import StoreDataset

    sets = {t: StoreDataset(store, threads=t) for t in (1, 2)}
    rng = np.random.default_rng(0)

    def rate(ds: StoreDataset) -> float:
        n = len(ds)
        ds.get_batch(rng.choice(n, size=min(batch, n), replace=False))
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            ds.get_batch(rng.choice(n, size=min(batch, n), replace=False))
            done += min(batch, n)
        return done / (time.perf_counter() - t0)

    out = []
    ctx = mp.get_context("spawn")
    for busy in (0, 1, 2):
        spinners = [ctx.Process(target=_spin, args=(2 * seconds * repeats + 30,)) for _ in range(busy)]
        for s in spinners:
            s.start()
        try:
            time.sleep(1.0 if busy else 0.0)
            # alternate the two settings so that both see the same moments of the machine
            runs = {t: [] for t in sets}
            for _ in range(repeats):
                for t, ds in sets.items():
                    runs[t].append(rate(ds))
        finally:
            for s in spinners:
                s.terminate()
                s.join()
        for t, values in runs.items():
            out.append({"busy_processes": busy, "copy_threads": t, "patches_per_s": values})
            print(f"busy processes {busy}, copy threads {t}: " + ", ".join(f"{v:,.0f}" for v in values), flush=True)
    for ds in sets.values():
        ds.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="BigEarthNet-v1 folder (default: generate synthetic patches)")
    p.add_argument("--patches", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--layouts", action="store_true", help="also compare store layouts")
    p.add_argument("--copy-threads", action="store_true", help="also compare 1 and 2 copy threads under load")
    p.add_argument("--label", default=socket.gethostname().split(".")[0] or platform.node())
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="landzoo-bench-io-"))
    try:
        report = run_bench(
            args.data, patches=args.patches, batch_size=args.batch_size, seconds=args.seconds, work_dir=work
        )
        print(format_table(report))
        if args.layouts:
            print("\nlayout comparison (batch reads, one process):")
            report["layouts"] = layouts(work / "store", args.batch_size)
        if args.copy_threads:
            print("\ncopy threads in the main process, with other processes busy on the cores:")
            report["copy_threads"] = copy_threads(work / "store", args.batch_size)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    report["label"] = args.label
    report["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"io-{args.label}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {path}")
    assert hardware()  # the hardware line is part of every result
    return 0


if __name__ == "__main__":
    sys.exit(main())
