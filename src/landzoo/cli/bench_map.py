"""``landzoo bench-map``: windows/s of `landzoo map` on a synthetic full-size tile, and the read/infer/write split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-map",
        help="measure `landzoo map` on a synthetic full Sentinel-2 tile (COG and JPEG 2000)",
        description="Generate (once, into --work-dir) a synthetic 10,980 x 10,980 px L2A tile as band COGs and as a "
        ".SAFE with JPEG 2000 bands, then measure: the scene read alone (COG vs JP2, threads over bands and GDAL "
        "threads) and `landzoo map` end to end in a fresh process per row (stride 1200 and 600 m), with its "
        "read/infer/write split, windows/s and peak memory.",
    )
    p.add_argument("--work-dir", type=Path, default=Path("bench-map"), help="scene and outputs (default ./bench-map)")
    p.add_argument("--size-km", type=float, default=109.8, help="scene side in km (default 109.8, a full tile)")
    p.add_argument("--checkpoint", type=Path, help="checkpoint to map with (default: an untrained wrn_eca_b0)")
    p.add_argument("--inputs", default="tif,safe", help="tif (band COGs) and/or safe (JPEG 2000) (default both)")
    p.add_argument("--strides", default="1200,600", help="strides in m for the COG input (default 1200,600)")
    p.add_argument("--device", default="auto", help="device for the map rows (default auto)")
    p.add_argument("--batch-size", type=int, default=256, help="windows per batch (default 256)")
    p.add_argument("--workers", type=int, default=2, help="processes to generate the scene (default 2)")
    p.add_argument("--no-read-rows", action="store_true", help="skip the read-only rows")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.errors import LandzooError
    from landzoo.mapping.bench import format_table, run_bench

    inputs = [i.strip() for i in args.inputs.split(",") if i.strip()]
    if not inputs or any(i not in ("tif", "safe") for i in inputs):
        raise LandzooError(f"--inputs takes tif and/or safe, not {args.inputs!r}")
    try:
        strides = [int(s) for s in args.strides.split(",") if s.strip()]
    except ValueError:
        raise LandzooError(f"--strides must be comma-separated metres, not {args.strides!r}") from None
    report = run_bench(
        args.work_dir,
        size_km=args.size_km,
        checkpoint=args.checkpoint,
        inputs=inputs,
        strides=strides,
        read_configs=() if args.no_read_rows else ((1, 1), (2, 1), (1, "ALL_CPUS"), (2, "ALL_CPUS")),
        map_options=["--device", args.device, "--batch-size", str(args.batch_size)],
        workers=args.workers,
        log=(lambda m: print(m, file=sys.stderr)) if args.json else print,
    )
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    return 0
