"""``landzoo predict``: per-patch class probabilities of a store split, as parquet or CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from landzoo.cli._scoring import add_scoring_arguments, check_scoring_inputs, scoring_kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="write class probabilities per patch (parquet or CSV)",
        description="Predict one split of a store with a checkpoint. The output has one row per patch: the patch "
        "id, then one probability column per class, named by the class name in the checkpoint's order. "
        "To map a whole Sentinel-2 scene, use `landzoo map`.",
    )
    add_scoring_arguments(p, "predict")
    p.add_argument("--out", required=True, type=Path, help="output file, .parquet or .csv")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.errors import LandzooError

    if args.out.suffix.lower() not in (".parquet", ".csv"):
        raise LandzooError(f"--out {args.out}: choose a .parquet or .csv file name")
    check_scoring_inputs(args, args.out)
    from landzoo.training.run import predict

    out = predict(args.checkpoint, args.data, args.out, **scoring_kwargs(args))
    print(f"wrote {out}")
    return 0
