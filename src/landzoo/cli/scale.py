"""``landzoo scale``: compound scaling of the WRN-ECA / custom EfficientNet families.

* ``scale grid``: the EfficientNet candidates (alpha, beta, gamma) with alpha*beta^2*gamma^2 close to 2 at
  phi = 1, each built and measured (MACs, parameters, rounded depth/width/resolution).
* ``scale variants``: the registered B0..B7 with their coefficients, dimensions, parameters and MACs.
* ``scale search --data STORE``: trains each candidate briefly with ``landzoo fit``'s engine (same protocol,
  same data) and ranks them on the validation split: :func:`landzoo.scaling.search` with a ``train_fn`` that
  runs :func:`landzoo.training.run.fit`. Finished candidates are reused when the command is run again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from landzoo.cli.models import FORMATS, format_rows
from landzoo.errors import LandzooError

FAMILIES = ("wrn_eca", "efficientnet_eca")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scale",
        help="compound scaling: coefficient grid, scaled variants, search",
        description="Compound scaling (EfficientNet-style) of the paper's WRN-ECA and custom EfficientNet.",
    )
    ssub = p.add_subparsers(dest="scale_command", required=True, metavar="ACTION")

    g = ssub.add_parser(
        "grid",
        help="candidate (alpha, beta, gamma) with measured MACs and parameters",
        description="Enumerate (alpha, beta, gamma) >= 1 on a grid with |alpha*beta^2*gamma^2 - target| <= tolerance "
        "at phi = 1, build each scaled model and measure its MACs and trainable parameters.",
    )
    _common(g)
    g.add_argument("--step", type=float, default=0.1, help="grid step (default: 0.1)")
    g.add_argument("--low", type=float, default=1.0, help="smallest coefficient (default: 1.0)")
    g.add_argument("--high", type=float, default=2.0, help="largest coefficient (default: 2.0)")
    g.add_argument("--target", type=float, default=2.0, help="FLOPs factor per unit phi (default: 2.0)")
    g.add_argument("--tolerance", type=float, default=0.1, help="allowed |product - target| (default: 0.1)")
    g.add_argument("--plot", type=Path, metavar="PNG", help="also write a MACs-vs-parameters scatter plot")
    g.set_defaults(func=run_grid)

    v = ssub.add_parser(
        "variants",
        help="the registered B0..B7 and where their coefficients come from",
        description="The registered compound-scaled variants: coefficients, rounded dimensions, parameters, MACs.",
    )
    _common(v)
    v.set_defaults(func=run_variants)

    s = ssub.add_parser(
        "search",
        help="train each grid candidate briefly and rank on validation",
        description="EfficientNet's search at phi = 1: every grid candidate (alpha, beta, gamma) with "
        "alpha*beta^2*gamma^2 close to TARGET is built, its MACs measured, trained for a few epochs on STORE "
        "under the same protocol and scored on the validation split. Writes OUT/search.{csv,md,json} and "
        "OUT/search.png (score against MACs); candidates already trained in OUT are reused.",
    )
    s.add_argument("--data", type=Path, required=True, metavar="STORE", help="an encoded landzoo store")
    s.add_argument("--family", choices=FAMILIES, default="wrn_eca")
    s.add_argument("--config", type=Path, help="base training config (default: the paper protocol's defaults)")
    s.add_argument("--epochs", type=int, default=2, help="training epochs per candidate (default: 2)")
    s.add_argument("--step", type=float, default=0.1, help="grid step (default: 0.1)")
    s.add_argument("--low", type=float, default=1.0, help="smallest coefficient (default: 1.0)")
    s.add_argument("--high", type=float, default=2.0, help="largest coefficient (default: 2.0)")
    s.add_argument("--target", type=float, default=2.0, help="FLOPs factor per unit phi (default: 2.0)")
    s.add_argument("--tolerance", type=float, default=0.1, help="allowed |product - target| (default: 0.1)")
    s.add_argument("--limit", type=int, help="train only the N candidates with the fewest MACs")
    s.add_argument("--out", type=Path, default=Path("scale-search"), help="output folder (default: scale-search)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="training config overrides, as for fit")
    s.set_defaults(func=run_search)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", choices=FAMILIES, default="wrn_eca", help="architecture family (default: wrn_eca)")
    p.add_argument("--format", choices=FORMATS, default="table")


_GRID_COLUMNS = [
    "alpha",
    "beta",
    "gamma",
    "product",
    "label",
    "blocks_per_group",
    "widths",
    "resolution",
    "params",
    "mmacs",
]
_EFF_COLUMNS = ["alpha", "beta", "gamma", "product", "repeats", "widths", "resolution", "params", "mmacs"]


def _columns(family: str) -> list[str]:
    return _GRID_COLUMNS if family == "wrn_eca" else _EFF_COLUMNS


def run_grid(args: argparse.Namespace) -> int:
    from landzoo import scaling

    cands = scaling.grid_candidates(
        step=args.step, low=args.low, high=args.high, target=args.target, tolerance=args.tolerance
    )
    rows = _with_mmacs(scaling.grid_table(cands, family=args.family, progress=sys.stderr.isatty()))
    print(format_rows(rows, _columns(args.family), args.format))
    if args.plot:
        _plot(rows, args.plot, args.family)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def run_variants(args: argparse.Namespace) -> int:
    from landzoo import scaling

    cands = [scaling.variant_coefficients(phi) for phi in range(8)]
    rows = _with_mmacs(scaling.grid_table(cands, family=args.family, progress=sys.stderr.isatty()))
    for phi, row in enumerate(rows):
        row["name"] = f"{args.family}_b{phi}"
    cols = ["name", "phi", *[c for c in _columns(args.family) if c != "product"]]
    print(format_rows(rows, cols, args.format))
    if args.format == "table":
        print(scaling.COEFFICIENT_PROVENANCE, file=sys.stderr)
    return 0


def run_search(args: argparse.Namespace) -> int:
    import json

    from landzoo import scaling
    from landzoo.training.benchmark import finished_run, interrupted_run
    from landzoo.training.config import deep_merge, load_config, parse_overrides
    from landzoo.training.run import check_store, fit
    from landzoo.training.signals import sigterm_stops, stopped_message

    store = check_store(args.data)
    if args.epochs < 1:
        raise LandzooError(f"--epochs must be at least 1, not {args.epochs}")
    base = parse_overrides(list(args.overrides))  # a malformed override fails before anything trains
    cands = scaling.grid_candidates(
        step=args.step, low=args.low, high=args.high, target=args.target, tolerance=args.tolerance
    )
    if not cands:
        raise LandzooError("no grid candidate satisfies the FLOPs constraint; widen --tolerance or --high")
    if args.limit is not None:
        if args.limit < 1:
            raise LandzooError(f"--limit must be at least 1, not {args.limit}")
        rows = scaling.grid_table(cands, family=args.family, progress=False)
        cands = [
            scaling.Coefficients(r["alpha"], r["beta"], r["gamma"], r["phi"])
            for r in sorted(rows, key=lambda r: r["macs"])[: args.limit]
        ]
    runs = args.out / "runs"

    def run_name(row: dict[str, Any]) -> str:
        return f"{args.family}_a{row['alpha']:g}_b{row['beta']:g}_g{row['gamma']:g}"

    def train(row: dict[str, Any]) -> float:
        name = run_name(row)
        c = scaling.Coefficients(row["alpha"], row["beta"], row["gamma"], row["phi"])
        over = deep_merge(
            base,
            {
                "name": name,
                "out": str(runs),
                "model": {
                    "name": f"{args.family}_b0",
                    "kwargs": {
                        "depth_multiplier": c.depth,
                        "width_multiplier": c.width,
                        "resolution_multiplier": c.resolution,
                    },
                },
                "data": {"store": str(store)},
                "trainer": {"epochs": args.epochs},
            },
        )
        cfg = load_config(args.config, over)
        # trained by an earlier call with exactly these settings: reuse it; interrupted: resume it
        result = finished_run(cfg)
        if result is None:
            resume = interrupted_run(cfg)
            result = fit(cfg, resume=resume, overwrite=not resume, progress=not args.no_progress, label=name)
        if result.get("status") == "preempted":
            raise _Stopped(result)
        score = result.get("val_select")
        if score is None:
            raise LandzooError(f"candidate {name}: training gave no validation score (see {runs / name})")
        return float(score)

    try:
        with sigterm_stops():
            rows = scaling.search(train, cands, family=args.family, progress=not args.no_progress)
    except _Stopped as stop:
        print(stopped_message("scale search", stop.result), flush=True)
        return 143
    rows = _with_mmacs(rows)
    for r in rows:
        r["score"] = round(r["score"], 4)
        r["run"] = run_name(r)
    cols = ["score", *_columns(args.family), "run"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.csv").write_text(format_rows(rows, cols, "csv"), encoding="utf-8")
    (args.out / "search.md").write_text(format_rows(rows, cols, "markdown") + "\n", encoding="utf-8")
    (args.out / "search.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    _plot(rows, args.out / "search.png", args.family, score=True)
    print(format_rows(rows, cols, "table"))
    best = rows[0]
    print(
        f"best: alpha={best['alpha']:g} beta={best['beta']:g} gamma={best['gamma']:g} "
        f"(validation score {best['score']:.4f} after {args.epochs} epoch(s)); table and plot in {args.out}",
        file=sys.stderr,
    )
    return 0


class _Stopped(Exception):
    """SIGTERM stopped a candidate's training (its checkpoint is saved; the same command resumes it)."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["model"])
        self.result = result


def _with_mmacs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        r["mmacs"] = round(r.pop("macs") / 1e6, 1)
    return rows


def _plot(rows: list[dict[str, Any]], path: Path, family: str, *, score: bool = False) -> None:
    """Candidates as points: MACs against parameters, or (``score``) validation score against MACs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=110)
    xs = [r["mmacs"] if score else r["params"] / 1e6 for r in rows]
    ys = [r["score"] if score else r["mmacs"] for r in rows]
    ax.scatter(xs, ys, s=18)
    for r, x, y in zip(rows, xs, ys, strict=True):
        ax.annotate(f"{r['alpha']:g}/{r['beta']:g}/{r['gamma']:g}", (x, y), fontsize=6)
    ax.set_xlabel("MACs per image (M)" if score else "trainable parameters (M)")
    ax.set_ylabel("validation score" if score else "MACs per image (M)")
    ax.set_title(f"{family} candidates at phi = 1 (alpha/beta/gamma)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
