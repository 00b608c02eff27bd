"""``landzoo test``: evaluate a checkpoint on a store split (module named ``evaluate`` so pytest leaves it alone)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from landzoo.cli._scoring import add_scoring_arguments, check_scoring_inputs, scoring_kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test",
        help="evaluate a checkpoint on a store split",
        description="Evaluate a checkpoint (a run folder, its .ckpt, or a landzoo model.safetensors) on one split "
        "of a store. The checkpoint's data contract (bands and classes by name and order) must match the store.",
    )
    add_scoring_arguments(p, "evaluate")
    p.add_argument("--out", type=Path, help="write the metrics JSON here")
    p.add_argument("--per-class", action="store_true", help="also print the per-class table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_scoring_inputs(args, args.out)
    from landzoo.training.run import test

    res = test(args.checkpoint, args.data, out=args.out, **scoring_kwargs(args))
    print(json.dumps({"split": res["split"], "patches": res["test_patches"], **res["metrics"]}, indent=2))
    if args.per_class:
        for name, row in res["per_class"].items():
            print(
                f"{name[:48]:<48} "
                + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            )
    return 0
