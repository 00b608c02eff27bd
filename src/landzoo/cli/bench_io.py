"""``landzoo bench-io``: patches/s of the raw-GeoTIFF path, torchgeo, and the store (0/1/2 workers, preloaded)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-io",
        help="measure input-pipeline throughput (raw GeoTIFF vs store)",
        description="In one run, on the same BigEarthNet-v1 data (10 bands, batch 256 by default), measure "
        "patches/s of the raw per-file GeoTIFF path (rasterio), torchgeo's BigEarthNet class (if installed), "
        "the encoded store with 0, 1 and 2 loader workers, and the store preloaded into RAM.",
    )
    p.add_argument(
        "--data",
        default="generate",
        metavar="RAW_DIR_OR_GENERATE",
        help="a BigEarthNet-v1 folder, or 'generate' (default) for synthetic patches",
    )
    p.add_argument("--patches", type=int, default=4096, help="synthetic patches to generate (default: 4096)")
    p.add_argument("--batch-size", type=int, default=256, help="batch size (default: 256)")
    p.add_argument("--workers", default="0,1,2", help="loader worker counts for the store (default: 0,1,2)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per store method (default: 5)")
    p.add_argument("--raw-seconds", type=float, default=6.0, help="seconds per raw-file method (default: 6)")
    p.add_argument("--encode-workers", type=int, default=2, help="encode worker processes (default: 2)")
    p.add_argument("--work-dir", type=Path, default=None, help="keep generated data and store here (default: temp)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.store.bench import format_table, run_bench

    try:
        workers = tuple(int(w) for w in args.workers.split(",") if w.strip())
    except ValueError:
        from landzoo.errors import LandzooError

        raise LandzooError(f"--workers must be comma-separated integers, not {args.workers!r}") from None
    report = run_bench(
        None if args.data == "generate" else args.data,
        patches=args.patches,
        batch_size=args.batch_size,
        workers=workers,
        seconds=args.seconds,
        raw_seconds=args.raw_seconds,
        encode_workers=args.encode_workers,
        work_dir=args.work_dir,
        progress=not args.json,
        log=(lambda m: print(m, file=sys.stderr)) if args.json else print,
    )
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    return 0
