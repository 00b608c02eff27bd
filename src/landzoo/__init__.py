"""landzoo: benchmark, scale, train and transfer deep models for Sentinel-2 land-cover classification.

The package is laid out by role:

* :mod:`landzoo.contract`: the data contract (band and class names, orders, mappings, statistics);
* :mod:`landzoo.datasets`: readers of the raw datasets (BigEarthNet v1/v2, SEN12MS, EuroSAT);
* :mod:`landzoo.synthetic`: writers of format-exact synthetic copies of those datasets;
* :mod:`landzoo.store`: the encoded store, its Dataset/DataModule, encode/verify/info/bench-io;
* :mod:`landzoo.transforms`: on-device normalisation, resampling and augmentation;
* :mod:`landzoo.models` and :mod:`landzoo.scaling`: the model zoo (registered in timm) and compound scaling;
* :mod:`landzoo.metrics`: the multi-label metrics, synchronised across processes;
* :mod:`landzoo.training`: the Lightning module, protocols, cost measurement, benchmark and leaderboard;
* :mod:`landzoo.checkpoint`: checkpoints that carry their data contract;
* :mod:`landzoo.export`: the model-hub folder (loadable by timm), ONNX, TorchScript and ``torch.export`` graphs;
* :mod:`landzoo.inference`: :func:`load_model`, a trained model with its contract and transform, from Python;
* :mod:`landzoo.transfer`: band-aware transfer to SEN12MS, EuroSAT and BigEarthNet v2;
* :mod:`landzoo.cli`: the ``landzoo`` command.

``import landzoo`` is light (no torch, timm, Lightning, rasterio or pandas), so the command line starts at
once and a store can be read without them. The zoo's architectures are registered in timm as soon as timm is
imported, in either order: ``import landzoo, timm; timm.create_model("wrn_eca_b0", in_chans=10,
num_classes=19)`` works, as does ``import timm, landzoo``. ``import landzoo.models`` registers them explicitly.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]

#: Attributes imported on first use (each pulls in torch).
_LAZY = {"load_model": "landzoo.inference"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("models", "checkpoint", "export", "inference", "transforms", "metrics", "scaling"):
        return importlib.import_module(f"landzoo.{name}")
    raise AttributeError(f"module 'landzoo' has no attribute {name!r}")


def _register_zoo() -> None:
    """Import :mod:`landzoo.models`, whose family modules register the zoo in timm's registry."""
    try:
        importlib.import_module("landzoo.models")
    except Exception as err:  # never make ``import timm`` fail because of landzoo; say why the zoo is missing
        warnings.warn(f"landzoo could not register its models in timm: {err}", RuntimeWarning, stacklevel=2)


class _RegisterZooWithTimm(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``timm`` is first imported, it registers the zoo right after timm has loaded.

    Why: registering at ``import landzoo`` would import torch and timm there (seconds), which every CLI call
    and every store reader would pay; registering on timm's import keeps ``import landzoo, timm`` working.
    """

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("timm")
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            _register_zoo()

        loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


if "timm" in sys.modules:
    _register_zoo()
elif not any(isinstance(f, _RegisterZooWithTimm) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterZooWithTimm())
