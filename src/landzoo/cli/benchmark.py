"""``landzoo benchmark``: several models, one protocol, one machine -> leaderboard, plots, HTML report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="train and evaluate several models under one protocol; write a leaderboard and report",
        description="Train and evaluate each model under the same protocol, data and hardware, then write "
        "OUT/leaderboard.{csv,json,md}, OUT/plots/*.png and a self-contained OUT/report.html. Finished models "
        "are reused unless --rerun, an interrupted one is resumed; a failed model is listed with its error and "
        "the others still run. SIGTERM stops the benchmark once the running model has saved its checkpoint "
        "(exit 143); the same command continues it.",
    )
    p.add_argument(
        "--models",
        required=True,
        help="comma-separated zoo names, e.g. wrn_eca_b0,resnet50,mixer_p12_120; LABEL=NAME runs NAME as LABEL",
    )
    p.add_argument(
        "--model-kwargs",
        type=json.loads,
        default=None,
        metavar="JSON",
        help='architecture options per model label, e.g. \'{"resnet50_mini": {"layers": [1, 1, 1, 1]}}\'',
    )
    p.add_argument("--data", required=True, type=Path, help="store folder")
    p.add_argument(
        "--protocol",
        default=None,
        help="paper or modern: sets every protocol key over --config's (default: the config's protocol, else paper)",
    )
    p.add_argument("--epochs", type=int, help="epochs for every model (default: the protocol's)")
    p.add_argument("--out", type=Path, default=Path("benchmark"), help="output folder (default: benchmark)")
    p.add_argument("--rerun", action="store_true", help="train again models that finished earlier")
    p.add_argument("--config", type=Path, help="optional YAML applied to every model")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.training.benchmark import format_leaderboard, run_benchmark
    from landzoo.training.signals import sigterm_stops, stopped_message

    with sigterm_stops():
        res = run_benchmark(
            args.models.split(","),
            args.data,
            protocol=args.protocol,
            epochs=args.epochs,
            out=args.out,
            rerun=args.rerun,
            config=args.config,
            overrides=args.overrides,
            model_kwargs=args.model_kwargs,
            progress=not args.no_progress,
        )
    if res.get("status") == "preempted":
        print(stopped_message("benchmark", res), flush=True)
        return 143  # 128 + SIGTERM: what schedulers expect from a preempted job
    print(format_leaderboard(res["rows"], res["baseline"]))
    print(f"report: {res['paths']['html']}")
    return 0 if all(r["status"] == "ok" for r in res["rows"]) else 1
