"""``fit``: one model on a store's splits, a run folder, resume and preemption (the engine does the training).

A run lives in ``<out>/<name>/``::

    config.yaml            the fully resolved config (protocol defaults included)
    checkpoints/last.ckpt  Lightning checkpoint to resume from (end of each epoch, every N steps, on SIGTERM)
    checkpoints/best.ckpt  the checkpoint selected on the validation metric (paper: micro-F1)
    model.safetensors      the selected weights + model.json: the data contract, config, metrics (landzoo.checkpoint)
    logs/version_N/metrics.csv  the logger's record per (re)start (loss, lr, validation metrics per epoch)
    results.json           status, metrics (val at selection, test), per-class test table, cost, scaling, env

Resume: ``resume=True`` continues from ``checkpoints/last.ckpt`` (a fresh start when there is none, so a
requeued SLURM job can always pass ``--resume``). The training loader is wrapped so Lightning can restore
its position within an epoch, and per-step re-seeding (see :mod:`.module`) makes the continuation draw what
an uninterrupted run would have drawn. SIGTERM (cluster preemption) makes every rank save ``last.ckpt`` at
the end of the current step and the run ends with status ``preempted``.

This module also re-exports the engine's public entry points, so ``landzoo.training.run.X`` keeps working
for every name other code calls: :func:`load_module`, :func:`test`, :func:`predict`, :func:`check_store`,
:func:`make_datamodule`, :func:`make_trainer`, :func:`resolve_precision`, :class:`RunError`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from typing import Any

import lightning as L

from landzoo.files import atomic_write_text, check_writable_dir
from landzoo.training.checks import check_model_names, check_store
from landzoo.training.config import Scaling, TrainConfig
from landzoo.training.data import ResumableLoader, RunData, make_datamodule, steps_per_epoch
from landzoo.training.engine import save_selected_weights, train_and_test
from landzoo.training.errors import RunError
from landzoo.training.evaluation import predict, test
from landzoo.training.loading import check_contract_against_store, load_init_weights, load_module
from landzoo.training.module import LandCoverModule
from landzoo.training.trainer import env_rank, is_global_zero, make_trainer, rank0_print, resolve_precision

__all__ = [
    "ResumableLoader",
    "RunError",
    "check_contract_against_store",
    "check_model_names",
    "check_store",
    "fit",
    "is_global_zero",
    "load_module",
    "make_datamodule",
    "make_trainer",
    "predict",
    "resolve_precision",
    "steps_per_epoch",
    "test",
]


def _clear_run(run_dir: Any) -> None:
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    shutil.rmtree(run_dir / "logs", ignore_errors=True)
    for name in ("results.json", "model.safetensors", "model.json"):
        (run_dir / name).unlink(missing_ok=True)


def fit(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    label: str | None = None,
    epoch_lines: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> dict[str, Any]:
    """Train, select on validation, test the selected checkpoint, measure cost; returns the results dict."""
    store = check_store(cfg.data.store)
    check_model_names([cfg.model.name])
    run_dir = cfg.run_dir
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume:
        rank0_print(None, f"resuming from {last}" if last.is_file() else f"no checkpoint at {last}: starting afresh")
    elif env_rank() == 0 and ((run_dir / "checkpoints").exists() or (run_dir / "results.json").exists()):
        if not overwrite:
            raise RunError(
                f"run folder {run_dir} already holds a run; pass --resume to continue it or --overwrite to start again"
            )
        _clear_run(run_dir)
    if env_rank() == 0:
        check_writable_dir(run_dir, what="run folder")
    # a store whose bands all lie on one 10 m grid (SEN12MS, EuroSAT) is fed as one group; BigEarthNet natively
    native = bool(json.loads((store / "manifest.json").read_text(encoding="utf-8")).get("native_groups", True))

    def build(scaling: Scaling) -> tuple[LandCoverModule, RunData]:
        module = LandCoverModule(cfg.to_dict(), scaling.__dict__, None if native else {"native": False})
        if cfg.model.init_from:
            load_init_weights(module, cfg.model.init_from)
        inner = make_datamodule(
            store,
            bands=module.bands,
            classes=cfg.model.classes,
            batch_size=scaling.per_device_batch,
            eval_batch_size=cfg.data.eval_batch_size or scaling.per_device_batch,
            num_workers=cfg.data.num_workers,
            seed=cfg.seed,
            mode=cfg.data.mode,
            splits=(cfg.data.train_split, cfg.data.val_split, cfg.data.test_split),
            drop_last=cfg.data.drop_last,
            copy_threads=cfg.data.copy_threads,
            resident=cfg.data.resident,
            resident_budget=cfg.data.resident_budget,
        )
        for split in (cfg.data.train_split, cfg.data.val_split, cfg.data.test_split):
            inner.store.rows(split)  # a missing split or band is a one-line error before anything trains
        return module, RunData(inner, n_train=len(inner.store.rows(cfg.data.train_split)))

    if env_rank() == 0:
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    result, module = train_and_test(
        cfg,
        run_dir,
        build,
        resume=resume,
        title=f"{cfg.run_name}: protocol {cfg.protocol}",
        label=label or cfg.run_name,
        progress=progress,
        epoch_lines=epoch_lines,
        callbacks=callbacks,
    )
    head = {"model": cfg.run_name, "arch": cfg.model.name}
    if result["status"] != "ok" or module is None:
        rank0_print(None, f"{cfg.run_name}: stopped by SIGTERM; checkpoint {last}; continue with --resume")
        return {**head, **result}
    result = {
        **head,
        "model_kwargs": dict(cfg.model.kwargs),
        "family": _family(cfg.model.name),
        "run_dir": str(run_dir),
        **result,
        "config": cfg.to_dict(),
    }
    if is_global_zero():
        metrics = {
            "val": dict(result["val"]),
            "test": {**result["test"], "per_class": result["test_per_class"]},
            "baseline_test": {k: v for k, v in (result.get("baseline") or {}).items() if isinstance(v, float)},
        }
        save_selected_weights(module, run_dir / "model.safetensors", config=cfg.to_dict(), metrics=metrics)
        atomic_write_text(run_dir / "results.json", json.dumps(result, indent=2, default=_json_default) + "\n")
    return result


def _json_default(o: Any) -> Any:
    import torch

    if torch.is_tensor(o):
        return o.tolist()
    return str(o)


def _family(name: str) -> str | None:
    try:
        from landzoo.models import get_model_info

        info = get_model_info(name)
        return getattr(info, "family", None) or (info.get("family") if isinstance(info, dict) else None)
    except Exception:
        return None
