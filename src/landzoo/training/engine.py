"""One training run, the same for ``fit``, the benchmark, the scale search and every transfer run.

:func:`train_and_test` trains a :class:`~landzoo.training.module.LandCoverModule` on a :class:`~.data.RunData`,
selects the checkpoint on the validation metric, evaluates it on the test split and measures its cost::

    run_dir/checkpoints/last.ckpt  resume point (end of each epoch, every N steps, on SIGTERM)
    run_dir/checkpoints/best.ckpt  selected on validation
    run_dir/logs/...               the logger's files (trainer.logger; CSV by default)

What differs between callers stays with them: how the module and the data are built (a store split for
``fit``; an adapted pretrained model on a label fraction for ``transfer``), the run folder's bookkeeping
(``results.json``, ``result.json``) and what goes into the selected weights' sidecar
(:func:`save_selected_weights`). Devices, DDP, precision, resume, SIGTERM, the console, cost and metrics are
this module's, once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from landzoo.files import check_writable_dir
from landzoo.training import cost as cost_mod
from landzoo.training.callbacks import (
    EpochProgress,
    LastCheckpoint,
    PreemptionCheckpoint,
    TestTimer,
    ValidationSchedule,
    route_sigterm,
)
from landzoo.training.checkpoint_io import load_lightning_checkpoint
from landzoo.training.config import Scaling, TrainConfig, resolve_scaling
from landzoo.training.data import RunData, steps_per_epoch
from landzoo.training.module import LandCoverModule
from landzoo.training.resident import describe as describe_data_path
from landzoo.training.signals import stop_agreed
from landzoo.training.trainer import env_rank, make_logger, make_trainer, rank0_print, resolve_precision

__all__ = ["baseline", "model_only_rate", "save_selected_weights", "train_and_test"]

#: ``build(scaling) -> (module, data)``: the caller's part of a run, called once the world size is known.
Build = Callable[[Scaling], tuple[LandCoverModule, RunData]]


def train_and_test(
    cfg: TrainConfig,
    run_dir: Path,
    build: Build,
    *,
    resume: bool = False,
    title: str | None = None,
    label: str | None = None,
    progress: bool = True,
    epoch_lines: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> tuple[dict[str, Any], LandCoverModule | None]:
    """Train, select on validation, test the selected weights, measure cost; ``(result, module)``.

    ``resume`` continues from ``run_dir/checkpoints/last.ckpt`` when there is one. A SIGTERM (during the run,
    or before it starts) saves ``last.ckpt`` on every rank and returns ``{"status": "preempted"}``. ``title``
    is printed before training with the batch and lr arithmetic; ``label`` names the run on the console.
    """
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if resume and last.is_file() else None
    if env_rank() == 0:
        check_writable_dir(run_dir / "checkpoints", what="run folder")  # before anything long starts
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    select = f"val/{cfg.select_metric}"
    best_cb = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor=select, mode="max", save_top_k=1,
        save_last=False, auto_insert_metric_name=False, enable_version_counter=False,
    )  # fmt: skip
    cost_cb, test_timer = cost_mod.CostCallback(), TestTimer()
    # checkpoint callbacks run last, in this order: select, write the resume point, stop on SIGTERM
    cbs: list[L.Callback] = [best_cb, LastCheckpoint(last, cfg.trainer.checkpoint_every_n_steps)]
    cbs += [PreemptionCheckpoint(last), ValidationSchedule(cfg.trainer.val_every_n_epochs), cost_cb, test_timer]
    if progress or epoch_lines:
        cbs.append(EpochProgress(label or cfg.run_name, bar=progress))
    cbs += list(callbacks)
    logger = make_logger(cfg, run_dir)
    trainer = make_trainer(cfg, run_dir, callbacks=cbs, progress=False, logger=logger)
    route_sigterm(trainer)
    scaling = resolve_scaling(cfg, trainer.world_size)
    module, data = build(scaling)
    module.steps_per_epoch = steps_per_epoch(data.n_train, cfg, scaling)
    if title:
        rank0_print(trainer, f"{title}; {scaling.describe()}; precision {resolve_precision(cfg)}")
    if logger:
        logger.log_hyperparams({"scaling": scaling.__dict__, "protocol": cfg.protocol, "task": cfg.task})
    preempted = {"status": "preempted", "checkpoint": str(last)}
    if stop_agreed():  # SIGTERM before this run started (between the runs of a sweep)
        return preempted, None
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        train_cost = cost_cb.summary(trainer)
        best_path = best_cb.best_model_path or None
        val_sel = dict(module.val_results)
        if best_path:
            state = load_lightning_checkpoint(best_path)
            module.load_state_dict(state["state_dict"])
            val_sel = best_val(state)
            del state
        trainer.test(module, datamodule=data, verbose=False)
    except SIGTERMException:
        rank0_print(trainer, f"{label or cfg.run_name}: SIGTERM: checkpoint saved to {last}")
        return preempted, None
    test_out = dict(module.test_results)
    e2e = test_timer.summary(trainer)
    result: dict[str, Any] = {
        "status": "ok",
        "classes": list(module.classes),
        "bands": list(module.bands),
        "contract": module.contract,
        "best_checkpoint": best_path,
        "best_epoch": val_sel.pop("epoch", None),
        "val_select": val_sel.get(cfg.select_metric),
        "val": val_sel,
        "test": test_out.get("metrics", {}),
        "test_per_class": test_out.get("per_class", {}),
        "test_patches": e2e["test_patches"],
        "baseline": baseline(data.test_labels(), module.classes) if cfg.task == "multilabel" else None,
        "scaling": scaling.__dict__,
        "cost": {
            "params": sum(p.numel() for p in module.model.parameters()),
            "trainable_params": cost_mod.count_parameters(module.model),
            "macs": _macs(module),
            "input_size": module.input_size,
            "epochs": trainer.max_epochs,
            "steps": int(trainer.global_step),
            **train_cost,
            "infer_img_s_model": model_only_rate(trainer, module, data, cfg),
            "infer_img_s_e2e": e2e["infer_img_s_e2e"],
            "precision": resolve_precision(cfg),
            # the fast path's switches as they took effect (a failed compile says why)
            "switches": {"data": describe_data_path(data.inner), **module.fast_path},
            "batch_size": scaling.global_batch,
            "per_device_batch": scaling.per_device_batch,
        },
        "env": cost_mod.environment_info(module.device, trainer.world_size),
    }
    return result, module


def best_val(state: dict[str, Any]) -> dict[str, Any]:
    """Validation metrics of the selected epoch (stored by the module in its checkpoint) and its 1-based epoch."""
    return {**{k: float(v) for k, v in state.get("landzoo_val", {}).items()}, "epoch": int(state.get("epoch", -1)) + 1}


def baseline(labels: torch.Tensor | None, classes: Sequence[str]) -> dict[str, Any] | None:
    """Best constant predictor on the evaluated labels (the floor a model must clear to have learned anything)."""
    if labels is None or labels.shape[0] == 0:
        return None
    from landzoo.metrics import best_constant_baseline

    return best_constant_baseline(labels.round().to(torch.uint8), classes)


def _macs(module: LandCoverModule) -> int | None:
    example = torch.zeros(1, len(module.bands), module.input_size, module.input_size, device=module.device)
    try:
        return cost_mod.count_macs(module.model, example)
    except Exception:  # pragma: no cover - a model FlopCounterMode cannot trace
        return None


def model_only_rate(
    trainer: L.Trainer, module: LandCoverModule, data: L.LightningDataModule, cfg: TrainConfig
) -> float | None:
    """img/s of the model (input stem included) on test batches already on the device, summed over ranks."""
    if not cfg.cost.measure:
        return None
    batches = []
    for i, batch in enumerate(data.test_dataloader()):
        if i >= 4:
            break
        batches.append(batch)
    if not batches:
        return None
    device = module.device
    batches = [
        {"image": {g: t.to(device) for g, t in b["image"].items()}, "label": b["label"].to(device)} for b in batches
    ]
    module.eval()
    with trainer.precision_plugin.forward_context():
        r = cost_mod.time_model_only(
            lambda b: module(b["image"]),
            batches,
            device,
            warmup=cfg.cost.warmup_batches,
            timed=cfg.cost.model_only_batches,
            batch_size=lambda b: int(b["label"].shape[0]),
        )
    rate = cost_mod._all_reduce(r["img_s"], trainer, "sum")
    return None if not math.isfinite(rate) else rate


def save_selected_weights(
    module: LandCoverModule,
    path: Path,
    *,
    config: dict[str, Any],
    metrics: dict[str, Any],
    arch_kwargs: dict[str, Any] | None = None,
) -> Path:
    """The selected weights as safetensors + the data-contract sidecar (:mod:`landzoo.checkpoint`)."""
    from landzoo import checkpoint as ckpt

    return ckpt.save_checkpoint(
        path,
        {k: v.detach().cpu().contiguous() for k, v in module.model.state_dict().items()},
        module.contract,
        arch=module.cfg.model.name,
        arch_kwargs=dict(module.cfg.model.kwargs if arch_kwargs is None else arch_kwargs),
        config=config,
        metrics=metrics,
    )
