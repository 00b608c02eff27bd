"""The transfer sweep: initialisations x label fractions x seeds on one target, then a table, a plot and a report.

For every label fraction ``f`` and seed ``s`` (:mod:`.fractions`: stratified, nested by default) and every
initialisation, one model is trained on the ``f`` subset of the target's training split and scored on its
test split after selecting the epoch on its (full) validation split:

``zoo``
    the pretrained checkpoint (``--from``: a checkpoint path, a run folder, or a name looked up in a zoo
    folder such as a ``landzoo benchmark`` output), its first layer adapted by band name (:mod:`.adapt`),
    its classifier re-initialised for the target classes;
``random``
    the same architecture, randomly initialised (seeded);
``imagenet``
    only with ``--imagenet-weights FILE``: a local timm weight file (``.safetensors``, ``.pth``, ``.bin``)
    for the architecture's timm network, RGB adapted to the target bands by name like a zoo checkpoint
    (``B04,B03,B02``). landzoo never downloads weights; without the file this initialisation is left out
    and the report says so.

Every run is an ordinary run of the training engine (:func:`landzoo.training.engine.train_and_test`): the
same LightningModule, Trainer, callbacks, checkpoints with the data contract, metrics and cost measurement as
``landzoo fit``, hence its devices (DDP through torchrun, SLURM or ``--devices``), precision, SIGTERM handling,
resume and console. Its settings are the ``transfer`` protocol (:mod:`landzoo.training.protocols`) with this
sweep's options (:func:`train_config`). What stays here is transfer's own: the source checkpoint, the
band-aware first layer, label fractions, target protocols and data, the sweep, and its report.

Modes: ``finetune`` trains every weight (AdamW, cosine decay, dihedral augmentation by default);
``linear`` freezes the encoder (``model.freeze_backbone``: BatchNorm statistics included) and trains only the
classifier, on classifier inputs extracted once per frozen encoder (centre view, no augmentation) and kept in
memory on the run's device: the standard linear-probe protocol. Its test pass runs the whole model on images.

Small fractions give few optimiser steps per epoch: a run trains ``max(epochs, ceil(min_steps /
steps_per_epoch))`` epochs, so every run takes at least ``min_steps`` steps (recorded per run).

Normalisation: per-band statistics of the target's training images (all of them, no labels needed; a seeded
sample of at most ``stats_patches``), or the checkpoint's, or a JSON file; they go into every new
checkpoint's data contract.

Outputs in ``OUT/``: ``runs/<init>/f<fraction>_s<seed>/result.json`` (+ ``model.safetensors`` and its
sidecar, ``config.yaml``, ``logs/``), ``transfer_runs.csv`` (one row per run), ``transfer_table.csv``/``.md``
(mean and std over seeds), ``transfer.json`` (everything), ``score_vs_fraction.png`` and ``report.md``. A
finished run with the same settings is reused and an interrupted one resumes from its ``last.ckpt`` (deleted
once the run has finished), so a rerun of an interrupted sweep ends as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landzoo import contract
from landzoo.checkpoint import file_sha256
from landzoo.errors import LandzooError
from landzoo.files import atomic_write_text, check_writable_dir
from landzoo.training.config import Scaling, TrainConfig, load_config
from landzoo.training.data import RunData
from landzoo.training.engine import save_selected_weights, train_and_test
from landzoo.training.module import LandCoverModule, classifier
from landzoo.training.signals import stop_agreed
from landzoo.training.trainer import env_rank, is_global_zero
from landzoo.transfer.config import INITS, MODES, TransferConfig, TransferError, jsonable
from landzoo.transfer.data import FeatureCache, choose_bands, open_data, run_datamodule, target_stats
from landzoo.transfer.fractions import fraction_size, sample_fraction
from landzoo.transfer.protocols import Resolution, TargetData, TransferProtocol, get_protocol, open_target
from landzoo.transfer.source import Source, head_name, initialise, load_weight_file, resolve_source

__all__ = [
    "INITS",
    "MODES",
    "RunSpec",
    "Source",
    "TransferConfig",
    "TransferError",
    "resolve_source",
    "run_transfer",
    "train_config",
]


@dataclass
class RunSpec:
    init: str
    fraction: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.init}/f{self.fraction:g}_s{self.seed}"

    def torch_seed(self) -> int:
        digest = hashlib.sha256(f"{self.init}|{self.fraction!r}|{self.seed}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    def encoder_seed(self) -> int:
        """Seed of the frozen encoder of a linear probe: one per (init, seed), shared by every fraction, so the
        cached features of a seed are those of the model each fraction's head is evaluated with."""
        digest = hashlib.sha256(f"{self.init}|encoder|{self.seed}".encode()).digest()
        return int.from_bytes(digest[:4], "little")


