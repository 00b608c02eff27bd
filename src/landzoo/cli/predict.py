"""``landzoo predict``: per-patch class probabilities of a store split, as parquet or CSV."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="write class probabilities per patch (parquet or CSV)",
        description="Predict one split of a store with a checkpoint. The output has one row per patch: the patch "
        "id, then one probability column per class, named by the class name in the checkpoint's order.",
    )
    p.add_argument("checkpoint", type=Path, help="run folder, Lightning .ckpt or model.safetensors")
    p.add_argument("--data", required=True, type=Path, help="store folder")
    p.add_argument("--out", required=True, type=Path, help="output file, .parquet or .csv")
    p.add_argument("--split", default="test", help="split to predict (default: test)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the training config's)")
    p.add_argument("--workers", type=int, help="loader worker processes")
    p.add_argument("--accelerator", default="auto", help="cpu, gpu or auto (default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.training.run import predict

    out = predict(
        args.checkpoint,
        args.data,
        args.out,
        split=args.split,
        batch_size=args.batch_size,
        num_workers=args.workers,
        accelerator=args.accelerator,
    )
    print(f"wrote {out}")
    return 0
