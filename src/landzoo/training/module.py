"""The LightningModule: one model, one loss, the protocol's optimiser and schedule, metrics defined once.

Lightning runs the loop, precision, logging, checkpointing and distribution; this module only says what
a step is. Design choices, each for a reason:

* The batch arrives as native-resolution uint16 band groups; :class:`landzoo.transforms.InputTransform`
  normalises and resamples them on the device to the model's input size, then the (optional) dihedral
  augmentation runs on the stacked tensor, then the model. No CPU work per sample.
* The input pipeline (:mod:`.inputs`): resize, or crop at native 10 m (``data["resolution"]``), then the
  optional dihedral augmentation. A batch that carries ``"features"`` instead of ``"image"`` (a linear probe
  on cached classifier inputs) goes straight to the classifier.
* Task: ``multilabel`` (the paper): ``BCEWithLogits`` on the N outputs, numerically the same as the paper's
  BCE on sigmoid outputs, optional Keras-style label smoothing (``y * (1 - s) + 0.5 * s``), sigmoid
  probabilities; ``singlelabel`` (EuroSAT, SEN12MS single-label): softmax cross-entropy on the one-hot's
  class, softmax probabilities. Losses always in fp32.
* ``model.freeze_backbone`` trains the classifier alone: the encoder's weights and BatchNorm statistics stay
  as initialised (eval mode), the torchgeo switch that makes a linear probe.
* Randomness that a resumed run must reproduce (dropout, augmentation) is re-seeded at every step from
  ``(seed, global step, rank)``, so a run killed mid-epoch and resumed draws exactly what an uninterrupted
  run draws, without saving RNG states.
* Validation/test metrics are :mod:`landzoo.metrics` collections (multi-label or multi-class), whose state torchmetrics synchronises over
  all ranks before computing: never averaged per shard (the reference code's bug).
* The data contract (bands and classes in order, normalisation, input size) goes into every Lightning
  checkpoint under ``"landzoo"``, and is checked against the data when a checkpoint is loaded.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landzoo import contract
from landzoo.training.config import Scaling, TrainConfig
from landzoo.training.inputs import Resolution

__all__ = ["LandCoverModule", "build_model", "classifier", "data_contract", "model_attrs"]


# ---- adapters to the model zoo and the metrics module -----------------------------------------------
def build_model(cfg_model: Any, data: dict[str, Any] | None = None) -> nn.Module:
    """Build a zoo model by name; an unknown name is the zoo's own one-line error.

    ``data`` (``{"stats": {band: [mean, std]}, "native": bool}``, both optional) overrides the BigEarthNet
    normalisation and the native band grouping, for a checkpoint trained on another dataset.
    """
    from landzoo.models import create_model

    data = data or {}
    stats = {b: (float(v[0]), float(v[1])) for b, v in data["stats"].items()} if data.get("stats") else None
    return create_model(
        cfg_model.name,
        bands=cfg_model.bands,
        classes=cfg_model.classes,
        stats=stats,
        native=bool(data.get("native", True)),
        **dict(cfg_model.kwargs),
    )


def model_attrs(model: nn.Module, cfg_model: Any) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """(band names, class names, input size) the model was built for."""
    bands = tuple(getattr(model, "bands", None) or contract.resolve_bands(cfg_model.bands))
    classes = tuple(getattr(model, "classes", None) or contract.class_set(cfg_model.classes))
    if classes and isinstance(classes[0], int):  # pragma: no cover - defensive
        classes = contract.class_set(cfg_model.classes)
    size = getattr(model, "input_size", None)
    if size is None:
        raise TypeError(f"model {cfg_model.name!r} does not say its input size")
    if isinstance(size, tuple | list):
        size = size[-1]
    return bands, classes, int(size)


def make_metrics(classes: tuple[str, ...], task: str = "multilabel") -> nn.Module:
    """The metric collection of :mod:`landzoo.metrics` for the task (DDP-synchronised state)."""
    from landzoo.metrics import MultiClassMetrics, MultiLabelMetrics

    # value checks counted on the device and raised at compute(): a validation step never waits for the device
    if task == "multilabel":
        return MultiLabelMetrics(classes, checks="compute")
    return MultiClassMetrics(classes, checks="compute")


def classifier(model: nn.Module) -> nn.Module:
    """The model's classifier (timm's ``get_classifier``; every zoo family has one)."""
    net = getattr(model, "backbone", model)
    get = getattr(net, "get_classifier", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        raise TypeError(f"{type(net).__name__} does not name its classifier (get_classifier)")
    return head


def compute_metrics(metric: nn.Module) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(flat scalar dict, per-class rows keyed by class name) from a metric collection."""
    out = metric.compute()
    per_class = out.pop("per_class", {}) if isinstance(out, dict) else {}
    flat = {
        k: float(v) for k, v in out.items() if isinstance(v, int | float) or (torch.is_tensor(v) and v.numel() == 1)
    }
    return flat, per_class