def epochs_for(n_train: int, cfg: TransferConfig) -> int:
    """Epochs of a run on ``n_train`` patches: at least ``cfg.epochs``, and enough for ``cfg.min_steps`` steps."""
    steps = max(1, math.ceil(n_train / cfg.batch_size))
    return max(int(cfg.epochs), math.ceil(cfg.min_steps / steps)) if cfg.min_steps else int(cfg.epochs)


def train_config(
    cfg: TransferConfig, spec: RunSpec, proto: TransferProtocol, source: Source, bands: tuple[str, ...], out: Path
) -> TrainConfig:
    """The engine config of one run: the ``transfer`` protocol with this sweep's options."""
    linear = cfg.mode == "linear"
    over = {
        "protocol": "transfer",
        "name": f"f{spec.fraction:g}_s{spec.seed}",
        "out": str(out / "runs" / spec.init),
        "task": proto.task,
        "seed": spec.torch_seed(),
        "select_metric": proto.score,
        "augment": "none" if linear else cfg.augment,
        "model": {
            "name": source.arch,
            "bands": ",".join(bands),
            "classes": proto.class_set,
            "kwargs": {**source.arch_kwargs, **cfg.arch_kwargs},
            "freeze_backbone": linear,
        },
        "data": {
            "batch_size": cfg.batch_size,
            "eval_batch_size": cfg.eval_batch_size,
            "num_workers": cfg.workers,
        },
        "optim": {"lr": cfg.lr, "weight_decay": cfg.weight_decay},
        # the model-only rate over 6 timed batches after 2 warm-up ones, as transfer measured it before
        "cost": {"model_only_batches": 6, "warmup_batches": 2},
        "trainer": {
            "epochs": cfg.epochs,  # set per run from its fraction (epochs_for)
            "val_every_n_epochs": cfg.val_every,
            "accelerator": cfg.accelerator,
            "devices": cfg.devices,
            "num_nodes": cfg.num_nodes,
            "strategy": "ddp" if cfg.devices * cfg.num_nodes > 1 else "auto",
            "precision": cfg.precision,
            "logger": cfg.logger,
        },
    }
    try:
        return load_config(None, over)
    except LandzooError as err:
        raise TransferError(f"training settings: {err}") from None


class _Sweep:
    """The state a sweep shares between its runs (everything but the run itself)."""

    def __init__(self, cfg: TransferConfig, *, progress: bool, epoch_lines: bool) -> None:
        self.cfg = cfg
        self.progress = progress
        self.epoch_lines = epoch_lines
        self.out = Path(cfg.out)  # created once the inputs are known good: a typo must leave no empty folder
        self.proto = get_protocol(cfg.dataset, single_label=cfg.single_label, threshold=cfg.threshold)
        self.source = resolve_source(cfg.source, cfg.zoo)
        wanted = contract.resolve_bands(cfg.bands) if cfg.bands else None
        self.store = open_data(cfg, self.proto, wanted or tuple(self.source.contract.bands), self.out, progress)
        probe = open_target(self.store, self.proto, bands=None)
        self.bands = choose_bands(cfg, self.source, probe.bands)
        try:
            self.target: TargetData = open_target(self.store, self.proto, bands=self.bands)
        except LandzooError as err:
            raise TransferError(f"cannot read bands {','.join(self.bands)} from {self.store}: {err}") from None
        self.stats, self.stats_note = target_stats(cfg, self.source, self.target)
        self.imagenet = load_weight_file(cfg.imagenet_weights) if cfg.imagenet_weights else None
        check_writable_dir(self.out, what="--out folder")  # before any run trains
        self.features = FeatureCache()
        self.adaptation: dict[str, Any] = {}
        self.resolution: Resolution | None = None  # known once the first model is built (its input size)
        self.key = cfg.run_key(
            self.source.sha256,
            data=file_sha256(Path(self.store) / "index.parquet"),
            bands=self.bands,
            imagenet_sha=file_sha256(cfg.imagenet_weights) if cfg.imagenet_weights else None,
        )

    def data(self) -> dict[str, Any]:
        """The module's data hparam: target statistics, band grouping, and crop at native 10 m if asked."""
        d: dict[str, Any] = {"stats": {b: list(v) for b, v in self.stats.items()}, "native": self.target.native_groups}
        if self.resolution is not None and self.resolution.mode == "crop":
            d["resolution"] = self.resolution.to_dict()
        return d

    def module(self, tcfg: TrainConfig, scaling: Scaling | None, spec: RunSpec, seed: int) -> tuple[Any, dict]:
        """The run's module, its model built with ``seed`` and initialised (``spec.init``); and what was done.

        The first call (before the model's input size, hence the resolution policy, is known) sets
        :attr:`resolution`."""
        torch.manual_seed(seed)
        try:
            module = LandCoverModule(tcfg.to_dict(), None if scaling is None else scaling.__dict__, self.data())
        except contract.ContractError as err:
            raise TransferError(f"--bands: {err}") from None
        if self.resolution is None:
            self.resolution = Resolution(self.cfg.resolution, module.input_size, self.target.grid_px)
            if self.resolution.mode == "crop":
                torch.manual_seed(seed)
                module = LandCoverModule(tcfg.to_dict(), None if scaling is None else scaling.__dict__, self.data())
        example = torch.zeros(1, len(self.bands), module.input_size, module.input_size)
        info = initialise(
            module.model, spec.init, self.source, self.imagenet, self.cfg, self.bands, self.proto, example
        )
        if tcfg.model.freeze_backbone:  # adapted weights may be new Parameters: freeze again
            head = set(classifier(module.model).parameters())
            for p in module.model.parameters():
                p.requires_grad_(p in head)
        return module, info


