"""``landzoo bench-train``: training and validation img/s of zoo models per data path, precision and compile."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: Kept in step with landzoo.training.bench (not imported here: --help loads no torch).
_MODELS = "wrn_eca_b0,wrn_eca_b3,resnet50,efficientnet_b0,vit_p20_120,mixer_p12_120"
_ROWS = "loader-fp32,resident-fp32,resident-bf16,resident-bf16-compile"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-train",
        help="measure training/validation img/s per model, data path, precision and compile setting",
        description="Train zoo models through landzoo's own step (Lightning, input stem, dihedral augmentation, "
        "loss, optimiser) on a synthetic BigEarthNet-v1 store of the real shapes, made once in --work-dir, and "
        "report per row: steady-state training img/s, the BigEarthNet v1 train epoch (269,695 patches) at that "
        "rate, the share of step time spent waiting for data, validation img/s and peak memory. A row is "
        "DATA-PRECISION[-compile]: DATA loader (the store's DataLoader) or resident (data.resident), PRECISION "
        "fp32 or bf16.",
    )
    p.add_argument("--work-dir", type=Path, default=Path("bench-train"), help="synthetic store (default ./bench-train)")
    p.add_argument("--store", type=Path, help="an existing store to read instead of the synthetic one")
    p.add_argument("--patches", type=int, default=4096, help="patches of the synthetic store (default 4096)")
    p.add_argument("--models", default=_MODELS, help=f"comma-separated zoo models (default {_MODELS})")
    p.add_argument("--rows", default=_ROWS, help=f"comma-separated rows (default {_ROWS})")
    p.add_argument("--batch-size", type=int, default=256, help="training and validation batch (default 256)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device (default auto)")
    p.add_argument("--workers", type=int, default=2, help="loader processes of the loader rows (default 2)")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each model's rows N times, interleaved; report the median (default 1)",
    )
    p.add_argument("--out", type=Path, help="also write the JSON report to this file")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.errors import LandzooError
    from landzoo.files import atomic_write_text
    from landzoo.training.bench import format_table, make_store, parse_row, run_bench

    for name in ("patches", "batch_size", "warmup", "steps", "repeat"):
        if getattr(args, name) < 1:
            raise LandzooError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.workers < 0:
        raise LandzooError(f"--workers must be >= 0, got {args.workers}")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    try:
        for row in rows:
            parse_row(row)
    except ValueError as err:
        raise LandzooError(str(err)) from None
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    from landzoo.training.checks import check_model_names, check_store

    check_model_names(models)
    if args.store is not None:
        check_store(args.store, ("train", "val"))
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    store = (
        args.store if args.store is not None else make_store(args.work_dir, args.patches, workers=max(1, args.workers))
    )
    report = run_bench(
        store,
        models=models,
        rows=rows,
        batch_size=args.batch_size,
        warmup=args.warmup,
        steps=args.steps,
        device=args.device,
        workers=args.workers,
        repeat=args.repeat,
        log=log,
    )
    text = json.dumps(report, indent=1)
    if args.out is not None:
        atomic_write_text(args.out, text + "\n")
    print(text if args.json else format_table(report))
    return 0 if all("error" not in r for r in report["rows"]) else 1
