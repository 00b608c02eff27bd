"""The options of a transfer sweep (``landzoo transfer``), checked once, and the key a finished run is reused by.

The training settings of each run are a :class:`landzoo.training.config.TrainConfig` derived from these
(:func:`landzoo.transfer.run.train_config`): the engine's ``transfer`` protocol with this sweep's epochs, lr,
weight decay, batch, augmentation, devices and precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from landzoo import contract
from landzoo.errors import LandzooError
from landzoo.transfer import adapt as adapt_mod
from landzoo.transfer.fractions import parse_fractions
from landzoo.transfer.protocols import RESOLUTION_MODES

__all__ = ["IMAGENET_BANDS", "INITS", "MODES", "TransferConfig", "TransferError", "jsonable"]

INITS: Final = ("zoo", "random", "imagenet")
MODES: Final = ("finetune", "linear")
#: RGB band order of ImageNet (timm) first layers.
IMAGENET_BANDS: Final = contract.BAND_SELECTIONS["rgb"]
_DEFAULTS: Final = {"finetune": {"epochs": 30, "lr": 1e-3}, "linear": {"epochs": 100, "lr": 1e-2}}
_PRECISIONS: Final = ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")

#: Bumped when the same options would give different runs (2: one frozen encoder per seed in linear probes;
#: 3: runs train on the training engine, whose batch order and per-step seeding differ from the old loop's).
RUN_FORMAT = 3


class TransferError(LandzooError):
    """A transfer run that cannot start: no checkpoint, bad option, data that does not fit."""


def jsonable(obj: Any) -> Any:
    """A JSON-native copy of a transfer record (the checkpoint module's rule: non-finite floats -> None)."""
    from landzoo.checkpoint import _jsonable

    return _jsonable(obj, "transfer record")


@dataclass
class TransferConfig:
    """Everything a sweep depends on (``landzoo transfer`` options)."""

    source: str
    dataset: str
    data: str
    out: str = "transfer-out"
    fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    mode: str = "finetune"
    inits: tuple[str, ...] = ("zoo", "random")
    imagenet_weights: str | None = None
    zoo: str | None = None
    bands: str | None = None  # default: the checkpoint's bands that the data has, in the checkpoint's order
    resolution: str = "resize"
    single_label: bool = False
    threshold: float | None = None
    new_band_rule: str = "nearest"
    epochs: int | None = None
    min_steps: int = 50
    lr: float | None = None
    weight_decay: float = 1e-4
    batch_size: int = 64
    eval_batch_size: int = 128
    augment: str = "dihedral"
    val_every: int | None = None
    stats: str = "train"  # "train", "checkpoint" or a JSON file {band: [mean, std]}
    stats_patches: int = 2000
    nested: bool = True
    #: ``auto``, ``cpu``, ``cuda`` or ``gpu``: the accelerator (``cuda:N`` is refused: use CUDA_VISIBLE_DEVICES)
    device: str = "auto"
    #: processes / devices per node (DDP through Lightning: torchrun, SLURM or Lightning's own launcher)
    devices: int = 1
    num_nodes: int = 1
    precision: str = "auto"
    #: the engine's ``trainer.logger``: csv, tensorboard, mlflow, wandb or none
    logger: str = "csv"
    workers: int = 2
    save_checkpoints: bool = True
    rerun: bool = False
    arch_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fractions = parse_fractions(self.fractions)
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise TransferError(f"seeds must be distinct non-negative integers, got {list(self.seeds)}")
        if self.mode not in MODES:
            raise TransferError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.resolution not in RESOLUTION_MODES:
            raise TransferError(f"resolution must be one of {', '.join(RESOLUTION_MODES)}, not {self.resolution!r}")
        if self.new_band_rule not in adapt_mod.RULES:
            raise TransferError(
                f"new-band rule must be one of {', '.join(adapt_mod.RULES)}, not {self.new_band_rule!r}"
            )
        if self.augment not in ("none", "dihedral"):
            raise TransferError(f"augment must be 'none' or 'dihedral', not {self.augment!r}")
        inits = tuple(dict.fromkeys(self.inits))
        unknown = [i for i in inits if i not in INITS]
        if unknown:
            raise TransferError(f"unknown initialisation(s) {', '.join(unknown)}; choose from {', '.join(INITS)}")
        if self.imagenet_weights is not None:
            if not Path(self.imagenet_weights).is_file():
                raise TransferError(f"ImageNet weight file {self.imagenet_weights} does not exist")
            if "imagenet" not in inits:
                inits = (*inits, "imagenet")
        elif "imagenet" in inits:
            raise TransferError("the imagenet initialisation needs --imagenet-weights FILE (landzoo downloads nothing)")
        self.inits = inits
        if self.epochs is None:
            self.epochs = _DEFAULTS[self.mode]["epochs"]
        if self.lr is None:
            self.lr = _DEFAULTS[self.mode]["lr"]
        for name in ("epochs", "batch_size", "eval_batch_size", "stats_patches", "devices", "num_nodes"):
            if int(getattr(self, name)) < 1:
                raise TransferError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.min_steps < 0 or self.lr <= 0 or self.weight_decay < 0:
            raise TransferError("min_steps and weight_decay must be >= 0 and lr > 0")
        if self.workers < 0:
            raise TransferError(f"workers must be >= 0, not {self.workers}")
        if self.device.startswith("cuda:"):
            raise TransferError(
                f"--device {self.device}: pick the GPU with CUDA_VISIBLE_DEVICES={self.device[5:]} and use "
                "--device cuda (--devices N trains on N GPUs)"
            )
        if self.device not in ("auto", "cpu", "cuda", "gpu"):
            raise TransferError(f"--device must be auto, cpu, cuda or gpu, not {self.device!r}")
        if self.precision not in _PRECISIONS:
            raise TransferError(f"--precision must be one of {', '.join(_PRECISIONS)}, not {self.precision!r}")
        if self.logger not in ("csv", "tensorboard", "mlflow", "wandb", "none"):
            raise TransferError(f"--logger must be csv, tensorboard, mlflow, wandb or none, not {self.logger!r}")
        if self.val_every is None:
            self.val_every = max(1, int(self.epochs) // 10)
        if self.val_every < 1:
            raise TransferError(f"val_every must be at least 1, not {self.val_every}")

    @property
    def accelerator(self) -> str:
        return {"cuda": "gpu"}.get(self.device, self.device)

    def run_key(self, source_sha: str, *, data: str, bands: Sequence[str], imagenet_sha: str | None) -> dict[str, Any]:
        """The settings a finished run must share to be reused: these options, the source weights, the target
        data (the hash of its store index, which holds every record's checksum), the bands actually used and
        the ImageNet weights (hash). Devices and precision are not in it: a run is the same run on 1 or 2 GPUs."""
        keys = (
            "dataset", "mode", "bands", "resolution", "single_label", "threshold", "new_band_rule", "epochs",
            "min_steps", "lr", "weight_decay", "batch_size", "augment", "val_every", "stats", "stats_patches",
            "nested", "arch_kwargs",
        )  # fmt: skip
        return {
            "run_format": RUN_FORMAT,
            "source_sha256": source_sha,
            "data_sha256": data,
            "bands_used": list(bands),
            "imagenet_sha256": imagenet_sha,
            **{k: getattr(self, k) for k in keys},
        }
