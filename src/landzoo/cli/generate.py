"""``landzoo generate``: write a synthetic dataset in the exact on-disk format of the real one."""

from __future__ import annotations

import argparse
from datetime import datetime

from landzoo.synthetic import DATASETS

#: The synthetic Sentinel-2 L2A scene (a product, not a patch dataset): ``landzoo generate s2-scene``.
S2_SCENE = "s2-scene"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="write a synthetic dataset in the real on-disk format (BigEarthNet v1/v2, SEN12MS, EuroSAT, an S2 scene)",
        description="Write a synthetic copy of a dataset in its exact on-disk format (folders, file names, "
        "GeoTIFF structure, JSON/parquet/pickle/split lists), with a learnable land-cover signal. The same "
        "--seed and --patches give byte-identical files whatever --workers. Prints the folder to open with "
        "the dataset's reader. 's2-scene' writes a Sentinel-2 L2A product instead (a .SAFE with JPEG 2000 "
        "bands, MTD_MSIL2A.xml, SCL, a nodata corner; the same scene as band COGs; optionally its .zip) for "
        "`landzoo map`; its size is --size-km, not --patches.",
    )
    p.add_argument("dataset", choices=[*sorted(DATASETS), S2_SCENE], help="which dataset format to write")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created; must be empty unless --overwrite)"
    )
    p.add_argument("--patches", type=int, metavar="N", help="number of patches (images) to write (datasets)")
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
    s = p.add_argument_group("s2-scene options")
    s.add_argument("--size-km", type=float, default=6.0, help="scene side in km (default 6; 109.8 is a full tile)")
    s.add_argument("--tile", default="T32TNS", help="MGRS tile, sets the UTM zone and corner (default T32TNS)")
    s.add_argument("--date", default="20240612T102559", help="sensing time YYYYMMDDTHHMMSS (default 20240612T102559)")
    s.add_argument("--satellite", default="S2B", choices=("S2A", "S2B", "S2C"), help="spacecraft (default S2B)")
    s.add_argument(
        "--baseline",
        default="05.10",
        help="processing baseline; 04.00 and later add 1000 to every value (default 05.10)",
    )
    s.add_argument("--clouds", type=float, default=0.0, help="fraction of the scene under cloud (default 0)")
    s.add_argument(
        "--nodata-corner", type=float, default=0.1, help="fraction of the scene in the empty corner (default 0.1)"
    )
    s.add_argument("--zip", action="store_true", help="also write the .SAFE as a .zip, as the hub delivers it")
    s.add_argument("--no-tif", action="store_true", help="skip the folder of band COGs")
    s.add_argument("--no-jp2", action="store_true", help="skip the .SAFE (JPEG 2000 encoding is the slow part)")
    p.set_defaults(func=run)


def _scene(args: argparse.Namespace) -> int:
    from landzoo.synthetic import GenerateError
    from landzoo.synthetic.s2_product import generate_s2_scene

    try:
        when = datetime.strptime(args.date, "%Y%m%dT%H%M%S")
    except ValueError:
        raise GenerateError(f"--date {args.date!r} is not YYYYMMDDTHHMMSS") from None
    paths = generate_s2_scene(
        args.out,
        size_km=args.size_km,
        seed=args.seed,
        tile=args.tile,
        satellite=args.satellite,
        when=when,
        baseline=args.baseline,
        clouds=args.clouds,
        nodata_corner=args.nodata_corner,
        tif=not args.no_tif,
        jp2=not args.no_jp2,
        zip_product=args.zip,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    for path in (paths.safe, paths.tif, paths.zip, paths.truth):
        if path is not None:
            print(path)
    return 0


def run(args: argparse.Namespace) -> int:
    from landzoo.synthetic import GenerateError, generate

    if args.dataset == S2_SCENE:
        if args.patches is not None:
            raise GenerateError("s2-scene takes --size-km, not --patches")
        for flag, given in (
            ("--s1", args.s1),
            ("--patch-px", args.patch_px is not None),
            ("--flagged", args.flagged is not None),
        ):
            if given:
                raise GenerateError(f"{flag} is a dataset option; s2-scene does not take it")
        return _scene(args)
    if args.patches is None:
        raise GenerateError(f"{args.dataset} needs --patches N")
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