def _reuse(run_dir: Path, key: dict[str, Any], rerun: bool) -> dict[str, Any] | None:
    path = run_dir / "result.json"
    if rerun or not path.is_file():
        return None
    try:
        done = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return done if done.get("key") == jsonable(key) else None


def _prepare_run_dir(run_dir: Path, key: dict[str, Any], rerun: bool) -> bool:
    """True when the run folder holds an interrupted run of the same settings (resume it); else clear it."""
    stored = run_dir / "key.json"
    try:
        same = json.loads(stored.read_text(encoding="utf-8")) == jsonable(key)
    except (OSError, ValueError):
        same = False
    if same and not rerun and (run_dir / "checkpoints" / "last.ckpt").is_file():
        return True
    if env_rank() == 0:
        for name in ("checkpoints", "logs"):
            shutil.rmtree(run_dir / name, ignore_errors=True)
        for name in ("result.json", "model.safetensors", "model.json", "config.yaml"):
            (run_dir / name).unlink(missing_ok=True)
        atomic_write_text(stored, json.dumps(jsonable(key), indent=1) + "\n")
    return False


def run_transfer(cfg: TransferConfig, *, progress: bool = True, epoch_lines: bool = True) -> dict[str, Any]:
    """Run the sweep described by ``cfg``; write the outputs into ``cfg.out`` and return the summary.

    When SIGTERM stops it, returns ``{"status": "preempted", "model": RUN, "checkpoint": PATH}`` (the running
    run has saved its ``last.ckpt``; the same call continues the sweep).
    """
    from landzoo.training import cost
    from landzoo.transfer.report import aggregate, write_outputs

    sweep = _Sweep(cfg, progress=progress, epoch_lines=epoch_lines)
    proto, target, out = sweep.proto, sweep.target, sweep.out
    first = RunSpec(cfg.inits[0], cfg.fractions[0], cfg.seeds[0])
    probe_module, _ = sweep.module(train_config(cfg, first, proto, sweep.source, sweep.bands, out), None, first, 0)
    example = torch.zeros(1, len(sweep.bands), probe_module.input_size, probe_module.input_size)
    head = head_name(probe_module.model, len(proto.classes), example)
    if cfg.mode == "linear" and not isinstance(classifier(probe_module.model), torch.nn.Linear):
        raise TransferError(
            f"linear probing needs a Linear classifier; this model's is a {type(classifier(probe_module.model)).__name__}"
        )
    resolution = sweep.resolution
    assert resolution is not None
    del probe_module

    train_all = target.splits["train"]
    train_labels = target.labels[train_all]
    subsets = {
        (f, s): np.asarray(train_all[sample_fraction(train_labels, f, s, nested=cfg.nested)])
        for f in cfg.fractions
        for s in cfg.seeds
    }
    specs = [RunSpec(i, f, s) for i in cfg.inits for s in cfg.seeds for f in cfg.fractions]
    results: list[dict[str, Any]] = []
    linear = cfg.mode == "linear"
    for n, spec in enumerate(specs, 1):
        run_dir = out / "runs" / spec.init / f"f{spec.fraction:g}_s{spec.seed}"
        train_pos = subsets[(spec.fraction, spec.seed)]
        done = _reuse(run_dir, sweep.key, cfg.rerun)
        if done is not None:
            results.append(done)
            sweep.adaptation.setdefault(spec.init, done.get("initialisation", {}).get("adaptation"))
            continue
        if stop_agreed():
            return {"status": "preempted", "model": spec.name, "checkpoint": str(run_dir / "checkpoints" / "last.ckpt")}
        resume = _prepare_run_dir(run_dir, sweep.key, cfg.rerun)
        tcfg = train_config(cfg, spec, proto, sweep.source, sweep.bands, out)
        tcfg.trainer.epochs = epochs_for(len(train_pos), cfg)
        build_seed = spec.encoder_seed() if linear else spec.torch_seed()
        fkey = (spec.init, spec.encoder_seed() if spec.init == "random" else -1)
        info: dict[str, Any] = {}

        def build(scaling: Scaling, tcfg: TrainConfig = tcfg, spec: RunSpec = spec, train_pos: np.ndarray = train_pos,
                  build_seed: int = build_seed, fkey: Any = fkey, info: dict = info) -> tuple[Any, RunData]:  # fmt: skip
            module, what = sweep.module(tcfg, scaling, spec, build_seed)
            info.update(what)
            dm = run_datamodule(
                target, train_pos, cfg, batch_size=scaling.per_device_batch, seed=tcfg.seed,
                probe=(sweep.features, fkey) if linear else None,
            )  # fmt: skip
            return module, RunData(dm, n_train=len(train_pos))

        if is_global_zero():
            atomic_write_text(run_dir / "config.yaml", tcfg.to_yaml())
        what = "resuming" if resume else ("linear probe" if linear else "fine-tuning")
        label = f"[{n}/{len(specs)}] {spec.init} f={spec.fraction:g} seed={spec.seed}"
        if epoch_lines or progress:
            print(f"{label}: {what}, {len(train_pos)} training patches, {tcfg.trainer.epochs} epochs", flush=True)
        res, module = train_and_test(
            tcfg, run_dir, build, resume=resume, label=label, progress=progress, epoch_lines=epoch_lines
        )
        if res["status"] != "ok" or module is None:
            return {"status": "preempted", "model": spec.name, "checkpoint": res["checkpoint"]}
        rep = info.pop("_report", None)
        if rep is not None:
            sweep.adaptation[spec.init] = rep.to_dict()
        result = _record(sweep, spec, train_pos, res, info)
        if linear:
            result["cost"]["feature_time_s"] = sweep.features.seconds.get(fkey)
        if is_global_zero():
            if cfg.save_checkpoints:
                save_selected_weights(
                    module,
                    run_dir / "model.safetensors",
                    config={
                        "task": proto.task,
                        "transfer": jsonable(asdict(cfg)),
                        "run": asdict(spec),
                        "resolution": resolution.describe(),
                        "train": tcfg.to_dict(),
                    },
                    metrics={f"test_{k}": v for k, v in result["test"].items()},
                )
                result["checkpoint"] = str(run_dir / "model.safetensors")
            atomic_write_text(run_dir / "result.json", json.dumps(jsonable(result), indent=2) + "\n")
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # the resume point is no longer needed
        results.append(result)

    env = cost.environment_info(
        "cuda" if cfg.accelerator in ("gpu", "auto") and torch.cuda.is_available() else "cpu",
        cfg.devices * cfg.num_nodes,
    )
    summary = {
        "config": jsonable(asdict(cfg)),
        "protocol": proto.to_dict(),
        "source": sweep.source.describe(),
        "target": {
            **target.summary(),
            "stats": {b: list(v) for b, v in sweep.stats.items()},
            "stats_source": sweep.stats_note,
        },
        "bands": list(sweep.bands),
        "resolution": {
            "mode": resolution.mode,
            "model_px": resolution.model_px,
            "grid_px": target.grid_px,
            "describe": resolution.describe(),
        },
        "head": head,
        "adaptation": sweep.adaptation,
        "imagenet": (
            f"compared, from {cfg.imagenet_weights}"
            if cfg.imagenet_weights
            else "not compared: no --imagenet-weights FILE was given (landzoo downloads no weights)"
        ),
        "fraction_sizes": {f"{f:g}": fraction_size(len(train_all), f) for f in cfg.fractions},
        "env": env,
        "runs": results,
        "table": aggregate(results, proto),
    }
    if is_global_zero():
        write_outputs(out, summary)
    return summary


def _record(
    sweep: _Sweep, spec: RunSpec, train_pos: np.ndarray, res: dict[str, Any], info: dict[str, Any]
) -> dict[str, Any]:
    """One run's ``result.json``: what the report reads (test, val at selection, cost) and how it was made."""
    proto, target = sweep.proto, sweep.target
    test = {k: float(v) for k, v in res["test"].items()}
    return {
        "init": spec.init,
        "fraction": spec.fraction,
        "seed": spec.seed,
        "n_train": len(train_pos),
        "classes_in_train": int((target.labels[train_pos].sum(0) > 0).sum()),
        "score_name": proto.score,
        "score": float(test[proto.score]),
        "test": test,
        "test_per_class": res["test_per_class"],
        "val": {**res["val"], "epoch": res["best_epoch"]},
        "cost": {**res["cost"], "batch_size": sweep.cfg.batch_size},
        "scaling": res["scaling"],
        "env": res["env"],
        "initialisation": info,
        "key": sweep.key,
    }
