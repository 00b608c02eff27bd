"""Fit / test / predict orchestration: seeds, run folders, resume, preemption, results with their cost.

A run lives in ``<out>/<name>/``::

    config.yaml            the fully resolved config (protocol defaults included)
    checkpoints/last.ckpt  Lightning checkpoint to resume from (end of each epoch, every N steps, on SIGTERM)
    checkpoints/best.ckpt  the checkpoint selected on the validation metric (paper: micro-F1)
    model.safetensors      the selected weights + model.json: the data contract, config, metrics (landzoo.checkpoint)
    logs/version_N/metrics.csv  Lightning CSV log per (re)start (loss, lr, validation metrics per epoch)
    results.json           status, metrics (val at selection, test), per-class test table, cost, scaling, env

Resume: ``resume=True`` continues from ``checkpoints/last.ckpt`` (a fresh start when there is none, so a
requeued SLURM job can always pass ``--resume``). The training loader is wrapped so Lightning can restore
its position within an epoch, and per-step re-seeding (see :mod:`.module`) makes the continuation draw what
an uninterrupted run would have drawn. SIGTERM (cluster preemption) makes every rank save ``last.ckpt`` at
the end of the current step and exit with status ``preempted``.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from landzoo.errors import LandzooError
from landzoo.training import cost as cost_mod
from landzoo.training.config import TrainConfig, resolve_scaling
from landzoo.training.module import LandCoverModule

# Lightning noise that says nothing about a landzoo run (kept out of every fit/test/predict/benchmark log)
for _pattern in (
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*smaller than the logging interval.*",
    r".*does not have many workers.*",
    r".*exists and is not empty.*",
    r".*Consider setting `persistent_workers=True`.*",
    r".*`weights_only` was not set.*",
):
    warnings.filterwarnings("ignore", message=_pattern)


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NoTips())

__all__ = [
    "RunError",
    "check_model_names",
    "check_store",
    "fit",
    "load_module",
    "predict",
    "test",
]


class RunError(LandzooError):
    """A run that cannot start or continue: missing store, occupied run folder, mismatched checkpoint."""


def _env_rank() -> int:
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
    return _env_rank() == 0


# ---- input checks -------------------------------------------------------------------------------------
def check_model_names(names: Sequence[str]) -> None:
    """Refuse unknown model names before anything trains (the reference code fell back to a linear model)."""
    from landzoo import models

    known = _known_models(models)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `landzoo models` lists them"
            raise RunError(f"unknown model {name!r}{hint}")


def _known_models(models: Any) -> list[str]:
    for attr in ("list_models", "model_names", "catalogue"):
        fn = getattr(models, attr, None)
        if callable(fn):
            out = fn()
            if isinstance(out, dict):
                return list(out)
            names = []
            for item in out:
                names.append(
                    item
                    if isinstance(item, str)
                    else getattr(item, "name", item.get("name") if isinstance(item, dict) else str(item))
                )
            return names
    raise RunError("the model zoo (landzoo.models) offers no catalogue of names")  # pragma: no cover


def check_store(store: str | Path | None, splits: Sequence[str] = ()) -> Path:
    """The store folder, which must exist and be complete (its manifest is written last)."""
    if store is None:
        raise RunError("no data store given (data.store=PATH or --data PATH); build one with `landzoo encode`")
    path = Path(store)
    if not path.is_dir():
        raise RunError(f"data store {path} does not exist; build one with `landzoo encode`")
    if not (path / "manifest.json").is_file():
        raise RunError(f"{path} is not a complete landzoo store (no manifest.json); run `landzoo encode` to finish it")
    return path


# ---- data ---------------------------------------------------------------------------------------------
def make_datamodule(
    store: Path,
    *,
    bands: Sequence[str],
    classes: str,
    batch_size: int,
    eval_batch_size: int,
    num_workers: int,
    seed: int,
    mode: str = "mmap",
    splits: tuple[str, str, str] = ("train", "val", "test"),
    drop_last: bool = False,
    copy_threads: int = 2,
) -> L.LightningDataModule:
    """The store's DataModule (DDP-aware sampling lives there), for exactly these bands and classes."""
    from landzoo.store.datamodule import StoreDataModule

    return StoreDataModule(
        store,
        bands=tuple(bands),
        classes=classes,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        num_workers=num_workers,
        mode=mode,  # type: ignore[arg-type]
        seed=seed,
        drop_last=drop_last,
        threads=copy_threads,
        train_split=splits[0],
        val_split=splits[1],
        test_split=splits[2],
    )


