"""``landzoo map``: land-cover maps of whole Sentinel-2 scenes from a trained patch classifier."""

from __future__ import annotations

import argparse
from pathlib import Path


def _offset(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a number such as -1000") from None


def _threads(text: str) -> int | str:
    if text.upper() in ("ALL_CPUS", "AUTO"):
        return "ALL_CPUS" if text.upper() == "ALL_CPUS" else 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor ALL_CPUS") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "map",
        help="land-cover maps of Sentinel-2 scenes (.SAFE, .zip, band folders, GeoTIFF) as COGs",
        description="Slide a checkpoint over whole Sentinel-2 L2A scenes and write, per scene, into --out: "
        "<scene>_probs.tif (one band per class), <scene>_labels.tif (multi-label decision at the threshold), "
        "<scene>_class.tif (most probable class, colour table), <scene>_quicklook.png and <scene>_summary.json. "
        "Windows are the model's 1200 m patch footprint every --stride metres, read at each band's native "
        "resolution as BigEarthNet stores it; overlapping windows are averaged onto the stride grid. Finished "
        "scenes are skipped, interrupted ones redone; under torchrun or SLURM each rank maps every N-th scene.",
    )
    p.add_argument("checkpoint", type=Path, help="run folder, .ckpt, model.safetensors (+ .json) or export folder")
    p.add_argument(
        "scenes",
        nargs="+",
        type=Path,
        metavar="SCENE",
        help=".SAFE folder, its .zip, a folder of per-band GeoTIFF/COG files (B02.tif, *_B02_10m.tif) or one "
        "multi-band GeoTIFF (with --bands)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument(
        "--stride", type=int, default=1200, metavar="M", help="window step in metres; divides 1200 (default 1200)"
    )
    p.add_argument(
        "--dtype",
        choices=("uint8", "float16", "float32"),
        default="uint8",
        help="probabilities as uint8 (x 250, 255 = nodata) or float (NaN = nodata) (default uint8)",
    )
    p.add_argument("--mask-clouds", action="store_true", help="skip windows that the SCL layer marks as cloudy")
    p.add_argument(
        "--cloud-threshold",
        type=float,
        default=0.1,
        metavar="F",
        help="with --mask-clouds: largest fraction of cloud, cirrus or shadow a scored window may hold (default 0.1)",
    )
    p.add_argument(
        "--nodata-threshold",
        type=float,
        default=0.0,
        metavar="F",
        help="largest fraction of nodata pixels a scored window may hold (default 0: none)",
    )
    p.add_argument(
        "--offset",
        type=_offset,
        default=None,
        metavar="auto|N",
        help="value added to every band before the model: 'auto' (default) takes the product's BOA_ADD_OFFSET "
        "(-1000 from baseline 04.00; 0 without metadata); a number forces it for every band",
    )
    p.add_argument("--bands", metavar="NAMES", help="band names of a multi-band GeoTIFF in file order, B02,B03,...")
    p.add_argument(
        "--threshold", type=float, metavar="T", help="decision threshold (default: the checkpoint's, else 0.5)"
    )
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="windows per batch (default 256)")
    p.add_argument(
        "--band-threads",
        type=int,
        default=0,
        metavar="N",
        help="threads reading bands concurrently (default 0 = auto: one per band, up to the CPU count)",
    )
    p.add_argument(
        "--gdal-threads",
        type=_threads,
        default=0,
        metavar="N|ALL_CPUS",
        help="GDAL decoding threads per file (default 0 = auto: the CPUs left over by --band-threads)",
    )
    p.add_argument(
        "--infer-threads",
        type=int,
        default=0,
        metavar="N",
        help="batches run in parallel, one intra-op thread each (default 0 = auto: one per core on a CPU, 1 on a GPU)",
    )
    p.add_argument("--device", default="auto", help="auto (this rank's GPU if any, else CPU), cpu, cuda, cuda:N")
    p.add_argument(
        "--memory-format",
        choices=("channels_last", "contiguous"),
        default="channels_last",
        help="layout of the convolutions: channels_last (default, faster) or contiguous (the arithmetic of "
        "`landzoo predict` on a CPU, to the last bit)",
    )
    p.add_argument("--no-quicklook", action="store_true", help="skip the PNG quicklook")
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="skip checking the band files against the product's manifest.safe (sizes and checksums)",
    )
    p.add_argument("--force", action="store_true", help="redo scenes that are already finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo import contract
    from landzoo.mapping.run import MapOptions, map_scenes

    options = MapOptions(
        stride=args.stride,
        dtype=args.dtype,
        mask_clouds=args.mask_clouds,
        cloud_threshold=args.cloud_threshold,
        nodata_threshold=args.nodata_threshold,
        offset=args.offset,
        bands=contract.resolve_bands(args.bands) if args.bands else None,
        threshold=args.threshold,
        batch_size=args.batch_size,
        band_threads=args.band_threads,
        gdal_threads=args.gdal_threads,
        device=args.device,
        memory_format=args.memory_format,
        infer_threads=args.infer_threads,
        quicklook=not args.no_quicklook,
        verify=not args.no_verify,
        progress=not args.no_progress,
    )
    map_scenes(args.checkpoint, args.scenes, args.out, options, force=args.force)
    return 0
