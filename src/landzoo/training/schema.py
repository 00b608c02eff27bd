"""The run configuration's schema: typed dataclasses, strict validation, and the batch/lr scaling arithmetic.

Why strict: the reference code read a JSON dict with ``cfg.get`` and silently trained a linear model on a
misspelt model name; several of its keys (``augment``, ``fine_tune``) were never read. Here every key is a
dataclass field, an unknown key is a one-line :class:`ConfigError` naming the key and the valid ones, and a
wrong type or an impossible value (a negative size, a global batch that does not split over the processes)
is refused before anything is built. Where the values come from (defaults, protocol, file, command line)
and which one wins is :mod:`landzoo.training.config`.

Batch size and learning rate are explicit: ``data.batch_size`` is the **global** batch (all processes and
accumulation steps together); :func:`resolve_scaling` derives the per-device batch and the effective
learning rate from the world size, and the run logs and stores all of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from landzoo.errors import LandzooError

__all__ = [
    "ConfigError",
    "CostConfig",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Scaling",
    "ScheduleConfig",
    "TrainConfig",
    "TrainerConfig",
    "flatten",
    "resolve_scaling",
]


class ConfigError(LandzooError, ValueError):
    """A config file or override that names an unknown key, has a wrong type or an impossible value."""


@dataclass
class ModelConfig:
    """Which architecture, on which bands, for which classes (names from the model zoo and the contract)."""

    name: str = "wrn_eca_b0"
    bands: str = "s2_10m_20m"
    classes: str = "ben19"
    #: Extra keyword arguments for ``landzoo.models.create_model`` (e.g. a smaller width for tests).
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Start from these weights: a landzoo checkpoint (``model.safetensors`` or a run folder) whose data contract
    #: equals the model's (bands, classes, input size), instead of the architecture's own initialisation.
    init_from: str | None = None
    #: Train the classifier alone: the encoder's weights and BatchNorm statistics stay as initialised.
    freeze_backbone: bool = False


@dataclass
class DataConfig:
    """The encoded store and how to read it."""

    store: str | None = None
    #: Global batch: all processes and gradient-accumulation steps together.
    batch_size: int = 128
    #: Per-device batch for validation/test/predict (default: the per-device training batch).
    eval_batch_size: int | None = None
    num_workers: int = 2
    #: Drop the last, incomplete training batch of each epoch (under DDP it is split unevenly over the ranks,
    #: whose equal-weight gradient average then differs slightly from the one-process mean).
    drop_last: bool = False
    #: ``mmap`` (default), ``ram`` (each split copied into memory) or ``device`` (onto the GPU; needs num_workers=0).
    mode: str = "mmap"
    #: Copy threads of the store's gather in the main process (with num_workers=0): 2 is faster on an idle
    #: machine and no slower when other jobs share the cores (docs/store.md).
    copy_threads: int = 2
    #: The fast path (docs/training.md): ``auto`` (default) holds each split's native band groups in GPU
    #: memory when training on CUDA (pinned host memory where a split exceeds ``resident_budget``) and gathers
    #: batches there, without loader workers; on the CPU it keeps the store loader. ``true``: resident on any
    #: device (on the CPU: in host memory); ``false``: the store loader (``mode``, ``num_workers``).
    resident: bool | str = "auto"
    #: Fraction of the free device memory (measured when a split is loaded) a resident split may take.
    resident_budget: float = 0.7
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"


@dataclass
class OptimConfig:
    name: str = "adam"
    #: Base learning rate, before :attr:`lr_scaling`.
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-7
    momentum: float = 0.9
    #: ``processes``: lr x world size (the paper); ``linear``: lr x global batch / reference_batch; ``none``.
    lr_scaling: str = "processes"
    reference_batch: int = 256
    #: The fused (one kernel for all parameters) Adam/AdamW: ``auto`` on CUDA, else torch's default loop.
    fused: bool | str = "auto"


@dataclass
class ScheduleConfig:
    #: ``step`` (x gamma at each fraction of ``decay_at``), ``cosine`` (to ``min_lr_ratio``), ``constant``.
    name: str = "step"
    decay_at: list[float] = field(default_factory=lambda: [0.9])
    gamma: float = 0.1
    #: Linear warm-up length in epochs (fractions allowed), counted in optimiser steps.
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0


@dataclass
class LossConfig:
    #: Keras-style smoothing of the binary targets: y * (1 - s) + 0.5 * s.
    label_smoothing: float = 0.0


@dataclass
class TrainerConfig:
    """What Lightning's ``Trainer`` gets; ``auto`` values are resolved for the device at run time."""

    epochs: int = 30
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    #: ``auto``: bf16-mixed where the device supports it, else 32-true; or any Lightning precision string.
    precision: str = "auto"
    accumulate: int = 1
    val_every_n_epochs: int = 1
    #: Also save ``last.ckpt`` every N optimiser steps (preemption safety within long epochs).
    checkpoint_every_n_steps: int | None = None
    log_every_n_steps: int = 50
    deterministic: bool = False
    gradient_clip: float | None = None
    #: ``torch.compile`` of the model: false, true (mode ``default``), ``auto`` (on CUDA), or a mode:
    #: ``reduce-overhead`` (CUDA graphs, for static shapes: use with ``data.drop_last``), ``max-autotune``.
    #: A model that fails to compile trains eagerly, with a log line saying why.
    compile: bool | str = False
    channels_last: bool | str = False
    progress: bool = True
    #: Where the run logs loss, lr and validation metrics: ``csv`` (``logs/version_N/metrics.csv``), ``tensorboard``,
    #: ``mlflow``, ``wandb`` (Lightning's logger classes; optional extras of the same names) or ``none``.
    logger: str = "csv"