class ResumableLoader:
    """Wraps the training loader so Lightning can save and restore the position within an epoch.

    ``state_dict`` records how many batches of the current epoch the trainer has consumed (not how many the
    prefetcher pulled); after ``load_state_dict`` the next iteration skips that many batches of the same,
    seed-and-epoch-determined order, so the resumed epoch sees exactly the batches the killed one had left.
    """

    def __init__(self, loader: Any, trainer: L.Trainer) -> None:
        self.loader = loader
        self.trainer = trainer
        self._skip = 0

    def __len__(self) -> int:
        return len(self.loader)

    # Lightning calls ``set_epoch`` on these (via ``_set_sampler_epoch``)
    @property
    def sampler(self) -> Any:
        return getattr(self.loader, "sampler", None)

    @property
    def batch_sampler(self) -> Any:
        return getattr(self.loader, "batch_sampler", None)

    def __iter__(self) -> Any:
        skip, self._skip = self._skip, 0
        batches = getattr(self.sampler, "batches", None)
        if skip and callable(batches):
            # the store's sampler knows the epoch's batch order: start after the consumed ones without reading them
            from torch.utils.data import DataLoader

            rest = [b.tolist() for b in batches()[skip:]]
            yield from DataLoader(
                self.loader.dataset,
                sampler=rest,
                batch_size=None,
                collate_fn=self.loader.collate_fn,
                num_workers=self.loader.num_workers,
                pin_memory=self.loader.pin_memory,
            )
            return
        it = iter(self.loader)
        for _ in range(skip):  # any other loader: read and drop the consumed batches
            next(it)
        yield from it

    def state_dict(self) -> dict[str, int]:
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(self.trainer.current_epoch), "consumed": int(progress.ready)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # Lightning creates the resumed epoch's iterator before it calls set_epoch, so set the epoch here
        epoch, consumed = int(state.get("epoch", 0)), int(state.get("consumed", 0))
        finished = consumed >= len(self.loader)
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch + 1 if finished else epoch)
        self._skip = 0 if finished else consumed


class _RunData(L.LightningDataModule):
    """Delegates to the store DataModule, wrapping its training loader in :class:`ResumableLoader`."""

    def __init__(self, inner: L.LightningDataModule) -> None:
        super().__init__()
        self.inner = inner

    def setup(self, stage: str) -> None:
        self.inner.trainer = self.trainer
        self.inner.setup(stage)

    def train_dataloader(self) -> Any:
        return ResumableLoader(self.inner.train_dataloader(), self.trainer)

    def val_dataloader(self) -> Any:
        return self.inner.val_dataloader()

    def test_dataloader(self) -> Any:
        return self.inner.test_dataloader()

    def predict_dataloader(self) -> Any:
        return self.inner.predict_dataloader()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.inner.load_state_dict(state_dict)

    def teardown(self, stage: str) -> None:
        self.inner.teardown(stage)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return self.inner.transfer_batch_to_device(batch, device, dataloader_idx)

    def test_labels(self) -> torch.Tensor | None:
        """All labels of the test split (every rank's dataset holds the whole split)."""
        ds = getattr(self.inner, "datasets", {}).get("test")
        return None if ds is None else ds.labels.cpu()