def data_contract(
    bands: tuple[str, ...],
    class_set: str,
    classes: tuple[str, ...],
    input_size: int,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The data contract a checkpoint carries, as plain data (names, never indices); ``data`` as in build_model."""
    data = data or {}
    if data.get("stats"):
        stats = {b: [float(data["stats"][b][0]), float(data["stats"][b][1])] for b in bands}
    else:
        mean, std = contract.band_stats(bands)
        stats = {b: [float(m), float(s)] for b, m, s in zip(bands, mean, std, strict=True)}
    return {
        "bands": list(bands),
        "class_set": class_set,
        "classes": list(classes),
        "stats": stats,
        "input_size": int(input_size),
        "resample": "bicubic",
        "native": bool(data.get("native", True)),
    }


# ---- the module -------------------------------------------------------------------------------------
class LandCoverModule(L.LightningModule):
    """A zoo model trained for multi-label land-cover classification under one protocol."""

    def __init__(
        self, config: dict[str, Any], scaling: dict[str, Any] | None = None, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = TrainConfig.from_dict(config, source="checkpoint config")
        self.scaling = Scaling(**scaling) if scaling else None
        #: normalisation/grouping overrides (``build_model``); None: BigEarthNet statistics, native groups
        self.data = dict(data) if data else None
        self.model = build_model(self.cfg.model, self.data)
        self.bands, self.classes, self.input_size = model_attrs(self.model, self.cfg.model)
        self.class_set = self.cfg.model.classes
        from landzoo.transforms import InputTransform

        self.task = self.cfg.task
        d = self.data or {}
        stats = {b: (float(v[0]), float(v[1])) for b, v in d["stats"].items()} if d.get("stats") else None
        native = bool(d.get("native", True))
        self.input_transform = InputTransform(self.bands, self.input_size, stats=stats, native=native)
        #: crop at native 10 m instead of resizing (``data["resolution"]``); None: resize
        self.resolution = Resolution(**d["resolution"]) if d.get("resolution") else None
        if self.resolution is not None and self.resolution.mode == "crop":
            self.crop_transform: nn.Module | None = InputTransform(
                self.bands, self.resolution.grid_px, stats=stats, native=native
            )
        else:
            self.crop_transform = None
        if self.cfg.model.freeze_backbone:
            head = set(classifier(self.model).parameters())
            for p in self.model.parameters():
                p.requires_grad_(p in head)
        self.val_metrics = make_metrics(self.classes, self.task)
        self.test_metrics = make_metrics(self.classes, self.task)
        self.val_results: dict[str, float] = {}
        self.test_results: dict[str, Any] = {}
        self._compiled: list[Any] = []  # a list keeps the compiled wrapper out of the module tree
        self._channels_last = False
        #: the step's switches as they took effect (compile mode or why it failed, channels_last, fused
        #: optimiser); the engine records them in the run's cost record
        self.fast_path: dict[str, Any] = {"compile": "off", "channels_last": False, "fused_optimizer": False}
        #: optimiser steps per epoch, set by the runner (the lr schedule needs it before the loaders exist)
        self.steps_per_epoch: int | None = None

    # ---- contract ---------------------------------------------------------------------------------
    @property
    def contract(self) -> dict[str, Any]:
        return data_contract(self.bands, self.class_set, self.classes, self.input_size, self.data)

    def train(self, mode: bool = True) -> LandCoverModule:
        """With a frozen backbone, only the classifier ever trains: BatchNorm statistics stay as initialised."""
        super().train(mode)
        if self.cfg.model.freeze_backbone:
            self.model.eval()
            classifier(self.model).train(mode)
        return self

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["landzoo_val"] = dict(self.val_results)
        checkpoint["landzoo"] = {
            "contract": self.contract,
            "arch": self.cfg.model.name,
            "arch_kwargs": dict(self.cfg.model.kwargs),
            "scaling": None if self.scaling is None else self.scaling.__dict__,
        }

    # ---- setup ------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        on_cuda = self.device.type == "cuda" or (
            self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        )
        cl = self.cfg.trainer.channels_last
        self._channels_last = bool(cl is True or (cl == "auto" and on_cuda))
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)
        comp = self.cfg.trainer.compile
        failed = str(self.fast_path["compile"]).startswith("failed")  # once is enough: not again for the test
        if (
            (comp is True or (comp == "auto" and on_cuda) or comp in _COMPILE_MODES)
            and not self._compiled
            and not failed
        ):
            mode = comp if comp in _COMPILE_MODES else "default"
            self._compiled.append(torch.compile(self.model, mode=mode))
            self.fast_path["compile"] = mode
        self.fast_path["channels_last"] = self._channels_last

    def _run(self, x: Tensor) -> Tensor:
        """The model on ``x``: compiled where configured. A model torch.compile cannot compile (a compiler error,
        raised at a call of the compiled model before its graph runs) trains eagerly from then on, with one line
        saying why; any other error is the model's own and raises as itself. (A failure compiling the backward
        graph, at the first ``backward``, stops the run with the compiler's error: set ``trainer.compile=false``.)"""
        if not self._compiled:
            return self.model(x)
        try:
            return self._compiled[0](x)
        except _compile_errors() as err:
            self._compiled.clear()
            text = str(err).strip()
            why = f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"[:300]
            self.fast_path["compile"] = f"failed ({why})"
            rank = (
                f"rank {self.trainer.global_rank}: "
                if self._trainer is not None and self.trainer.world_size > 1
                else ""
            )
            print(f"{rank}torch.compile failed for {self.cfg.model.name} ({why}); training eagerly", flush=True)
            return self.model(x)

    # ---- forward ----------------------------------------------------------------------------------
    def inputs(
        self, image: dict[str, Tensor] | Tensor, *, train: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Native band groups -> the model's ``[B, C, S, S]`` input (see :mod:`.inputs`; a stacked tensor passes).

        ``train`` draws the random crop position and the augmentation from ``generator``.
        """
        if self.crop_transform is not None and isinstance(image, dict):
            x = self.resolution.apply(self.crop_transform(image), train=train, generator=generator)  # type: ignore[union-attr]
        else:
            prepare = getattr(self.model, "prepare", None)
            if callable(prepare):  # the zoo's stem: normalise + resample band groups, or check a stacked tensor
                x = prepare(image)
            else:
                x = self.input_transform(image) if isinstance(image, dict) else image.float()
        if train and self.cfg.augment == "dihedral":
            from landzoo.transforms import random_dihedral

            x = random_dihedral(x, generator=generator)  # type: ignore[assignment]
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def stack(self, image: dict[str, Tensor] | Tensor) -> Tensor:
        """The evaluation input (centre view, no augmentation) of a batch of band groups."""
        return self.inputs(image, train=False)

    def forward(self, image: dict[str, Tensor] | Tensor) -> Tensor:
        """Logits ``[B, N]`` for a batch of band groups (or an already stacked tensor)."""
        return self._run(self.stack(image))

    def logits(self, batch: dict[str, Any], *, train: bool = False) -> Tensor:
        """Logits of a batch: images through the whole model, or cached ``features`` through the classifier."""
        if "features" in batch:
            return classifier(self.model)(batch["features"])
        if not train:
            return self(batch["image"])
        gen = torch.Generator(device="cpu").manual_seed(self._step_seed() + 1)
        return self._run(self.inputs(batch["image"], train=True, generator=gen))

    def probabilities(self, logits: Tensor) -> Tensor:
        """Sigmoid (multi-label) or softmax (single-label) of fp32 logits."""
        return torch.sigmoid(logits.float()) if self.task == "multilabel" else torch.softmax(logits.float(), 1)

    def loss(self, logits: Tensor, label: Tensor, *, smooth: bool = True) -> Tensor:
        """The task's loss in fp32 (label smoothing in training only)."""
        s = self.cfg.loss.label_smoothing if smooth else 0.0
        if self.task == "multilabel":
            y = label.float()
            return F.binary_cross_entropy_with_logits(logits.float(), y * (1.0 - s) + 0.5 * s if s > 0 else y)
        return F.cross_entropy(logits.float(), label.argmax(1), label_smoothing=s)

    def _step_seed(self) -> int:
        """Seed of this step's randomness: (seed, optimiser step, micro-batch within the accumulation, rank)."""
        rank = self.trainer.global_rank if self._trainer is not None else 0
        micro = getattr(self, "_micro_batch", 0)
        return (self.cfg.seed * 1_000_003 + self.global_step * 7919 + micro * 104_729 + rank) % (2**63 - 1)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # micro-batches of one accumulation window share global_step; their position tells them apart
        self._micro_batch = batch_idx % max(1, self.cfg.trainer.accumulate)
        torch.manual_seed(self._step_seed())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        label = batch["label"]
        if label.shape[0] == 1 and "image" in batch:  # BatchNorm cannot train on one sample: use it twice
            batch = {**batch, "image": {g: t.repeat(2, 1, 1, 1) for g, t in batch["image"].items()}}
            label = label.repeat(2, 1)
        logits = self.logits(batch, train=True)
        loss = self.loss(logits, label)
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=label.shape[0]
        )
        return loss

    def on_train_epoch_start(self) -> None:
        opt = self.optimizers(use_pl_optimizer=False)
        if opt is not None:
            self.log("train/lr", opt.param_groups[0]["lr"], on_step=False, on_epoch=True, sync_dist=False)

    def _eval_step(self, batch: dict[str, Any], metrics: nn.Module, prefix: str) -> Tensor:
        logits = self.logits(batch).float()
        y = batch["label"]
        loss = self.loss(logits, y, smooth=False)
        metrics.update(self.probabilities(logits), y.long())
        self.log(f"{prefix}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=logits.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.val_metrics.reset()
            return
        flat, _ = compute_metrics(self.val_metrics)
        self.val_metrics.reset()
        self.val_results = flat
        # identical on every rank (state synchronised before compute), so no further reduction
        self.log_dict({f"val/{k}": v for k, v in flat.items()}, on_epoch=True, sync_dist=False)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        flat, per_class = compute_metrics(self.test_metrics)
        self.test_metrics.reset()
        self.test_results = {"metrics": flat, "per_class": per_class}
        self.log_dict({f"test/{k}": v for k, v in flat.items()}, on_epoch=True, sync_dist=False)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        probs = self.probabilities(self(batch["image"])).cpu()
        return {"id": batch.get("id"), "index": batch.get("index"), "probs": probs}

    # ---- optimiser and schedule ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        lr = self.scaling.lr_effective if self.scaling is not None else o.lr
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        fused = o.fused is True or (o.fused == "auto" and self.device.type == "cuda")
        extra = {"fused": True} if fused and o.name in ("adam", "adamw") else {}
        self.fast_path["fused_optimizer"] = bool(extra)
        if o.name == "adamw":
            decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim > 1]
            no_decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim <= 1]
            groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
            opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(o.betas), eps=o.eps, **extra)
        elif o.name == "adam":
            opt = torch.optim.Adam(
                trainable, lr=lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, **extra
            )
        else:
            opt = torch.optim.SGD(trainable, lr=lr, momentum=o.momentum, weight_decay=o.weight_decay)
        epochs = max(1, self.trainer.max_epochs or self.cfg.trainer.epochs)
        if self.steps_per_epoch is not None:
            steps_per_epoch = self.steps_per_epoch
            total = steps_per_epoch * epochs
        else:  # note: this builds the training iterator early (see run._steps_per_epoch)
            total = max(1, int(self.trainer.estimated_stepping_batches))
            steps_per_epoch = max(1, math.ceil(total / epochs))
        factor = lr_factor_fn(self.cfg, steps_per_epoch, total)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}


