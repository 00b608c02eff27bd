"""The training engine: every command that trains (fit, benchmark, scale search, transfer) runs on it.

* :mod:`.schema` / :mod:`.config`: the typed run config, strict validation; its sources and precedence
  (defaults < protocol < file < protocol on the command line < ``key=value``) and ``--print-config``;
* :mod:`.protocols`: ``paper`` and ``modern`` as data;
* :mod:`.module`: the LightningModule (task, loss, optimiser, schedule, input pipeline, frozen backbone,
  metrics, data contract in checkpoints); :mod:`.inputs`: resize or crop, augmentation;
* :mod:`.data`: what the engine trains on (store splits, positions of any batch source, cached tensors) and
  the resumable training epoch;
* :mod:`.engine`: one run (train, select, test, cost); :mod:`.callbacks`, :mod:`.trainer`,
  :mod:`.checkpoint_io` (atomic writes, restricted reads), :mod:`.signals` (SIGTERM between runs);
* :mod:`.run`: ``fit``; :mod:`.evaluation`: ``test`` / ``predict``; :mod:`.loading`: ``load_module``;
* :mod:`.cost`: parameters, MACs, training and inference timings, peak memory, hardware and versions;
* :mod:`.benchmark`: several models under one protocol; :mod:`.report`: its leaderboard, plots, HTML.

Imports are lazy so ``import landzoo.training`` does not pull in torch or Lightning.
"""

from __future__ import annotations

from landzoo._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "landzoo.training.config",
    "ConfigError": "landzoo.training.config",
    "load_config": "landzoo.training.config",
    "resolve_scaling": "landzoo.training.config",
    "PROTOCOLS": "landzoo.training.protocols",
    "LandCoverModule": "landzoo.training.module",
    "fit": "landzoo.training.run",
    "test": "landzoo.training.evaluation",
    "predict": "landzoo.training.evaluation",
    "load_module": "landzoo.training.loading",
    "check_store": "landzoo.training.checks",
    "make_datamodule": "landzoo.training.data",
    "RunError": "landzoo.training.errors",
    "train_and_test": "landzoo.training.engine",
    "run_benchmark": "landzoo.training.benchmark",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
