"""Reproduce ``landzoo bench-train`` with the settings of issue 13 and commit the numbers with their hardware.

    python benchmarks/bench_train.py --preset cpu      # the 2-core VM: small batches, few steps
    python benchmarks/bench_train.py --preset gpu      # one H100/H200-class GPU (benchmarks/gpu_session.sh)

Writes ``benchmarks/results/train-<label>.json`` (default label: the preset). Rows per model: the store loader
vs the resident path, fp32 vs bf16, compile off/on (``landzoo.training.bench``). Targets of issue 13 on one
H100/H200: ``wrn_eca_b0`` >= 30,000 training img/s (a v1 train epoch < 10 s), ``resnet50`` >= 8,000 img/s at
120 px, data wait < 5 % of step time for every model; on the CPU the resident path no slower than the loader.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from landzoo.files import atomic_write_text
from landzoo.training.bench import DEFAULT_MODELS, DEFAULT_ROWS, format_table, make_store, run_bench

RESULTS = Path(__file__).resolve().parent / "results"
#: (patches of the synthetic store, batch, warm-up steps, timed steps, loader workers)
PRESETS = {"cpu": (512, 32, 3, 10, 2), "gpu": (32768, 1024, 20, 100, 12)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--label", help="results file suffix (default: the preset)")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/landzoo-bench-train"))
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS))
    p.add_argument("--repeat", type=int, default=1, help="interleaved repetitions per model; rows report the median")
    args = p.parse_args()
    patches, batch, warmup, steps, workers = PRESETS[args.preset]
    store = make_store(args.work_dir, patches, workers=workers)
    report = run_bench(
        store,
        models=args.models.split(","),
        rows=args.rows.split(","),
        batch_size=batch,
        warmup=warmup,
        steps=steps,
        device="cuda" if args.preset == "gpu" else "cpu",
        workers=workers,
        repeat=args.repeat,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    report["preset"] = args.preset
    out = RESULTS / f"train-{args.label or args.preset}.json"
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    print(format_table(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