@dataclass
class CostConfig:
    """How inference cost is measured (identically for every model)."""

    measure: bool = True
    #: Timed batches for the model-only rate (after ``warmup_batches`` untimed ones).
    model_only_batches: int = 20
    warmup_batches: int = 3


@dataclass
class TrainConfig:
    #: Run name (folder under ``out``); default: the model name.
    name: str | None = None
    out: str = "runs"
    protocol: str = "paper"
    #: ``multilabel`` (sigmoid outputs, BCE: BigEarthNet, SEN12MS) or ``singlelabel`` (softmax, cross-entropy: EuroSAT).
    task: str = "multilabel"
    seed: int = 42
    #: ``none`` or ``dihedral`` (one of the 8 flips/90-degree rotations per sample, on the device).
    augment: str = "none"
    #: Validation metric that selects the checkpoint evaluated on test (maximised; ``accuracy`` for single-label).
    select_metric: str = "f1_micro"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    cost: CostConfig = field(default_factory=CostConfig)

    # ---- convenience ------------------------------------------------------------------------------
    @property
    def run_name(self) -> str:
        return self.name or self.model.name

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.run_name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build and validate from a (possibly partial) nested dict; unknown keys are errors."""
        cfg = _build(cls, data, prefix="", source=source)
        _validate(cfg, source)
        return cfg


# ---- allowed values -------------------------------------------------------------------------------
_CHOICES: dict[str, tuple[Any, ...]] = {
    "protocol": ("paper", "modern", "transfer"),
    "task": ("multilabel", "singlelabel"),
    "augment": ("none", "dihedral"),
    "trainer.logger": ("csv", "tensorboard", "mlflow", "wandb", "none"),
    "data.mode": ("mmap", "ram", "device"),
    "optim.name": ("adam", "adamw", "sgd"),
    "optim.lr_scaling": ("processes", "linear", "none"),
    "schedule.name": ("step", "cosine", "constant"),
    "trainer.compile": (True, False, "auto", "default", "reduce-overhead", "max-autotune"),
    "data.resident": (True, False, "auto"),
    "optim.fused": (True, False, "auto"),
    "trainer.channels_last": (True, False, "auto"),
    "trainer.precision": ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true"),
}

#: Selection metrics per task (keys of :mod:`landzoo.metrics`' multi-label and multi-class results).
_SELECT_METRICS = {
    "multilabel": ("f1_micro", "f1_macro", "map_macro", "map_micro", "f2_micro", "f2_macro", "auroc_macro"),
    "singlelabel": ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"),
}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _build(cls: type, data: Any, *, prefix: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(_unknown_key_message(f"{prefix}{key}", names, prefix, source))
        tp = hints[key]
        if _is_dataclass_type(tp):
            kwargs[key] = _build(tp, value if value is not None else {}, prefix=f"{prefix}{key}.", source=source)
        else:
            kwargs[key] = _coerce(value, tp, f"{prefix}{key}", source)
    return cls(**kwargs)


def _unknown_key_message(key: str, valid: list[str], prefix: str, source: str) -> str:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, valid, n=1)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    where = f"under '{prefix.rstrip('.')}'" if prefix else "at the top level"
    return f"{source}: unknown config key {key!r}{hint}; valid keys {where}: {', '.join(valid)}"


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against annotation ``tp`` (int, float, bool, str, list[float], dict, unions)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in options:
            if opt is type(None):
                continue
            try:
                return _coerce(value, opt, key, source)
            except ConfigError as err:
                errors.append(err)
        names = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
        raise ConfigError(f"{source}: {key} must be {names}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
    raise ConfigError(f"{source}: {key} has an unsupported type {tp}")  # pragma: no cover


def _validate(cfg: TrainConfig, source: str) -> None:
    flat = flatten(cfg.to_dict())
    for key, allowed in _CHOICES.items():
        if flat[key] not in allowed:
            shown = ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
            raise ConfigError(f"{source}: {key} is {flat[key]!r}; choose one of {shown}")
    metrics = _SELECT_METRICS[cfg.task]
    if cfg.select_metric not in metrics:
        raise ConfigError(
            f"{source}: select_metric {cfg.select_metric!r} is not one of {', '.join(metrics)} ({cfg.task} task)"
        )
    positive = {
        "data.batch_size": cfg.data.batch_size,
        "data.copy_threads": cfg.data.copy_threads,
        "trainer.epochs": cfg.trainer.epochs,
        "trainer.accumulate": cfg.trainer.accumulate,
        "trainer.num_nodes": cfg.trainer.num_nodes,
        "trainer.val_every_n_epochs": cfg.trainer.val_every_n_epochs,
        "trainer.log_every_n_steps": cfg.trainer.log_every_n_steps,
        "optim.reference_batch": cfg.optim.reference_batch,
        "cost.model_only_batches": cfg.cost.model_only_batches,
    }
    if cfg.data.eval_batch_size is not None:
        positive["data.eval_batch_size"] = cfg.data.eval_batch_size
    if cfg.trainer.checkpoint_every_n_steps is not None:
        positive["trainer.checkpoint_every_n_steps"] = cfg.trainer.checkpoint_every_n_steps
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{source}: {key} must be at least 1, got {value}")
    non_negative = {
        "data.num_workers": cfg.data.num_workers,
        "cost.warmup_batches": cfg.cost.warmup_batches,
        "optim.weight_decay": cfg.optim.weight_decay,
        "optim.momentum": cfg.optim.momentum,
        "schedule.min_lr_ratio": cfg.schedule.min_lr_ratio,
    }
    if cfg.trainer.gradient_clip is not None:
        non_negative["trainer.gradient_clip"] = cfg.trainer.gradient_clip
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{source}: {key} must be >= 0, got {value}")
    if not cfg.optim.eps > 0 or not cfg.schedule.gamma > 0 or cfg.schedule.min_lr_ratio > 1:
        raise ConfigError(
            f"{source}: optim.eps and schedule.gamma must be positive and schedule.min_lr_ratio at most 1"
        )
    if cfg.data.mode == "device" and cfg.data.num_workers > 0:
        raise ConfigError(f"{source}: data.mode=device reads in the main process; set data.num_workers=0")
    if not 0.0 < cfg.data.resident_budget <= 1.0:
        raise ConfigError(f"{source}: data.resident_budget is a fraction in (0, 1], got {cfg.data.resident_budget}")
    if not cfg.optim.lr > 0:
        raise ConfigError(f"{source}: optim.lr must be positive, got {cfg.optim.lr}")
    if not 0.0 <= cfg.loss.label_smoothing < 1.0:
        raise ConfigError(f"{source}: loss.label_smoothing must be in [0, 1), got {cfg.loss.label_smoothing}")
    if len(cfg.optim.betas) != 2:
        raise ConfigError(f"{source}: optim.betas must have 2 values, got {cfg.optim.betas}")
    if any(not 0.0 < f <= 1.0 for f in cfg.schedule.decay_at):
        raise ConfigError(
            f"{source}: schedule.decay_at holds fractions of training in (0, 1], got {cfg.schedule.decay_at}"
        )
    if cfg.schedule.warmup_epochs < 0:
        raise ConfigError(f"{source}: schedule.warmup_epochs must be >= 0")
    dev = cfg.trainer.devices
    if isinstance(dev, str) and dev != "auto" and not dev.lstrip("-").isdigit():
        raise ConfigError(f"{source}: trainer.devices must be an integer or 'auto', got {dev!r}")
    if isinstance(dev, int) and dev < 1 and dev != -1:
        raise ConfigError(f"{source}: trainer.devices must be at least 1 (or -1: every GPU, or auto), got {dev}")


def flatten(d: dict[str, Any], prefix: str = "", *, into_kwargs: bool = False) -> dict[str, Any]:
    """Nested config dict -> ``{"optim.lr": ..., ...}``; ``model.kwargs`` is one leaf unless ``into_kwargs``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and (k != "kwargs" or into_kwargs):
            out.update(flatten(v, f"{prefix}{k}.", into_kwargs=into_kwargs))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ---- batch and learning-rate scaling ---------------------------------------------------------------
