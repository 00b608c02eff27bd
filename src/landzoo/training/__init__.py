"""The training engine: Lightning module, configs and protocols, cost measurement, runs and the benchmark.

* :mod:`.config`: typed run config, YAML + ``key=value`` overrides, strict validation, batch/lr scaling;
* :mod:`.protocols`: ``paper`` and ``modern`` as data;
* :mod:`.module`: the LightningModule (loss, optimiser, schedule, metrics, data contract in checkpoints);
* :mod:`.cost`: parameters, MACs, training and inference timings, peak memory, hardware and versions;
* :mod:`.run`: ``fit`` / ``test`` / ``predict`` with resume and preemption;
* :mod:`.benchmark`: several models under one protocol -> leaderboard, plots, HTML report.

Imports are lazy so ``import landzoo.training`` does not pull in torch or Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "landzoo.training.config",
    "ConfigError": "landzoo.training.config",
    "load_config": "landzoo.training.config",
    "resolve_scaling": "landzoo.training.config",
    "PROTOCOLS": "landzoo.training.protocols",
    "LandCoverModule": "landzoo.training.module",
    "fit": "landzoo.training.run",
    "test": "landzoo.training.run",
    "predict": "landzoo.training.run",
    "RunError": "landzoo.training.run",
    "run_benchmark": "landzoo.training.benchmark",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'landzoo.training' has no attribute {name!r}")
