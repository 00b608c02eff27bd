"""``landzoo fit``: train one model from a YAML config plus ``key=value`` overrides."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="train a model from a config (Lightning; one GPU, several GPUs or nodes)",
        description="Train one model under a protocol (paper or modern), select the checkpoint on validation, "
        "evaluate it on test and store metrics and cost in RUN_DIR/results.json. Overrides are dotted "
        "key=value pairs, e.g. trainer.epochs=5 data.batch_size=256 protocol=modern. Precedence: an explicit "
        "key=value > a protocol named on the command line (it sets all its keys) > the --config file > the "
        "file's protocol > defaults (--print-config shows each value's source). Launch with torchrun or "
        "srun for several processes (see docs/training.md).",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="YAML config file, or the name of a shipped one (e.g. bigearthnet-v1/wrn_eca_b0, from configs/)",
    )
    p.add_argument("--data", help="store folder (same as data.store=...)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.ckpt if present")
    p.add_argument("--overwrite", action="store_true", help="discard an earlier run of the same name and start again")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective config, each value with its source (default, protocol, file, command line), and exit",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, dotted keys")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.training.config import format_with_sources, load_config_with_sources

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.store={args.data}")
    cfg, sources = load_config_with_sources(args.config, overrides)
    if args.print_config:
        print(format_with_sources(cfg, sources), end="")
        return 0
    from landzoo.training.run import fit
    from landzoo.training.signals import sigterm_stops

    with sigterm_stops():
        result = fit(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    if result["status"] == "preempted":
        return 143  # 128 + SIGTERM: what schedulers expect from a preempted job
    from landzoo.training.run import is_global_zero

    if is_global_zero():
        test = result.get("test", {})
        keys = ("f1_macro", "f1_micro", "map_macro")
        print(json.dumps({"run_dir": result["run_dir"], **{f"test_{k}": test.get(k) for k in keys}}))
    return 0
