"""``bench-train``: training and validation speed of zoo models through the engine's own step, per data path,
precision and compile setting, on one device.

Each row trains the real :class:`~landzoo.training.module.LandCoverModule` (input stem, augmentation, loss,
optimiser, Lightning's loop) on a synthetic BigEarthNet-v1 store of the real shapes (10 bands: four at
120 x 120 px, six at 60 x 60 px, uint16), for ``warmup`` untimed steps then ``steps`` timed ones:

* ``train_img_s``: images / wall time of the timed steps (the device synchronised at both ends);
* ``epoch_s_v1_train``: BigEarthNet v1's train split (269,695 patches) at that rate (an extrapolation);
* ``data_wait_share``: the share of the timed wall time between one step's end and the next step's start
  (fetching the batch, moving it to the device, Lightning's hooks): what the model waits for its data;
* ``val_img_s``: validation batches (forward, sigmoid, metrics update), timed the same way;
* ``peak_mem_bytes``: ``torch.cuda.max_memory_allocated`` on a GPU (reset per row); on the CPU the process'
  peak RSS so far, which only grows: a row shows the largest of itself and the rows before it.

Rows are ``DATA-PRECISION[-compile]``: ``loader`` (the store's DataLoader, memory-mapped, ``num_workers``
processes) or ``resident`` (:mod:`landzoo.training.resident`); ``fp32`` or ``bf16`` (bf16-mixed autocast).
"""

from __future__ import annotations

import gc
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from landzoo.training import cost as cost_mod

__all__ = ["DEFAULT_MODELS", "DEFAULT_ROWS", "V1_TRAIN_PATCHES", "format_table", "make_store", "run_bench"]

DEFAULT_MODELS = ("wrn_eca_b0", "wrn_eca_b3", "resnet50", "efficientnet_b0", "vit_p20_120", "mixer_p12_120")
DEFAULT_ROWS = ("loader-fp32", "resident-fp32", "resident-bf16", "resident-bf16-compile")
#: Patches of BigEarthNet v1's official train split (the epoch the issue's targets are stated for).
V1_TRAIN_PATCHES = 269_695


def parse_row(row: str) -> dict[str, Any]:
    """``resident-bf16-compile`` -> the config overrides of that row; an unknown row raises ``ValueError``."""
    parts = row.split("-")
    if len(parts) not in (2, 3) or parts[0] not in ("loader", "resident") or parts[1] not in ("fp32", "bf16"):
        raise ValueError(f"row {row!r} is not DATA-PRECISION[-compile] (DATA loader|resident, PRECISION fp32|bf16)")
    if len(parts) == 3 and parts[2] != "compile":
        raise ValueError(f"row {row!r}: the optional third part is 'compile'")
    return {
        "data.resident": parts[0] == "resident",
        "trainer.precision": "32-true" if parts[1] == "fp32" else "bf16-mixed",
        "trainer.compile": len(parts) == 3,
    }


def make_store(work: Path, patches: int, *, workers: int = 2) -> Path:
    """A synthetic BigEarthNet-v1 store of ``patches`` patches under ``work`` (made once, then reused)."""
    from landzoo.store.encode import encode
    from landzoo.synthetic import generate

    store = work / f"store-{patches}"
    if (store / "manifest.json").is_file():
        return store
    raw = generate(
        "bigearthnet-v1",
        work / f"raw-{patches}",
        patches=patches,
        seed=0,
        workers=workers,
        progress=True,
        overwrite=True,
    )
    encode("bigearthnet-v1", raw, store, workers=workers, progress=True)
    return store