#: ``trainer.compile`` values that name a ``torch.compile`` mode (``true``/``auto`` mean ``default``).
_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def _compile_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "torch.compile could not compile this model" (not an error of the model)."""
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import CppCompileError

    return (TorchDynamoException, CppCompileError)


def lr_factor_fn(cfg: TrainConfig, steps_per_epoch: int, total_steps: int) -> Any:
    """Multiplier of the effective lr at optimiser step ``s`` (0-based), for ``LambdaLR``.

    ``step``: x ``gamma`` from the first step of each milestone epoch ``int(f * epochs)`` (epoch 27 of 30 for
    the paper's 0.9); ``cosine``: half-cosine from 1 to ``min_lr_ratio`` over the steps after warm-up;
    ``constant``. A linear warm-up over ``warmup_epochs`` multiplies any of them.
    """
    s = cfg.schedule
    epochs = cfg.trainer.epochs
    milestones = sorted({max(1, int(f * epochs + 1e-9)) for f in s.decay_at if f < 1.0})
    warm = round(s.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        w = min(1.0, (step + 1) / warm) if warm > 0 and step < warm else 1.0
        if s.name == "step":
            epoch = step // steps_per_epoch
            return w * s.gamma ** sum(epoch >= m for m in milestones)
        if s.name == "cosine":
            span = max(1, total_steps - warm)
            t = min(1.0, max(0.0, (step - warm) / span))
            return w * (s.min_lr_ratio + (1.0 - s.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t)))
        return w

    return factor
