"""``landzoo encode``: convert a raw dataset into a store (parallel, resumable, checksummed)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from landzoo.cli._reader_options import add_reader_options, reader_arguments


def register(sub: argparse._SubParsersAction) -> None:
    from landzoo.datasets import READERS

    p = sub.add_parser(
        "encode",
        help="encode a raw dataset into a fast, verified, sharded store",
        description="Read a raw dataset through its reader and write a store: native-resolution arrays per band "
        "group, sharded, with a parquet index and a manifest carrying the data contract. Interrupted (even by "
        "kill -9)? Run the same command again: it finishes what is missing and gives the same store. Patches "
        "that a split list names but that are absent on disk are counted per split, printed in a line and "
        "recorded in STORE/report.json (--missing report, the default for every dataset), or are each a bad "
        "patch (--missing error: encode stops, or lists them with --skip-bad).",
    )
    p.add_argument(
        "src",
        type=Path,
        metavar="SRC",
        help="raw dataset folder, or the downloaded archive (.tar, .tar.gz, .tgz, .zip): unpacked first",
    )
    p.add_argument("--dataset", required=True, choices=sorted(READERS), help="dataset layout of SRC")
    p.add_argument("--out", required=True, type=Path, metavar="STORE", help="store folder to create (or resume)")
    p.add_argument("--bands", default=None, help="band selection: a name (s2_10m_20m, s2_all, ...) or B02,B03,...")
    p.add_argument("--classes", default=None, help="class set to label with (default: the dataset's first)")
    p.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default: 2 or CPUs)"
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unreadable patches and list them with the reason in STORE/report.json (default: stop)",
    )
    p.add_argument("--shard-mb", type=float, default=1024, help="target shard size in MiB (default: 1024)")
    p.add_argument("--shard-records", type=int, default=None, help="patches per shard (overrides --shard-mb)")
    p.add_argument(
        "--unpack-dir",
        type=Path,
        default=None,
        help="where an archive SRC is unpacked (default: STORE.unpacked beside the store; deleted after success)",
    )
    p.add_argument("--keep-unpacked", action="store_true", help="keep the unpacked archive after encoding")
    add_reader_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    from landzoo.datasets import DatasetError
    from landzoo.store.archive import ARCHIVE_SUFFIXES, dataset_root, is_archive, unpack_archive
    from landzoo.store.encode import encode

    reader_kwargs = reader_arguments(args)
    if reader_kwargs.get("reference_map"):
        # The reader would read and check every reference map, and the store would silently drop them.
        raise DatasetError(
            "encode does not store reference maps; leave out -o reference_map=true "
            "(`landzoo inspect -o reference_map=true` checks them)"
        )
    src, unpacked = args.src, None
    if src.is_file() and not is_archive(src):
        raise DatasetError(
            f"{src} is a file: SRC is the dataset folder or its downloaded archive ({', '.join(ARCHIVE_SUFFIXES)})"
        )
    if is_archive(src):
        unpacked = args.unpack_dir or args.out.with_name(args.out.name + ".unpacked")
        src = dataset_root(unpack_archive(args.src, unpacked, progress=not args.quiet))
    res = encode(
        args.dataset,
        src,
        args.out,
        bands=args.bands,
        classes=args.classes,
        reader_kwargs=reader_kwargs,
        workers=args.workers,
        skip_bad=args.skip_bad,
        shard_records=args.shard_records,
        shard_mb=args.shard_mb,
        progress=not args.quiet,
    )
    kept = f", {res.resumed_shards} shard(s) already complete" if res.resumed_shards else ""
    print(
        f"store {res.store}: {res.total:,} patches; encoded {res.encoded:,} in {res.encode_seconds:.1f} s "
        f"({res.patches_per_s:,.0f} patches/s; {res.seconds:.1f} s with opening and indexing){kept}"
    )
    if res.skipped:
        print(f"skipped {res.skipped} bad patch(es): see {res.store / 'report.json'}")
    _print_missing(res.store)
    if unpacked is not None and not args.keep_unpacked:
        shutil.rmtree(unpacked)  # scratch: the store now holds everything that was read
    return 0


def _print_missing(store: Path) -> None:
    """The line about listed patches absent on disk (``--missing report``), from the store's report.json."""
    import json

    from landzoo.datasets.summary import missing_line

    try:
        missing = json.loads((store / "report.json").read_text())["reader"].get("missing_from_disk") or {}
    except (OSError, ValueError, KeyError, AttributeError):
        return  # the report is the store's; verify/info speak about a damaged one
    if missing:
        print(missing_line(missing, where=f"recorded in {store / 'report.json'}"))
