"""``landzoo demo``: the main job on the embedded synthetic data, end to end, on a laptop CPU.

It generates a synthetic BigEarthNet-v1 dataset in the exact real format, reads it back through the
readers and prints its summary. Later stages (store, benchmark, report) join as they land.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on embedded synthetic data (used by `make demo`)",
        description="Generate a synthetic BigEarthNet-v1 dataset in the real on-disk format, read it back "
        "through the readers and print a summary.",
    )
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="working folder (default: demo-output)")
    p.add_argument("--patches", type=int, default=2000, help="synthetic patches to generate (default: 2000)")
    p.add_argument("--seed", type=int, default=42, help="generator seed (default: 42)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.datasets import open_dataset
    from landzoo.datasets.summary import format_summary, summarise
    from landzoo.synthetic import generate

    out: Path = args.out
    raw = out / "bigearthnet-v1"
    t0 = time.perf_counter()
    if raw.exists():
        shutil.rmtree(raw)
    print(f"[1/2] generating {args.patches} synthetic BigEarthNet-v1 patches in {raw} ...", flush=True)
    root = generate("bigearthnet-v1", raw, patches=args.patches, seed=args.seed, workers=args.workers)
    print("[2/2] reading them back through the BigEarthNet-v1 reader ...", flush=True)
    reader = open_dataset("bigearthnet-v1", root, on_bad="skip")
    summary = summarise(reader, progress=True)
    print(format_summary(summary))
    print(f"demo finished in {time.perf_counter() - t0:.1f} s; outputs in {out}")
    return 1 if summary["bad_patches"] else 0
