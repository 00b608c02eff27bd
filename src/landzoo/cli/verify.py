"""``landzoo verify``: re-check every checksum and the index of a store; exit 1 on any damage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="re-check a store's checksums and index",
        description="Recompute every record's checksum and check the index, markers and shard files against "
        "each other. Damaged records are listed by patch id. Exit status 0: intact; 1: damaged.",
    )
    p.add_argument("store", type=Path, metavar="STORE")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.store.verify import verify_store

    res = verify_store(args.store, progress=not (args.quiet or args.json))
    if args.json:
        print(json.dumps(res.to_json(), indent=1))
        return 0 if res.ok else 1
    for p in res.problems:
        print(f"problem: {p}")
    for d in res.damaged:
        print(f"damaged: {d['id']} (shard {d['shard']}, row {d['offset']}): {d['reason']}")
    if res.ok:
        print(f"{args.store}: OK, {res.checked:,} records verified")
        return 0
    print(f"{args.store}: DAMAGED, {len(res.damaged)} damaged record(s), {len(res.problems)} problem(s)")
    return 1
