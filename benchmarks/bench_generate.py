"""Benchmark `landzoo generate`: patches per second for one dataset, written as JSON under benchmarks/results/.

    python benchmarks/bench_generate.py --dataset bigearthnet-v1 --patches 10000 --workers 2

The output folder is a temporary one (deleted afterwards unless --keep). The JSON holds the timing, the
file count, the hardware (platform and CPU count, no host name) and the library versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="bigearthnet-v1")
    parser.add_argument("--patches", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated dataset")
    parser.add_argument("--label", default=None, help="result file label (default: dataset-patches-workers)")
    args = parser.parse_args(argv)

    import numpy as np

    import landzoo
    from landzoo.synthetic import generate
    from landzoo.synthetic.bigearthnet_v1 import _name_table, official_splits

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="landzoo-bench-")) / "data"
    try:
        t0 = time.perf_counter()
        if args.dataset.startswith("bigearthnet"):  # time the one-off table load separately
            official_splits()
            _name_table()
        t1 = time.perf_counter()
        generate(args.dataset, out, args.patches, args.seed, workers=args.workers)
        t2 = time.perf_counter()
        files = sum(len(f) for _, _, f in os.walk(out))
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        if not args.keep:
            shutil.rmtree(out.parent if args.out is None else out, ignore_errors=True)
    result = {
        "benchmark": "generate",
        "dataset": args.dataset,
        "patches": args.patches,
        "workers": args.workers,
        "seed": args.seed,
        "seconds_total": round(t2 - t0, 3),
        "seconds_official_lists": round(t1 - t0, 3),
        "seconds_generate": round(t2 - t1, 3),
        "patches_per_s": round(args.patches / (t2 - t0), 1),
        "patches_per_s_excluding_lists": round(args.patches / (t2 - t1), 1),
        "files": files,
        "bytes": size,
        "hardware": {
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}",
            "load_average_1min_before": None if load_before is None else round(load_before, 2),
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "landzoo": landzoo.__version__,
        },
    }
    label = args.label or f"{args.dataset}-{args.patches}p-{args.workers}w"
    path = Path(__file__).resolve().parent / "results" / f"generate-{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
