"""``landzoo info``: what a store holds (counts per split, label frequencies, bands, size on disk)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a store",
        description="Counts per split, label frequencies, bands and size on disk of a store.",
    )
    p.add_argument("store", type=Path, metavar="STORE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.store.info import format_info, store_info

    info = store_info(args.store)
    print(json.dumps(info, indent=1, ensure_ascii=False) if args.json else format_info(info))
    return 0
