"""Land-cover maps of whole Sentinel-2 scenes: a trained patch classifier slid over a scene (``landzoo map``).

The stages, one module each:

* :mod:`.product` reads a Sentinel-2 L2A product's metadata (``MTD_MSIL2A.xml``: baseline, ``BOA_ADD_OFFSET``,
  nodata) and finds its band files in a ``.SAFE`` folder or its ``.zip``;
* :mod:`.sources` opens any scene input (``.SAFE``, ``.zip``, a folder of per-band GeoTIFF/COG files, one
  multi-band GeoTIFF) as a :class:`~.sources.Scene`: the band files matched by name to the checkpoint's
  data contract, each on its native grid, the radiometric offsets to apply, the SCL layer;
* :mod:`.grid`: the sliding-window grid (1200 m footprint, ``--stride``) and the map grid (pixel = stride);
* :mod:`.reader`: windowed reads by strips of window rows, in chunks aligned to the files' blocks, a thread
  pool over bands and a read-ahead thread, with nodata and cloud cover per window;
* :mod:`.model`: a checkpoint -> (model in eval mode, data contract, identity, threshold);
* :mod:`.engine`: one scene: batches of windows through the model, overlapping windows averaged onto the
  stride grid, map rows handed to the writers as soon as they are complete;
* :mod:`.writers`: Cloud-Optimised GeoTIFFs (probabilities, labels, most probable class), all atomic;
  :mod:`.quicklook` the PNG; :mod:`.colours` the class colours (CORINE's for BigEarthNet);
* :mod:`.run`: many scenes with resume (a finished scene is skipped, a partial one redone) and the split of
  the scene list over ranks (torchrun / SLURM);
* :mod:`.bench`: windows/s and the read / infer / write split on a synthetic full-size tile.

Imports are lazy so that ``import landzoo.mapping`` does not pull in torch, rasterio or Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MapError": "landzoo.mapping.errors",
    "MapOptions": "landzoo.mapping.run",
    "map_scenes": "landzoo.mapping.run",
    "map_scene": "landzoo.mapping.engine",
    "open_scene": "landzoo.mapping.sources",
    "Scene": "landzoo.mapping.sources",
    "WindowGrid": "landzoo.mapping.grid",
    "load_map_model": "landzoo.mapping.model",
    "scene_shard": "landzoo.mapping.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'landzoo.mapping' has no attribute {name!r}")
