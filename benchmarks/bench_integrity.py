"""What the integrity defaults cost: store reads with record checks, and encode with preallocated shards.

    python benchmarks/bench_integrity.py                 # 2048 synthetic BigEarthNet-v1 patches
    python benchmarks/bench_integrity.py --label my-node # results/integrity-my-node.json

Store reads (one process, the default 2 copy threads, batch 256, shuffled, warm page cache), patches/s per epoch:

* ``verify="off"``: no check (what landzoo did before: only ``landzoo verify`` found a flipped byte);
* ``verify="once"`` (the default): each record's CRC-32 checked the first time the process reads it, so the
  first epoch pays for the check and later epochs only for a lookup in a bitmap;
* ``verify="always"``: every read checked.

Encode (2 worker processes): shard files preallocated with ``posix_fallocate`` (the default since a full
disk made the workers die of SIGBUS) against the sparse files of before, on the same patches, alternated.
Writes ``benchmarks/results/integrity-<label>.json`` with the machine and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from landzoo.store.bench import hardware

RESULTS = Path(__file__).resolve().parent / "results"


def epoch_rates(store: Path, modes: tuple[str, ...], epochs: int, batch: int) -> dict[str, list[float]]:
    """Patches/s of each epoch for each verify mode; the modes take turns epoch by epoch, so a change in the
    machine's load during the run affects them alike."""
    from landzoo.store.reader import StoreDataset

    datasets = {m: StoreDataset(store, verify=m) for m in modes}  # type: ignore[arg-type]
    loaders = {m: ds.loader(batch, shuffle=True) for m, ds in datasets.items()}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    for epoch in range(epochs):
        for m, loader in loaders.items():
            loader.sampler.set_epoch(epoch)
            t0 = time.perf_counter()
            n = sum(len(b["id"]) for b in loader)
            rates[m].append(n / (time.perf_counter() - t0))
    for ds in datasets.values():
        ds.close()
    return rates


def encode_seconds(raw: Path, work: Path, preallocate: bool) -> float:
    from landzoo.store import encode as enc

    out = work / f"store-{preallocate}"
    shutil.rmtree(out, ignore_errors=True)
    original = enc._allocate
    if not preallocate:
        enc._allocate = lambda path: None  # the sparse files of before
    try:
        res = enc.encode("bigearthnet-v1", raw, out, workers=2, progress=False)
    finally:
        enc._allocate = original
    shutil.rmtree(out, ignore_errors=True)
    return res.encode_seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patches", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3, help="encode runs per variant (alternated)")
    p.add_argument("--label", default=socket.gethostname().split(".")[0] or platform.node())
    args = p.parse_args()

    from landzoo.store.encode import encode
    from landzoo.synthetic import generate

    work = Path(tempfile.mkdtemp(prefix="landzoo-bench-integrity-"))
    try:
        raw = generate("bigearthnet-v1", work / "raw", patches=args.patches, seed=0, workers=2, progress=False)
        store = work / "store"
        encode("bigearthnet-v1", raw, store, workers=2, progress=False)
        load0 = os.getloadavg()[0]
        modes = ("off", "once", "always")
        rates = epoch_rates(store, modes, args.epochs, 256)
        reads: dict[str, dict] = {}
        for verify in modes:
            reads[verify] = {"patches_per_s_per_epoch": rates[verify]}
            print(
                f"store read, verify={verify}: "
                + ", ".join(f"{r:,.0f}" for r in rates[verify])
                + " patches/s per epoch"
            )
        off_later = statistics.median(reads["off"]["patches_per_s_per_epoch"][1:])
        once_later = statistics.median(reads["once"]["patches_per_s_per_epoch"][1:])
        reads["once"]["later_epochs_cost_pct"] = 100 * (off_later / once_later - 1)
        reads["once"]["first_epoch_cost_pct"] = 100 * (
            reads["off"]["patches_per_s_per_epoch"][0] / reads["once"]["patches_per_s_per_epoch"][0] - 1
        )
        timings: dict[str, list[float]] = {"preallocated": [], "sparse": []}
        for _ in range(args.repeats):
            for pre in (True, False):
                timings["preallocated" if pre else "sparse"].append(encode_seconds(raw, work, pre))
        enc_rates = {k: args.patches / statistics.median(v) for k, v in timings.items()}
        print(", ".join(f"encode {k}: {v:,.0f} patches/s" for k, v in enc_rates.items()))
        report = {
            "label": args.label,
            "hardware": hardware(),
            "patches": args.patches,
            "layout": "BigEarthNet-v1, s2_10m_20m, warm page cache, batch 256, main process, 2 copy threads",
            "store_read": reads,
            "encode": {"workers": 2, "seconds": timings, "patches_per_s_median": enc_rates},
            "load_average_1m": {"start": load0, "end": os.getloadavg()[0]},
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"integrity-{args.label}.json"
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
