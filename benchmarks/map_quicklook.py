"""Reproduce the quicklook of README.md / docs/map.md and score the map against the synthetic scene's truth.

    python benchmarks/map_quicklook.py RUN_DIR            # a wrn_eca_b0 trained on synthetic BigEarthNet-v1

The README's run: ``landzoo generate bigearthnet-v1 --out raw --patches 3000 --seed 42``, ``landzoo encode
--dataset bigearthnet-v1 raw --out store``, ``landzoo fit --config demo model.kwargs.init=torch data.store=store
trainer.epochs=8 out=runs/wrn`` (the demo's settings, 8 epochs on the CPU), then this script on
``runs/wrn/wrn_eca_b0``. It generates a 24 km synthetic L2A scene with clouds, maps it with ``--mask-clouds``
at the default stride (one map pixel per BigEarthNet cell, so each can be scored against the cell's true
BigEarthNet-19 labels), copies the quicklook to ``docs/map-quicklook.png`` and writes
``benchmarks/results/map-quicklook.json`` (micro/macro F1 of the map's labels against the truth).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from landzoo import contract
from landzoo.mapping.run import MapOptions, map_scenes
from landzoo.synthetic.s2_product import generate_s2_scene

ROOT = Path(__file__).resolve().parents[1]


def _small_png(src: Path, dst: Path, width: int = 1200) -> None:
    """The quicklook for the repository: scaled to ``width`` px and quantised to 256 colours (a small file)."""
    from PIL import Image

    img = Image.open(src).convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(dst, optimize=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--size-km", type=float, default=24.0)
    p.add_argument("--clouds", type=float, default=0.08)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    from sklearn.metrics import f1_score

    work = Path(tempfile.mkdtemp(prefix="landzoo-quicklook-"))
    try:
        scene = generate_s2_scene(work / "scene", size_km=args.size_km, seed=args.seed, clouds=args.clouds, tif=False)
        (summary,) = map_scenes(args.checkpoint, [scene.safe], work / "maps", MapOptions(mask_clouds=True))
        labels = rasterio.open(work / "maps" / f"{scene.product}_labels.tif").read()
        truth = json.loads(scene.truth.read_text())
        y_true, y_pred = [], []
        for cell in truth["cells"]:
            r, c = cell["row"], cell["col"]
            if r < labels.shape[1] and c < labels.shape[2] and labels[0, r, c] != 255:
                y_true.append(contract.multi_hot(cell["ben19"], contract.BEN19))
                y_pred.append(labels[:, r, c])
        t, pr = np.array(y_true), np.array(y_pred)
        result = {
            "checkpoint": str(args.checkpoint),
            "scene": {"size_km": args.size_km, "clouds": args.clouds, "seed": args.seed},
            "windows": summary["windows"],
            "cells_scored_against_truth": len(t),
            "f1_micro": float(f1_score(t, pr, average="micro", zero_division=0)),
            "f1_macro_present_classes": float(
                f1_score(t[:, t.sum(0) > 0], pr[:, t.sum(0) > 0], average="macro", zero_division=0)
            ),
        }
        _small_png(work / "maps" / f"{scene.product}_quicklook.png", ROOT / "docs" / "map-quicklook.png")
        out = ROOT / "benchmarks" / "results" / "map-quicklook.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
