"""``landzoo generate``: write a synthetic dataset in the exact on-disk format of the real one."""

from __future__ import annotations

import argparse

from landzoo.synthetic import DATASETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="write a synthetic dataset in the real on-disk format (BigEarthNet v1/v2, SEN12MS, EuroSAT)",
        description="Write a synthetic copy of a dataset in its exact on-disk format (folders, file names, "
        "GeoTIFF structure, JSON/parquet/pickle/split lists), with a learnable land-cover signal. The same "
        "--seed and --patches give byte-identical files whatever --workers. Prints the folder to open with "
        "the dataset's reader.",
    )
    p.add_argument("dataset", choices=sorted(DATASETS), help="which dataset format to write")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created; must be empty unless --overwrite)"
    )
    p.add_argument("--patches", type=int, required=True, metavar="N", help="number of patches (images) to write")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="allow a non-empty DIR: what this dataset writes there is deleted first, anything else is kept",
    )
    p.add_argument("--s1", action="store_true", help="also write Sentinel-1 patches (bigearthnet-v1/v2, sen12ms)")
    p.add_argument("--patch-px", type=int, default=None, metavar="PX", help="sen12ms only: patch side (default 256)")
    p.add_argument(
        "--flagged",
        type=int,
        default=None,
        metavar="N",
        help="bigearthnet-v2 only: snow/cloud patches for the second parquet (default: patches/20, rounded up)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.synthetic import GenerateError, generate

    options: dict[str, object] = {}
    if args.s1:
        if args.dataset == "eurosat":
            raise GenerateError("--s1 is not available for eurosat (EuroSAT has no Sentinel-1 data)")
        options["s1"] = True
    if args.patch_px is not None:
        if args.dataset != "sen12ms":
            raise GenerateError("--patch-px applies to sen12ms only (the other datasets have fixed patch sizes)")
        options["patch_px"] = args.patch_px
    if args.flagged is not None:
        if args.dataset != "bigearthnet-v2":
            raise GenerateError("--flagged applies to bigearthnet-v2 only")
        options["flagged"] = args.flagged
    root = generate(
        args.dataset, args.out, args.patches, args.seed, workers=args.workers, overwrite=args.overwrite, **options
    )
    print(root)
    return 0
