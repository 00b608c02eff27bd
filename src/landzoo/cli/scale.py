"""``landzoo scale``: compound scaling of the WRN-ECA / custom EfficientNet families.

* ``scale grid``: the EfficientNet candidates (alpha, beta, gamma) with alpha*beta^2*gamma^2 close to 2 at
  phi = 1, each built and measured (MACs, parameters, rounded depth/width/resolution).
* ``scale variants``: the registered B0..B7 with their coefficients, dimensions, parameters and MACs.
* ``scale search --data STORE``: trains each candidate briefly and ranks them on validation. Not available
  yet: it needs the training engine (issue 5); :func:`landzoo.scaling.search` takes its ``train_fn``.
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
        help="train each grid candidate briefly and rank on validation (needs the training engine)",
        description="EfficientNet's search: every grid candidate trained briefly on STORE and scored on its "
        "validation split. Not available yet: it needs the training engine (issue 5).",
    )
    s.add_argument("--data", type=Path, required=True, metavar="STORE", help="an encoded landzoo store")
    s.add_argument("--family", choices=FAMILIES, default="wrn_eca")
    s.add_argument("--epochs", type=int, default=2, help="training epochs per candidate (default: 2)")
    s.add_argument("--step", type=float, default=0.1)
    s.add_argument("--tolerance", type=float, default=0.1)
    s.add_argument("--out", type=Path, help="folder for the table and the plot")
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
    raise LandzooError(
        "not available yet: needs the training engine (issue 5); `landzoo scale grid` lists the candidates "
        "with their MACs, and landzoo.scaling.search(train_fn, ...) runs the search once a train_fn exists"
    )


def _with_mmacs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        r["mmacs"] = round(r.pop("macs") / 1e6, 1)
    return rows


def _plot(rows: list[dict[str, Any]], path: Path, family: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=110)
    ax.scatter([r["params"] / 1e6 for r in rows], [r["mmacs"] for r in rows], s=18)
    for r in rows:
        ax.annotate(f"{r['alpha']:g}/{r['beta']:g}/{r['gamma']:g}", (r["params"] / 1e6, r["mmacs"]), fontsize=6)
    ax.set_xlabel("trainable parameters (M)")
    ax.set_ylabel("MACs per image (M)")
    ax.set_title(f"{family} candidates at phi = 1 (alpha/beta/gamma)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