class _Timer(L.Callback):
    """Wall time of batches ``warmup .. warmup + steps`` (device synchronised at both ends) and the data wait."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.count = 0
        self.t0 = self.t1 = 0.0
        self.images = 0
        self.wait = 0.0
        self._end: float | None = None

    def _start(self, batch: Any) -> None:
        now = time.perf_counter()
        if self.warmup <= self.count < self.warmup + self.steps and self._end is not None:
            self.wait += now - self._end

    def _stop(self, module: L.LightningModule, batch: Any) -> None:
        self.count += 1
        if self.count == self.warmup:
            cost_mod.sync(module.device)
            self.t0 = time.perf_counter()
        elif self.warmup < self.count <= self.warmup + self.steps:
            self.images += int(batch["label"].shape[0])
            if self.count == self.warmup + self.steps:
                cost_mod.sync(module.device)
                self.t1 = time.perf_counter()
        self._end = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, i: int) -> None:
        self._start(batch)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, out: Any, batch: Any, i: int) -> None:
        self._stop(module, batch)

    def on_validation_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, i: int, d: int = 0
    ) -> None:
        self._start(batch)

    def on_validation_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, out: Any, batch: Any, i: int, d: int = 0
    ) -> None:
        self._stop(module, batch)

    def result(self) -> tuple[float | None, float | None]:
        span = self.t1 - self.t0
        if self.count < self.warmup + self.steps or span <= 0:
            return None, None
        return self.images / span, self.wait / span


def _one_row(
    store: Path, model: str, row: str, *, batch_size: int, warmup: int, steps: int, device: str, workers: int
) -> dict[str, Any]:
    from landzoo.training.config import TrainConfig, resolve_scaling
    from landzoo.training.data import RunData, make_datamodule, steps_per_epoch
    from landzoo.training.module import LandCoverModule
    from landzoo.training.resident import describe
    from landzoo.training.trainer import resolve_precision

    switches = parse_row(row)
    cfg = TrainConfig.from_dict(
        {
            "protocol": "paper",
            "augment": "dihedral",
            "model": {"name": model},
            "data": {
                "store": str(store),
                "batch_size": batch_size,
                "num_workers": workers,
                "resident": switches["data.resident"],
            },
            "trainer": {
                "accelerator": device,
                "devices": 1,
                "logger": "none",
                "progress": False,
                "channels_last": "auto",
                "log_every_n_steps": 50,
                "precision": switches["trainer.precision"],
                "compile": switches["trainer.compile"],
            },
            "optim": {"lr_scaling": "none"},
            "cost": {"measure": False},
        }
    )
    scaling = resolve_scaling(cfg, 1)
    module = LandCoverModule(cfg.to_dict(), scaling.__dict__, None)
    inner = make_datamodule(
        store,
        bands=module.bands,
        classes=cfg.model.classes,
        batch_size=batch_size,
        eval_batch_size=batch_size,
        num_workers=0 if cfg.data.resident else workers,
        seed=cfg.seed,
        resident=cfg.data.resident,
        drop_last=True,
        announce=lambda line: None,
    )
    data = RunData(inner, n_train=len(inner.store.rows("train")))
    module.steps_per_epoch = steps_per_epoch(data.n_train, cfg, scaling)
    timer = _Timer(warmup, steps)
    common = {
        "accelerator": device,
        "devices": 1,
        "precision": resolve_precision(cfg),
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
        "use_distributed_sampler": False,
    }
    cost_mod.reset_peak_memory(torch.device(device))
    trainer = L.Trainer(max_steps=warmup + steps, max_epochs=-1, limit_val_batches=0, callbacks=[timer], **common)
    trainer.fit(module, datamodule=data)
    train_img_s, wait = timer.result()
    peak, kind = cost_mod.peak_memory(module.device)
    took = {"data": describe(inner), **module.fast_path}
    vtimer = _Timer(warmup, steps)
    val_trainer = L.Trainer(limit_val_batches=warmup + steps, callbacks=[vtimer], **common)
    val_trainer.validate(module, datamodule=_Cycle(data, warmup + steps), verbose=False)
    val_img_s, _ = vtimer.result()
    inner.teardown("fit")
    del trainer, val_trainer, data  # the loaders' worker processes and resident tensors go now, not rows later
    gc.collect()
    return {
        "model": model,
        "row": row,
        "batch_size": batch_size,
        "precision": resolve_precision(cfg),
        "train_img_s": train_img_s,
        "epoch_s_v1_train": V1_TRAIN_PATCHES / train_img_s if train_img_s else None,
        "data_wait_share": wait,
        "val_img_s": val_img_s,
        "peak_mem_bytes": peak,
        "peak_mem_kind": kind,
        "switches": took,
    }


def _median_row(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from its repeated samples: the sample of median training img/s (so every figure comes from one
    measurement), with all samples' rates listed; an error if any sample failed."""
    if len(samples) == 1:
        return samples[0]
    failed = [s for s in samples if "error" in s]
    if failed:
        return failed[0]
    ranked = sorted(samples, key=lambda s: s["train_img_s"] or 0.0)
    row = dict(ranked[(len(ranked) - 1) // 2])
    row["samples"] = [{k: s[k] for k in ("train_img_s", "val_img_s", "data_wait_share")} for s in samples]
    return row


class _Cycle(L.LightningDataModule):
    """Validation batches of ``data``, repeated until ``n`` (a small store has fewer than a timing needs)."""

    def __init__(self, data: L.LightningDataModule, n: int) -> None:
        super().__init__()
        self.data, self.n = data, n

    def setup(self, stage: str) -> None:
        self.data.trainer = self.trainer
        self.data.setup("validate")

    def val_dataloader(self) -> Any:
        loader, n = self.data.val_dataloader(), self.n

        class Repeat:
            def __len__(self) -> int:
                return n

            def __iter__(self) -> Any:
                done = 0
                while done < n:
                    before = done
                    for batch in loader:
                        yield batch
                        done += 1
                        if done == n:
                            return
                    if done == before:  # an empty validation split: nothing to time
                        return

        return Repeat()

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return self.data.transfer_batch_to_device(batch, device, dataloader_idx)


def run_bench(
    store: Path,
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    rows: Sequence[str] = DEFAULT_ROWS,
    batch_size: int = 256,
    warmup: int = 5,
    steps: int = 20,
    device: str = "auto",
    workers: int = 2,
    repeat: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every (model, row); a row that fails is recorded with its error (the others still run).

    ``repeat`` > 1 runs a model's rows that many times, interleaved (loader, resident, loader, resident, ...), so
    a drift of the machine's speed (another tenant, boost clocks) hits every row alike; a row then reports the
    median of its samples and lists them all (``samples``).
    """
    from landzoo.store.bench import hardware

    for row in rows:
        parse_row(row)
    if warmup < 1 or steps < 1 or repeat < 1:
        raise ValueError(f"warmup, steps and repeat must be at least 1, got {warmup}, {steps} and {repeat}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    results = []
    for model in models:
        samples: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
        for _ in range(repeat):
            for row in rows:
                log(f"bench-train: {model} {row} ...")
                try:
                    r = _one_row(
                        store,
                        model,
                        row,
                        batch_size=batch_size,
                        warmup=warmup,
                        steps=steps,
                        device=device,
                        workers=workers,
                    )
                except Exception as err:  # a row that cannot run here (e.g. compile without a compiler) is reported
                    r = {"model": model, "row": row, "error": f"{type(err).__name__}: {str(err)[:300]}"}
                log(
                    f"bench-train: {model} {row}: "
                    + json.dumps({k: r.get(k) for k in ("train_img_s", "val_img_s", "data_wait_share", "error")})
                )
                samples[row].append(r)
        results += [_median_row(samples[row]) for row in rows]
    import lightning
    import timm

    return {
        "benchmark": "bench-train",
        "hardware": hardware(),
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({platform.processor() or 'cpu'})",
        "versions": {
            "torch": torch.__version__,
            "lightning": lightning.__version__,
            "timm": timm.__version__,
            "python": platform.python_version(),
        },
        "settings": {
            "repeat": repeat,
            "store": str(store),
            "batch_size": batch_size,
            "warmup_steps": warmup,
            "timed_steps": steps,
            "device": device,
            "loader_workers": workers,
            "protocol": "paper + dihedral augmentation",
            "epoch_patches": V1_TRAIN_PATCHES,
        },
        "rows": results,
    }


def format_table(report: dict[str, Any]) -> str:
    """The rows as a fixed-width table (img/s, extrapolated epoch, data wait, validation img/s, peak memory)."""
    head = f"{'model':<18} {'row':<24} {'train img/s':>11} {'epoch (s)':>10} {'data wait':>9} {'val img/s':>10} {'peak MB':>9}"
    lines = [report["hardware"], head]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"{r['model']:<18} {r['row']:<24} error: {r['error']}")
            continue
        f = lambda v, fmt: format(v, fmt) if v is not None else "-"  # noqa: E731
        lines.append(
            f"{r['model']:<18} {r['row']:<24} {f(r['train_img_s'], '11.1f')} {f(r['epoch_s_v1_train'], '10.0f')} "
            f"{f(r['data_wait_share'] and 100 * r['data_wait_share'], '8.1f')}% {f(r['val_img_s'], '10.1f')} "
            f"{r['peak_mem_bytes'] / 2**20:9.0f}"
        )
    return "\n".join(lines)