# ---- callbacks ----------------------------------------------------------------------------------------
class PreemptionCheckpoint(L.Callback):
    """On SIGTERM, every rank saves ``last.ckpt`` at the end of the current training step, then the run stops.

    A SIGTERM that arrives during validation is held back until the epoch is complete (a checkpoint taken in the
    middle of validation would resume with metrics over part of the validation set, and so could select another
    checkpoint): the validation finishes, the epoch-end ``last.ckpt`` is written as usual, then the run stops.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.saved = False
        self._deferred = False

    @staticmethod
    def _agreed(trainer: L.Trainer) -> bool:
        flag = bool(getattr(trainer, "received_sigterm", False))
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            t = torch.tensor([1.0 if flag else 0.0], device=trainer.strategy.root_device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            flag = bool(t.item() > 0)
        return flag

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._agreed(trainer):
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved = True
            raise SIGTERMException()

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.state.fn == "fit" and getattr(trainer, "received_sigterm", False):
            self._deferred = True
            trainer._signal_connector.received_sigterm = False  # let the validation finish

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._deferred:
            # Lightning raises SIGTERMException right after this epoch is complete; the epoch-end last.ckpt
            # (written at validation end) is the resume point
            trainer._signal_connector.received_sigterm = True
            self.saved = True


class LastCheckpoint(ModelCheckpoint):
    """Writes ``last.ckpt`` at the end of every epoch and every N optimiser steps: the resume point.

    (Lightning's ``save_last`` only writes it when a top-k checkpoint was saved in the same step.) It subclasses
    ``ModelCheckpoint`` so that Lightning runs it after the selection callback, whose updated best score is then
    part of the saved state.
    """

    def __init__(self, path: Path, every_n_steps: int | None = None) -> None:
        super().__init__(dirpath=Path(path).parent, save_top_k=0, save_last=False, enable_version_counter=False)
        self.path = Path(path)
        self.every = every_n_steps

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every and trainer.global_step % self.every == 0 and trainer.global_step != self._last_global_step_saved:
            self._last_global_step_saved = trainer.global_step
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        pass

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


class TestTimer(L.Callback):
    """End-to-end inference rate of the test pass: store -> device -> model -> probabilities, all ranks."""

    def __init__(self) -> None:
        self.images = 0
        self.seconds = 0.0
        self._t0 = 0.0

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cost_mod.sync(pl_module.device)
        self.images = 0
        self._t0 = time.perf_counter()

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.images += int(batch["label"].shape[0])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cost_mod.sync(pl_module.device)
        self.seconds = time.perf_counter() - self._t0

    def summary(self, trainer: L.Trainer) -> dict[str, Any]:
        images = cost_mod._all_reduce(float(self.images), trainer, "sum")
        seconds = cost_mod._all_reduce(self.seconds, trainer, "max")
        return {"test_patches": int(images), "infer_img_s_e2e": images / seconds if seconds > 0 else None}


class EpochProgress(L.Callback):
    """One tqdm bar per run: label, epoch, loss and ETA over all epochs (used by the benchmark)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            from tqdm.auto import tqdm

            total = int(trainer.num_training_batches * trainer.max_epochs)
            done = int(trainer.num_training_batches * trainer.current_epoch)
            self.bar = tqdm(total=total, initial=done, desc=self.label, unit="batch", dynamic_ncols=True)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.bar is not None:
            loss = trainer.callback_metrics.get("train/loss_step")
            self.bar.set_description(f"{self.label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")
            if loss is not None:
                self.bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
            self.bar.update(1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    on_exception = on_train_end  # type: ignore[assignment]


# ---- trainer ------------------------------------------------------------------------------------------
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
    )


# ---- fit ----------------------------------------------------------------------------------------------
def _rank0_print(trainer: L.Trainer | None, msg: str) -> None:
    if (trainer is None and _env_rank() == 0) or (trainer is not None and trainer.is_global_zero):
        print(msg, flush=True)


def fit(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    label: str | None = None,
) -> dict[str, Any]:
    """Train, select on validation, test the selected checkpoint, measure cost; returns the results dict."""
    from lightning.pytorch.loggers import CSVLogger

    store = check_store(cfg.data.store)
    check_model_names([cfg.model.name])
    run_dir = cfg.run_dir
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    rank = _env_rank()
    ckpt_path: str | None = None
    if resume:
        if last.is_file():
            ckpt_path = str(last)
        _rank0_print(None, f"resuming from {last}" if ckpt_path else f"no checkpoint at {last}: starting afresh")
    elif rank == 0 and (ckpt_dir.exists() or (run_dir / "results.json").exists()):
        if not overwrite:
            raise RunError(
                f"run folder {run_dir} already holds a run; pass --resume to continue it or --overwrite to start again"
            )
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        shutil.rmtree(run_dir / "logs", ignore_errors=True)
        for name in ("results.json", "model.safetensors", "model.json"):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    select = f"val/{cfg.select_metric}"
    best_cb = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=select, mode="max", save_top_k=1, save_last=False,
        auto_insert_metric_name=False, enable_version_counter=False,
    )  # fmt: skip
    callbacks: list[L.Callback] = [best_cb, LastCheckpoint(last, cfg.trainer.checkpoint_every_n_steps)]
    cost_cb, test_timer, preempt = cost_mod.CostCallback(), TestTimer(), PreemptionCheckpoint(last)
    callbacks += [cost_cb, test_timer, preempt]
    if label is not None and progress:
        callbacks.append(EpochProgress(label))
    logger = CSVLogger(str(run_dir), name="logs")  # logs/version_N: one per start, a resume keeps the history
    trainer = make_trainer(cfg, run_dir, callbacks=callbacks, progress=progress and label is None, logger=logger)
    scaling = resolve_scaling(cfg, trainer.world_size)
    # a store whose bands all lie on one 10 m grid (SEN12MS, EuroSAT) is fed as one group; BigEarthNet natively
    native = bool(json.loads((store / "manifest.json").read_text(encoding="utf-8")).get("native_groups", True))
    module = LandCoverModule(cfg.to_dict(), scaling.__dict__, None if native else {"native": False})
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
    )
    for split in (cfg.data.train_split, cfg.data.val_split, cfg.data.test_split):
        inner.store.rows(split)  # a missing split or band is a one-line error before anything trains
    data = _RunData(inner)
    module.steps_per_epoch = _steps_per_epoch(inner, cfg, scaling)
    if trainer.is_global_zero:
        (run_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    _rank0_print(
        trainer, f"{cfg.run_name}: protocol {cfg.protocol}; {scaling.describe()}; precision {resolve_precision(cfg)}"
    )
    logger.log_hyperparams({"scaling": scaling.__dict__, "protocol": cfg.protocol})

    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    except SIGTERMException:
        _rank0_print(trainer, f"{cfg.run_name}: SIGTERM: checkpoint saved to {last}; continue with --resume")
        return {"model": cfg.run_name, "arch": cfg.model.name, "status": "preempted", "checkpoint": str(last)}

    train_cost = cost_cb.summary(trainer)
    best_path = best_cb.best_model_path or None
    val_sel = dict(module.val_results)
    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
        val_sel = _best_val(state)
        del state
    trainer.test(module, datamodule=data, verbose=False)
    test_out = dict(module.test_results)
    e2e = test_timer.summary(trainer)
    model_only = _model_only_rate(trainer, module, data, cfg)
    result: dict[str, Any] = {
        "model": cfg.run_name,
        "arch": cfg.model.name,
        "model_kwargs": dict(cfg.model.kwargs),
        "status": "ok",
        "family": _family(cfg.model.name),
        "run_dir": str(run_dir),
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
        "baseline": _baseline(data.test_labels(), module.classes),
        "scaling": scaling.__dict__,
        "cost": {
            "params": cost_mod.count_parameters(module.model),
            "macs": _macs(module),
            "input_size": module.input_size,
            **train_cost,
            "infer_img_s_model": model_only,
            "infer_img_s_e2e": e2e["infer_img_s_e2e"],
            "precision": resolve_precision(cfg),
            "batch_size": scaling.global_batch,
            "per_device_batch": scaling.per_device_batch,
        },
        "env": cost_mod.environment_info(module.device, trainer.world_size),
        "config": cfg.to_dict(),
    }
    if trainer.is_global_zero:
        _save_weights(module, run_dir, cfg, result)
        (run_dir / "results.json").write_text(
            json.dumps(result, indent=2, default=_json_default) + "\n", encoding="utf-8"
        )
    return result


def _steps_per_epoch(inner: Any, cfg: TrainConfig, scaling: Any) -> int:
    """Optimiser steps per epoch per rank, from the split size (not ``estimated_stepping_batches``, which makes
    Lightning build the training iterator before a checkpoint is restored and so breaks mid-epoch resume)."""
    from landzoo.store.reader import StoreBatchSampler

    n = len(inner.store.rows(cfg.data.train_split))
    batches = len(
        StoreBatchSampler(
            n,
            scaling.per_device_batch,
            num_replicas=scaling.world_size,
            rank=0,
            shuffle=False,
            drop_last=cfg.data.drop_last,
        )
    )
    return max(1, math.ceil(batches / scaling.accumulate))


def _json_default(o: Any) -> Any:
    if torch.is_tensor(o):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _best_val(state: dict[str, Any]) -> dict[str, Any]:
    """Validation metrics of the selected epoch (stored by the module in its checkpoint) and its 1-based epoch."""
    return {**{k: float(v) for k, v in state.get("landzoo_val", {}).items()}, "epoch": int(state.get("epoch", -1)) + 1}


def _family(name: str) -> str | None:
    try:
        from landzoo.models import get_model_info

        info = get_model_info(name)
        return getattr(info, "family", None) or (info.get("family") if isinstance(info, dict) else None)
    except Exception:
        return None


def _macs(module: LandCoverModule) -> int | None:
    example = torch.zeros(1, len(module.bands), module.input_size, module.input_size, device=module.device)
    try:
        return cost_mod.count_macs(module.model, example)
    except Exception:  # pragma: no cover - a model FlopCounterMode cannot trace
        return None


def _baseline(labels: torch.Tensor | None, classes: Sequence[str]) -> dict[str, Any] | None:
    """Best constant predictor on the evaluated labels (the floor a model must clear to have learned anything)."""
    if labels is None or labels.shape[0] == 0:
        return None
    from landzoo.metrics import best_constant_baseline

    return best_constant_baseline(labels.round().to(torch.uint8), classes)


def _model_only_rate(
    trainer: L.Trainer, module: LandCoverModule, data: L.LightningDataModule, cfg: TrainConfig
) -> float | None:
    """img/s of the model (stem included) on batches already on the device, summed over ranks."""
    if not cfg.cost.measure:
        return None
    loader = data.test_dataloader()
    batches = []
    for i, batch in enumerate(loader):
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
    return cost_mod._all_reduce(r["img_s"], trainer, "sum")


def _save_weights(module: LandCoverModule, run_dir: Path, cfg: TrainConfig, result: dict[str, Any]) -> None:
    """The selected weights as safetensors + the data-contract sidecar (:mod:`landzoo.checkpoint`)."""
    from landzoo import checkpoint as ckpt

    metrics = {
        "val": dict(result["val"]),
        "test": {**result["test"], "per_class": result["test_per_class"]},
        "baseline_test": {k: v for k, v in (result.get("baseline") or {}).items() if isinstance(v, float)},
    }
    ckpt.save_checkpoint(
        run_dir / "model.safetensors",
        {k: v.detach().cpu().contiguous() for k, v in module.model.state_dict().items()},
        module.contract,
        arch=cfg.model.name,
        arch_kwargs=dict(cfg.model.kwargs),
        config=cfg.to_dict(),
        metrics=metrics,
    )


# ---- test / predict -----------------------------------------------------------------------------------
def _contract_dict(c: Any) -> dict[str, Any]:
    """A checkpoint's data contract as a plain dict with ``stats`` as ``{band: [mean, std]}``."""
    if c is None:
        return {}
    d = c.to_dict() if hasattr(c, "to_dict") else dict(c)
    stats = {}
    for band, v in (d.get("stats") or {}).items():
        stats[band] = [float(v["mean"]), float(v["std"])] if isinstance(v, dict) else [float(x) for x in v]
    d["stats"] = stats
    return d


def _resolve_checkpoint(checkpoint: str | Path) -> Path:
    path = Path(checkpoint)
    if path.is_dir():
        for cand in (
            path / "model.safetensors",
            path / "checkpoints" / "best.ckpt",
            path / "checkpoints" / "last.ckpt",
        ):
            if cand.is_file():
                return cand
        raise RunError(f"{path} holds no checkpoint (model.safetensors or checkpoints/*.ckpt)")
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    return path


def load_module(checkpoint: str | Path) -> LandCoverModule:
    """A module from a Lightning ``.ckpt`` (from ``fit``), a landzoo safetensors checkpoint or a run folder.

    The model is rebuilt from the architecture name and the contract's band and class names, and its contract
    must equal the checkpoint's (bands and classes in order, input size, normalisation): never a silent change.
    """
    path = _resolve_checkpoint(checkpoint)
    if path.suffix == ".ckpt":
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise RunError(f"checkpoint {path} is unreadable: {str(err).splitlines()[0]}") from None
        hp = state.get("hyper_parameters") or {}
        saved = (state.get("landzoo") or {}).get("contract")
        if "config" not in hp or not saved or not saved.get("bands"):
            raise RunError(
                f"checkpoint {path} is not a landzoo training checkpoint (no config or data contract with band names)"
            )
        module = LandCoverModule(hp["config"], hp.get("scaling"), hp.get("data"))
        _check_same_contract(module.contract, saved, path)
        module.load_state_dict(state["state_dict"])
        return module
    from landzoo import checkpoint as ckpt

    weights, meta = ckpt.load_checkpoint(path)
    saved = _contract_dict(_meta_get(meta, "contract"))
    if not saved.get("bands"):
        raise RunError(f"checkpoint {path} has no band names in its data contract; refusing to guess the band order")
    config = dict(_meta_get(meta, "config") or {})
    if "transfer" in config:  # written by `landzoo transfer`: its protocol is not a training config
        task = config.get("task")
        if task is None:  # written before the task was recorded: derive it from the transfer settings
            from landzoo.transfer.protocols import get_protocol

            t = config["transfer"]
            task = get_protocol(t["dataset"], single_label=bool(t.get("single_label"))).task
        if task != "multilabel":
            raise RunError(
                f"checkpoint {path} is a single-label (softmax) model from `landzoo transfer`; test and predict "
                "evaluate multi-label (sigmoid) models: its test metrics are in the transfer report"
            )
        config = {}
    model_cfg = dict(config.get("model") or {})
    model_cfg["name"] = _meta_get(meta, "arch") or model_cfg.get("name")
    kwargs = _meta_get(meta, "arch_kwargs")
    if kwargs is not None:
        model_cfg["kwargs"] = dict(kwargs)
    model_cfg["bands"] = ",".join(saved["bands"])
    if saved.get("class_set"):
        model_cfg["classes"] = saved["class_set"]
    config["model"] = model_cfg
    # the model normalises with the checkpoint's statistics and groups bands as it was trained (a transferred
    # EuroSAT/SEN12MS model has its own statistics and all bands on one 10 m grid)
    data = {"stats": saved.get("stats") or None, "native": bool(saved.get("native", True))}
    module = LandCoverModule(config, None, data)
    _check_same_contract(module.contract, saved, path)
    try:
        module.model.load_state_dict(weights)
    except RuntimeError as err:
        raise RunError(
            f"checkpoint {path}: weights do not fit architecture {model_cfg['name']!r}: {str(err).splitlines()[0]}"
        ) from None
    return module


def _meta_get(meta: Any, key: str) -> Any:
    return meta.get(key) if isinstance(meta, dict) else getattr(meta, key, None)


def _check_same_contract(model: dict[str, Any], saved: dict[str, Any], path: Path) -> None:
    """The rebuilt model must see the data exactly as the checkpoint was trained on it."""
    if list(model["bands"]) != list(saved.get("bands") or []):
        raise RunError(
            f"checkpoint {path}: bands {','.join(saved.get('bands') or [])} but the rebuilt model takes {','.join(model['bands'])}"
        )
    if list(model["classes"]) != list(saved.get("classes") or model["classes"]):
        raise RunError(f"checkpoint {path}: its class order differs from class set {model['class_set']!r}")
    if saved.get("input_size") is not None and int(saved["input_size"]) != int(model["input_size"]):
        raise RunError(
            f"checkpoint {path}: input size {saved['input_size']} but the rebuilt model takes {model['input_size']}"
        )
    if bool(saved.get("native", True)) != bool(model.get("native", True)):
        raise RunError(f"checkpoint {path}: its band grouping (native={saved.get('native')}) differs from the model's")
    stats = saved.get("stats") or {}
    for band, (mean, std) in model["stats"].items():
        if band in stats and (
            abs(float(stats[band][0]) - mean) > 1e-3 * max(1.0, abs(mean))
            or abs(float(stats[band][1]) - std) > 1e-3 * max(1.0, std)
        ):
            raise RunError(
                f"checkpoint {path}: normalisation of {band} is mean {stats[band][0]}, std {stats[band][1]}; "
                f"this landzoo normalises with mean {mean}, std {std}"
            )


def check_contract_against_store(contract_: dict[str, Any], store: Path) -> None:
    """Refuse a store that lacks a checkpoint band or labels other classes (names and order).

    Bands are selected from the store by name, in the checkpoint's order, so a store that holds them in
    another order is fine; a missing band, another class set or another class order is an error.
    """
    from landzoo import checkpoint as ckpt
    from landzoo.store.reader import Store

    st = Store(store)
    missing = [b for b in contract_["bands"] if b not in st.bands]
    if missing:
        raise RunError(
            f"store {store} lacks band(s) {','.join(missing)}: checkpoint bands {','.join(contract_['bands'])} "
            f"vs store bands {','.join(st.bands)}"
        )
    dc = ckpt.DataContract.from_dict(contract_, source=f"checkpoint for store {store}")
    try:  # the bands are read from the store by name in the checkpoint's order (checked above): classes remain
        dc.check_compatible(dc.bands, st.classes)
    except LandzooError as err:
        raise RunError(f"store {store} does not match the checkpoint: {err}") from None


def _eval_setup(
    checkpoint: str | Path,
    store: str | Path,
    split: str,
    batch_size: int | None,
    num_workers: int | None,
    accelerator: str,
) -> tuple[LandCoverModule, L.LightningDataModule, TrainConfig]:
    store_path = check_store(store)
    module = load_module(checkpoint)
    check_contract_against_store(module.contract, store_path)
    cfg = module.cfg
    bs = batch_size or cfg.data.eval_batch_size or cfg.data.batch_size
    inner = make_datamodule(
        store_path,
        bands=module.bands,
        classes=module.class_set,
        batch_size=bs,
        eval_batch_size=bs,
        num_workers=cfg.data.num_workers if num_workers is None else num_workers,
        seed=cfg.seed,
        splits=(cfg.data.train_split, cfg.data.val_split, split),
        copy_threads=cfg.data.copy_threads,
    )
    inner.store.rows(split)  # a missing split is a one-line error now, not deep inside Lightning
    cfg.trainer.accelerator = accelerator
    return module, inner, cfg


def test(
    checkpoint: str | Path,
    store: str | Path,
    *,
    split: str = "test",
    batch_size: int | None = None,
    num_workers: int | None = None,
    accelerator: str = "auto",
    out: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a store split; refuses a store whose contract differs from the checkpoint's."""
    module, inner, cfg = _eval_setup(checkpoint, store, split, batch_size, num_workers, accelerator)
    timer = TestTimer()
    root = Path(out).parent if out else Path(".")
    trainer = make_trainer(cfg, root, callbacks=[timer], progress=progress, devices=1, strategy="auto")
    trainer.test(module, datamodule=inner, verbose=False)
    labels = inner.datasets["test"].labels.cpu() if "test" in getattr(inner, "datasets", {}) else None
    res = {
        "checkpoint": str(checkpoint),
        "store": str(store),
        "split": split,
        "metrics": module.test_results.get("metrics", {}),
        "per_class": module.test_results.get("per_class", {}),
        "baseline": _baseline(labels, module.classes),
        **timer.summary(trainer),
        "contract": module.contract,
        "env": cost_mod.environment_info(module.device),
    }
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(res, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return res


def predict(
    checkpoint: str | Path,
    store: str | Path,
    out: str | Path,
    *,
    split: str = "test",
    batch_size: int | None = None,
    num_workers: int | None = None,
    accelerator: str = "auto",
    progress: bool = True,
) -> Path:
    """Write one row per patch of ``split``: ``id`` then one probability column per class name (parquet/CSV)."""
    import numpy as np
    import pandas as pd

    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise RunError(f"--out {out}: choose a .parquet or .csv file name")
    module, inner, cfg = _eval_setup(checkpoint, store, split, batch_size, num_workers, accelerator)
    trainer = make_trainer(cfg, out.parent, callbacks=[], progress=progress, devices=1, strategy="auto")
    parts = trainer.predict(module, datamodule=inner) or []
    ids: list[str] = []
    probs = []
    for p in parts:
        ids += [str(i) for i in p["id"]]
        probs.append(p["probs"].numpy())
    mat = np.concatenate(probs) if probs else np.zeros((0, len(module.classes)), dtype=np.float32)
    frame = pd.DataFrame(mat, columns=list(module.classes))
    frame.insert(0, "id", ids)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    return out
