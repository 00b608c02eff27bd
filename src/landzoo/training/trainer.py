"""How landzoo sets up Lightning's ``Trainer``: devices, precision, checkpoint I/O, logger, console, ranks.

One place for every command that trains or evaluates (fit, test, predict, benchmark, transfer, scale search),
so they share the device rules, the precision rule, the logger choice and a console without Lightning's
repeated noise.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch

from landzoo.training.checkpoint_io import AtomicCheckpointIO
from landzoo.training.config import TrainConfig
from landzoo.training.errors import RunError

__all__ = [
    "LOGGERS",
    "env_rank",
    "is_global_zero",
    "make_logger",
    "make_trainer",
    "rank0_print",
    "resolve_precision",
]

# Lightning noise that says nothing about a landzoo run (kept out of every fit/test/predict/benchmark log)
for _pattern in (
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*smaller than the logging interval.*",
    r".*does not have many workers.*",
    r".*exists and is not empty.*",
    r".*Consider setting `persistent_workers=True`.*",
    r".*`weights_only` was not set.*",
    r".*module\(s\) in eval mode at the start of training.*",
    r".*`max_epochs=\d+` reached.*",
    r".*You're resuming from a checkpoint that ended before the epoch ended.*",
):
    warnings.filterwarnings("ignore", message=_pattern)


class _ConsoleFilter(logging.Filter):
    """Drops Lightning's tips, and shows its device banner ("GPU available: ...") once per process, not per run."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if "Tip:" in msg or "`Trainer.fit` stopped" in msg:
            return False
        if msg.startswith(("GPU available", "TPU available", "HPU available", "LOCAL_RANK", "Restoring states")):
            if msg in self.seen:
                return False
            self.seen.add(msg)
        return True


_CONSOLE = _ConsoleFilter()
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero", "lightning.pytorch"):
    logging.getLogger(_name).addFilter(_CONSOLE)
logging.getLogger("lightning.pytorch.accelerators.cuda").addFilter(_CONSOLE)


# ---- ranks --------------------------------------------------------------------------------------------
def env_rank() -> int:
    """This process' global rank before Lightning is set up (0 when not launched distributed)."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def is_global_zero() -> bool:
    """True in the process that writes results (rank 0), before, during or after a distributed run."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return env_rank() == 0


def rank0_print(trainer: L.Trainer | None, msg: str) -> None:
    """Print on rank 0 only (before a Trainer exists: by the launcher's environment)."""
    if (trainer is None and env_rank() == 0) or (trainer is not None and trainer.is_global_zero):
        print(msg, flush=True)


# ---- devices and precision ----------------------------------------------------------------------------
def _cuda_wanted(accelerator: str) -> bool:
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_precision(cfg: TrainConfig) -> str:
    """``auto`` -> bf16-mixed on a CUDA device that supports bf16, else 32-true (CPU: fp32)."""
    p = cfg.trainer.precision
    if p != "auto":
        return "32-true" if p == "32" else p
    if _cuda_wanted(cfg.trainer.accelerator) and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def _devices(cfg: TrainConfig) -> int | str:
    d = cfg.trainer.devices
    if isinstance(d, str) and d != "auto":
        return int(d)
    if d == "auto" and not _cuda_wanted(cfg.trainer.accelerator):
        return 1  # on CPU "auto" would mean one process per core: not what anyone wants by default
    return d


# ---- loggers ------------------------------------------------------------------------------------------
#: ``trainer.logger`` -> (Lightning logger class path, the pip extra that provides its package or None).
LOGGERS: dict[str, tuple[str, str | None]] = {
    "csv": ("lightning.pytorch.loggers.CSVLogger", None),
    "tensorboard": ("lightning.pytorch.loggers.TensorBoardLogger", "tensorboard"),
    "mlflow": ("lightning.pytorch.loggers.MLFlowLogger", "mlflow"),
    "wandb": ("lightning.pytorch.loggers.WandbLogger", "wandb"),
}
_LOGGER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",), "wandb": ("wandb",)}


def make_logger(cfg: TrainConfig, run_dir: Path) -> Any:
    """The run's logger, chosen by ``trainer.logger`` (CSV by default; ``none`` for no logger).

    Every logger writes under the run folder where it can (``logs/``); MLflow and W&B also go wherever their
    own environment variables point (``MLFLOW_TRACKING_URI``, ``WANDB_MODE``...). A logger whose package is
    not installed is a one-line error naming the extra to install.
    """
    import importlib.util

    name = cfg.trainer.logger
    if name == "none":
        return False
    path, extra = LOGGERS[name]
    for pkg in _LOGGER_PACKAGES.get(name, ()):
        if importlib.util.find_spec(pkg) is not None:
            break
    else:
        if extra is not None:
            raise RunError(
                f"trainer.logger={name} needs the {extra} package: pip install 'landzoo[{extra}]' (or use the default csv)"
            )
    module, cls_name = path.rsplit(".", 1)
    cls = getattr(__import__(module, fromlist=[cls_name]), cls_name)
    if name == "csv":
        return cls(str(run_dir), name="logs")  # logs/version_N: one per start, a resume keeps the history
    if name == "tensorboard":
        return cls(str(run_dir), name="logs", default_hp_metric=False)
    if name == "mlflow":
        return cls(experiment_name="landzoo", run_name=cfg.run_name, save_dir=str(run_dir / "logs" / "mlruns"))
    return cls(name=cfg.run_name, save_dir=str(run_dir / "logs"), project="landzoo")


# ---- the Trainer --------------------------------------------------------------------------------------
def make_trainer(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    callbacks: list[L.Callback],
    progress: bool,
    logger: Any = False,
    devices: int | str | None = None,
    strategy: str | None = None,
) -> L.Trainer:
    """A Trainer for ``cfg``: devices, precision, accumulation, clipping; validation is scheduled by the engine."""
    t = cfg.trainer
    return L.Trainer(
        accelerator=t.accelerator,
        devices=_devices(cfg) if devices is None else devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy if strategy is None else strategy,
        precision=resolve_precision(cfg),  # type: ignore[arg-type]
        max_epochs=t.epochs,
        accumulate_grad_batches=t.accumulate,
        check_val_every_n_epoch=t.val_every_n_epochs,
        gradient_clip_val=t.gradient_clip,
        deterministic=t.deterministic,
        log_every_n_steps=t.log_every_n_steps,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the store DataModule shards per rank itself
        enable_progress_bar=progress,
        enable_model_summary=False,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
    )
