"""Reproduce ``landzoo bench-map`` and commit the numbers with the hardware they ran on.

    python benchmarks/bench_map.py                                  # full tile: COG + JP2, strides 1200 and 600
    python benchmarks/bench_map.py --label gpu --inputs tif --device cuda --workers 16   # the GPU target

Generates (once, into ``--work-dir``, default ``/tmp/landzoo-bench-map``) a synthetic 10,980 x 10,980 px L2A tile
without nodata or clouds (every one of the 8,281 windows at stride 1200 m is scored), then measures the read
rows (scene read alone, COG vs JPEG 2000, threads over bands and GDAL threads) and ``landzoo map`` end to end
in a fresh process per row, and writes ``benchmarks/results/map-<label>.json`` (default label: the host name).
Targets of issue 11: 2-core VM, COG input, ``wrn_eca_b0``, stride 1200 m under 60 s, stride 600 m under 3
minutes; on a GPU under 10 s per tile from COG.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from landzoo.mapping.bench import FULL_TILE_KM, format_table, run_bench

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/landzoo-bench-map"))
    p.add_argument("--size-km", type=float, default=FULL_TILE_KM)
    p.add_argument("--inputs", default="tif,safe", help="tif and/or safe (default both)")
    p.add_argument("--strides", default="1200,600")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2, help="processes generating the scene")
    p.add_argument("--no-read-rows", action="store_true")
    p.add_argument("--label", default=socket.gethostname().split(".")[0] or platform.node())
    args = p.parse_args()
    report = run_bench(
        args.work_dir,
        size_km=args.size_km,
        inputs=[i for i in args.inputs.split(",") if i],
        strides=[int(s) for s in args.strides.split(",") if s],
        read_configs=() if args.no_read_rows else ((1, 1), (2, 1), (1, "ALL_CPUS"), (2, "ALL_CPUS")),
        map_options=["--device", args.device, "--batch-size", str(args.batch_size)],
        workers=args.workers,
    )
    print(format_table(report))
    report["label"] = args.label
    report["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"map-{args.label}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