@dataclass(frozen=True)
class Scaling:
    """The batch and learning-rate arithmetic of one run, logged and stored with its results."""

    world_size: int
    accumulate: int
    global_batch: int
    per_device_batch: int
    lr_base: float
    lr_effective: float
    lr_rule: str

    def describe(self) -> str:
        return (
            f"global batch {self.global_batch} = {self.per_device_batch} per device x {self.world_size} process(es)"
            f" x {self.accumulate} accumulation step(s); lr {self.lr_effective:g} = {self.lr_rule}"
        )


def resolve_scaling(cfg: TrainConfig, world_size: int) -> Scaling:
    """Split the global batch over processes and accumulation steps and apply the lr scaling rule."""
    acc = cfg.trainer.accumulate
    gb = cfg.data.batch_size
    if gb % (world_size * acc):
        raise ConfigError(
            f"data.batch_size {gb} (global) does not split over {world_size} process(es) x {acc} accumulation "
            f"step(s); use a multiple of {world_size * acc}"
        )
    per = gb // (world_size * acc)
    base = cfg.optim.lr
    rule = cfg.optim.lr_scaling
    if rule == "processes":
        lr, text = base * world_size, f"{base:g} x {world_size} process(es) (paper rule)"
    elif rule == "linear":
        ref = cfg.optim.reference_batch
        lr, text = base * gb / ref, f"{base:g} x global batch {gb} / {ref} (linear rule)"
    else:
        lr, text = base, f"{base:g} (no scaling)"
    if not math.isfinite(lr):
        raise ConfigError(f"effective learning rate is not finite ({lr})")
    return Scaling(world_size, acc, gb, per, base, lr, text)
