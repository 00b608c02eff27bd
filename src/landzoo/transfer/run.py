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

Modes: ``finetune`` trains every weight (AdamW, cosine decay, dihedral augmentation by default);
``linear`` freezes the encoder (BatchNorm statistics included) and trains only the classifier on features
extracted once per initialisation (centre view, no augmentation), the standard linear-probe protocol.

Small fractions give few optimiser steps per epoch: a run trains ``max(epochs, ceil(min_steps /
steps_per_epoch))`` epochs, so every run takes at least ``min_steps`` steps (recorded per run).

Normalisation: per-band statistics of the target's training images (all of them, no labels needed; a seeded
sample of at most ``stats_patches``), or the checkpoint's, or a JSON file; they go into every new
checkpoint's data contract. Cost is measured as by the benchmark (:mod:`landzoo.training.cost`): training
time without validation passes, model-only and end-to-end inference rates, parameters, MACs, peak memory,
hardware. Runs are single-device.

Outputs in ``OUT/``: ``runs/<init>/f<fraction>_s<seed>/result.json`` (+ ``model.safetensors`` and its
sidecar), ``transfer_runs.csv`` (one row per run), ``transfer_table.csv``/``.md`` (mean and std over seeds),
``transfer.json`` (everything), ``score_vs_fraction.png`` and ``report.md``. A finished run with the same
settings is reused, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor, nn

from landzoo import contract
from landzoo.checkpoint import file_sha256
from landzoo.errors import LandzooError
from landzoo.transfer import adapt as adapt_mod
from landzoo.transfer.fractions import fraction_size, parse_fractions, sample_fraction
from landzoo.transfer.protocols import (
    RESOLUTION_MODES,
    Resolution,
    TargetData,
    TransferProtocol,
    band_stats_from,
    get_protocol,
    open_target,
)

__all__ = [
    "INITS",
    "MODES",
    "Source",
    "TransferConfig",
    "TransferError",
    "resolve_source",
    "run_transfer",
]

INITS: Final = ("zoo", "random", "imagenet")
MODES: Final = ("finetune", "linear")
#: RGB band order of ImageNet (timm) first layers.
IMAGENET_BANDS: Final = contract.BAND_SELECTIONS["rgb"]
_DEFAULTS: Final = {"finetune": {"epochs": 30, "lr": 1e-3}, "linear": {"epochs": 100, "lr": 1e-2}}


class TransferError(LandzooError):
    """A transfer run that cannot start: no checkpoint, bad option, data that does not fit."""


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------
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
    device: str = "auto"
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
        for name in ("epochs", "batch_size", "eval_batch_size", "stats_patches"):
            if int(getattr(self, name)) < 1:
                raise TransferError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.min_steps < 0 or self.lr <= 0 or self.weight_decay < 0:
            raise TransferError("min_steps and weight_decay must be >= 0 and lr > 0")
        if self.val_every is None:
            self.val_every = max(1, int(self.epochs) // 10)

    def run_key(self, source_sha: str, *, data: str, bands: Sequence[str], imagenet_sha: str | None) -> dict[str, Any]:
        """The settings a finished run must share to be reused: these options, the source weights, the target
        data (the hash of its store index, which holds every record's checksum), the bands actually used and
        the ImageNet weights (hash)."""
        keys = (
            "dataset", "mode", "bands", "resolution", "single_label", "threshold", "new_band_rule", "epochs",
            "min_steps", "lr", "weight_decay", "batch_size", "augment", "val_every", "stats", "stats_patches",
            "nested", "arch_kwargs",
        )  # fmt: skip
        return {
            "run_format": _RUN_FORMAT,
            "source_sha256": source_sha,
            "data_sha256": data,
            "bands_used": list(bands),
            "imagenet_sha256": imagenet_sha,
            **{k: getattr(self, k) for k in keys},
        }


#: Bumped when the same options would give different runs (2: one frozen encoder per seed in linear probes).
_RUN_FORMAT = 2


# --------------------------------------------------------------------------------------------------
# the pretrained source
# --------------------------------------------------------------------------------------------------
@dataclass
class Source:
    """A pretrained checkpoint: where it is, its architecture, data contract and weights."""

    path: Path
    arch: str
    arch_kwargs: dict[str, Any]
    contract: Any  # landzoo.checkpoint.DataContract
    state: dict[str, Tensor]
    sha256: str

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "arch": self.arch,
            "arch_kwargs": self.arch_kwargs,
            "bands": list(self.contract.bands),
            "class_set": self.contract.class_set,
            "input_size": self.contract.input_size,
            "sha256": self.sha256,
        }


def _zoo_candidates(name: str, zoo: Path) -> list[Path]:
    return [zoo / name, zoo / "runs" / name, zoo / f"{name}.safetensors"]


def resolve_source(spec: str, zoo: str | os.PathLike | None = None) -> Source:
    """A checkpoint path (file, folder, run folder) or a name in a zoo folder -> loaded :class:`Source`.

    A checkpoint without band names in its data contract is refused (its first layer cannot be matched).
    """
    from landzoo import checkpoint as ckpt

    path = Path(spec)
    tried: list[Path] = []
    if not path.exists():
        zoos = [Path(z) for z in (zoo, os.environ.get("LANDZOO_ZOO")) if z]
        for z in zoos:
            tried += _zoo_candidates(spec, z)
        found = next((p for p in tried if p.exists()), None)
        if found is None:
            hint = ""
            try:
                from landzoo.models import get_model_info

                get_model_info(spec)
                hint = (
                    f" ({spec!r} is an architecture of the zoo, but landzoo ships no weights: train it with "
                    "`landzoo fit` or `landzoo benchmark` and pass the run folder, or --zoo BENCHMARK_OUT)"
                )
            except LandzooError:
                pass
            where = f"; looked in {', '.join(map(str, tried))}" if tried else " (no --zoo folder or LANDZOO_ZOO given)"
            raise TransferError(f"no checkpoint {spec!r}{where}{hint}")
        path = found
    if path.is_dir() and not (path / ckpt.FOLDER_WEIGHTS).is_file():
        raise TransferError(f"{path} holds no {ckpt.FOLDER_WEIGHTS}: not a checkpoint or finished run folder")
    state, meta = ckpt.load_checkpoint(path)
    if not meta.contract.bands:  # pragma: no cover - DataContract refuses this already
        raise TransferError(f"checkpoint {path} names no bands in its data contract")
    return Source(path, meta.arch, dict(meta.arch_kwargs), meta.contract, dict(state), meta.weights_sha256)


def _align_keys(state: dict[str, Tensor], model_keys: Sequence[str]) -> dict[str, Tensor]:
    """Rename ``state`` keys to the model's when they differ by a prefix (``backbone.``, ``module.``, ``model.``)."""
    keys = set(model_keys)
    if sum(k in keys for k in state) >= 0.5 * len(state):
        return state
    for add in ("backbone.", ""):
        for strip in ("", "module.", "model.", "state_dict."):
            renamed = {add + k.removeprefix(strip): v for k, v in state.items() if k.startswith(strip)}
            if renamed and sum(k in keys for k in renamed) >= 0.5 * len(renamed):
                return renamed
    return state


def load_weight_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """A timm-style weight file (safetensors or a torch pickle of a state dict) as a flat state dict."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: one line naming it
        raise TransferError(f"cannot read weight file {path}: {err}") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise TransferError(f"weight file {path} does not hold a state dict of tensors")
    return dict(state)


# --------------------------------------------------------------------------------------------------
# data preparation on the device
# --------------------------------------------------------------------------------------------------
class Prep(nn.Module):
    """Raw band groups -> normalised (target statistics), resized or cropped model input, augmented if training."""

    def __init__(
        self, bands: Sequence[str], resolution: Resolution, stats: dict[str, tuple[float, float]], native: bool
    ) -> None:
        super().__init__()
        from landzoo.transforms import InputTransform

        self.resolution = resolution
        self.transform = InputTransform(bands, resolution.transform_px, stats=stats, native=native)

    def forward(
        self,
        image: dict[str, Tensor],
        *,
        train: bool = False,
        generator: torch.Generator | None = None,
        augment: bool = False,
    ) -> Tensor:
        x = self.resolution.apply(self.transform(image), train=train, generator=generator)
        if augment:
            from landzoo.transforms import random_dihedral

            x = random_dihedral(x, generator=generator)  # type: ignore[assignment]
        return x


def _to_device(batch: dict[str, Any], device: torch.device) -> tuple[dict[str, Tensor], Tensor]:
    return {g: t.to(device, non_blocking=True) for g, t in batch["image"].items()}, batch["label"].to(device)


def _batches(positions: np.ndarray, size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    pos = rng.permutation(positions) if rng is not None else positions
    return [pos[i : i + size] for i in range(0, len(pos), size)]


class _Prefetch:
    """Reads batches in a background thread (store reads release the GIL) while the device computes."""

    def __init__(self, target: TargetData, batches: list[np.ndarray], workers: int) -> None:
        self.target, self.batches, self.workers = target, batches, max(0, workers)

    def __iter__(self) -> Any:
        if self.workers == 0 or len(self.batches) < 2:
            for b in self.batches:
                yield self.target.batch(b)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(self.target.batch, b) for b in self.batches[: self.workers + 1]]
            nxt = len(futures)
            for i in range(len(self.batches)):
                out = futures[i].result()
                if nxt < len(self.batches):
                    futures.append(pool.submit(self.target.batch, self.batches[nxt]))
                    nxt += 1
                futures[i] = None  # type: ignore[call-overload]
                yield out


# --------------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    forward: Callable[[Tensor], Tensor],
    prep: Prep,
    target: TargetData,
    positions: np.ndarray,
    proto: TransferProtocol,
    device: torch.device,
    batch_size: int,
    workers: int = 0,
) -> tuple[dict[str, Any], float]:
    """Metrics of ``forward`` over ``positions`` and the end-to-end rate (store -> probabilities on the host)."""
    from landzoo.training import cost

    metric = proto.metric()
    cost.sync(device)
    t0 = time.perf_counter()
    n = 0
    for batch in _Prefetch(target, _batches(positions, batch_size), workers):
        image, label = _to_device(batch, device)
        probs = proto.probabilities(forward(prep(image))).cpu()
        metric.update(probs, label.cpu())
        n += len(label)
    cost.sync(device)
    seconds = time.perf_counter() - t0
    out = metric.compute()
    return out, (n / seconds if seconds > 0 else float("nan"))


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


# --------------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------------
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


def _build(
    source: Source,
    cfg: TransferConfig,
    bands: tuple[str, ...],
    proto: TransferProtocol,
    seed: int,
    target: TargetData,
    stats: dict[str, tuple[float, float]],
) -> nn.Module:
    """The zoo architecture for the target's bands (its own input stem with the target's statistics) and classes."""
    from landzoo.models import create_model

    torch.manual_seed(seed)
    kwargs = {**source.arch_kwargs, **cfg.arch_kwargs}
    try:
        return create_model(
            source.arch, bands=bands, classes=proto.class_set, native=target.native_groups, stats=stats, **kwargs
        )
    except contract.ContractError as err:
        raise TransferError(f"--bands: {err}") from None


def _initialise(
    model: nn.Module,
    init: str,
    source: Source,
    imagenet: dict[str, Tensor] | None,
    cfg: TransferConfig,
    bands: tuple[str, ...],
    proto: TransferProtocol,
    example: Tensor,
) -> dict[str, Any]:
    """Load the initialisation's weights into ``model``; returns what was done (adaptation and load reports)."""
    if init == "random":
        return {"init": "random", "note": "architecture's own initialisation, seeded"}
    if init == "zoo":
        state, src_bands, what = source.state, source.contract.bands, f"checkpoint {source.path}"
    else:
        assert imagenet is not None
        state = _align_keys(imagenet, list(model.state_dict()))
        src_bands, what = IMAGENET_BANDS, f"ImageNet weights {cfg.imagenet_weights} (RGB = B04,B03,B02)"
    try:
        rep, load = adapt_mod.transfer_weights(
            model, state, src_bands, bands, len(proto.classes), rule=cfg.new_band_rule, example=example
        )
    except adapt_mod.AdaptError as err:
        raise TransferError(f"{init} initialisation from {what}: {err}") from None
    return {"init": init, "from": what, "adaptation": rep.to_dict(), "load": load.to_dict(), "_report": rep}


def _head_module(model: nn.Module, num_classes: int, example: Tensor) -> tuple[str, nn.Module]:
    name = adapt_mod.find_head(model, num_classes, example)
    return name, dict(model.named_modules())[name]


def _epochs_for(n_train: int, cfg: TransferConfig) -> int:
    steps = max(1, math.ceil(n_train / cfg.batch_size))
    return max(int(cfg.epochs), math.ceil(cfg.min_steps / steps)) if cfg.min_steps else int(cfg.epochs)


def _finetune(
    model: nn.Module,
    prep: Prep,
    target: TargetData,
    train_pos: np.ndarray,
    proto: TransferProtocol,
    cfg: TransferConfig,
    device: torch.device,
    seed: int,
    bar: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train every weight; select the epoch on validation. Returns (val at selection, training cost)."""
    from landzoo.training import cost

    epochs = _epochs_for(len(train_pos), cfg)
    steps_per_epoch = math.ceil(len(train_pos) / cfg.batch_size)
    total = epochs * steps_per_epoch
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    other = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}], lr=cfg.lr
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng([seed, 0xF17E])
    best: tuple[float, int, dict[str, Tensor] | None, dict[str, float]] = (-math.inf, -1, None, {})
    epoch_times: list[float] = []
    images = 0
    cost.reset_peak_memory(device)
    for epoch in range(epochs):
        model.train()
        cost.sync(device)
        t0 = time.perf_counter()
        for batch in _Prefetch(target, _batches(train_pos, cfg.batch_size, rng), cfg.workers):
            image, label = _to_device(batch, device)
            x = prep(image, train=True, generator=gen, augment=cfg.augment == "dihedral")
            if x.shape[0] == 1:  # BatchNorm cannot train on one sample: use it twice
                x, label = x.repeat(2, 1, 1, 1), label.repeat(2, 1)
            loss = proto.loss_fn(model(x), label)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            images += int(batch["label"].shape[0])
            if bar is not None:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        cost.sync(device)
        epoch_times.append(time.perf_counter() - t0)
        if bar is not None:
            bar.update(1)
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == epochs:
            model.eval()
            val, _ = evaluate(
                model, prep, target, target.splits["val"], proto, device, cfg.eval_batch_size, cfg.workers
            )
            score = float(val[proto.score])
            if score > best[0]:
                best = (score, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()}, _flat(val))
    assert best[2] is not None
    model.load_state_dict(best[2])
    train_time = float(sum(epoch_times))
    mem, kind = cost.peak_memory(device)
    return {**best[3], "epoch": best[1]}, {
        "epochs": epochs,
        "steps": total,
        "train_time_s": train_time,
        "epoch_time_s": train_time / len(epoch_times),
        "train_images": images,
        "train_img_s": images / train_time if train_time > 0 else None,
        "peak_mem_bytes": mem,
        "peak_mem_kind": kind,
    }


@torch.no_grad()
def _features(
    model: nn.Module,
    head: nn.Module,
    prep: Prep,
    target: TargetData,
    positions: np.ndarray,
    cfg: TransferConfig,
    device: torch.device,
) -> Tensor:
    """Inputs of the classifier for ``positions`` (in that order), centre view, encoder in eval mode."""
    captured: list[Tensor] = []
    hook = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach().flatten(1).float().cpu()))
    model.eval()
    order = np.argsort(positions, kind="stable")
    out: list[Tensor] = []
    try:
        for batch in _Prefetch(target, _batches(positions[order], cfg.eval_batch_size), cfg.workers):
            image, _ = _to_device(batch, device)
            model(prep(image))
            out.append(captured.pop())
    finally:
        hook.remove()
    feats = torch.cat(out)
    result = torch.empty_like(feats)
    result[torch.from_numpy(order)] = feats  # batches come back sorted by position: undo the sort
    return result


def _linear_probe(
    head: nn.Module,
    feats: dict[str, Tensor],
    labels: dict[str, Tensor],
    proto: TransferProtocol,
    cfg: TransferConfig,
    device: torch.device,
    seed: int,
    bar: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the classifier alone on cached features; select the epoch on validation."""
    from landzoo.training import cost

    if not isinstance(head, nn.Linear):
        raise TransferError(f"linear probing needs a Linear classifier; this model's is a {type(head).__name__}")
    head.train()
    x, y = feats["train"].to(device), labels["train"].to(device)
    xv, yv = feats["val"].to(device), labels["val"]
    epochs = _epochs_for(len(x), cfg)
    steps = math.ceil(len(x) / cfg.batch_size)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / (epochs * steps))))
    )
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, int, dict[str, Tensor] | None, dict[str, float]] = (-math.inf, -1, None, {})
    times = []
    for epoch in range(epochs):
        cost.sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=gen).to(device)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = proto.loss_fn(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        cost.sync(device)
        times.append(time.perf_counter() - t0)
        if bar is not None:
            bar.update(1)
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == epochs:
            with torch.no_grad():
                m = proto.metric()
                m.update(proto.probabilities(head(xv)).cpu(), yv)
                val = m.compute()
            score = float(val[proto.score])
            if score > best[0]:
                best = (score, epoch, {k: v.detach().clone() for k, v in head.state_dict().items()}, _flat(val))
    assert best[2] is not None
    head.load_state_dict(best[2])
    total = float(sum(times))
    return {**best[3], "epoch": best[1]}, {
        "epochs": epochs,
        "steps": epochs * steps,
        "train_time_s": total,
        "epoch_time_s": total / len(times),
        "train_images": epochs * len(x),
        "train_img_s": epochs * len(x) / total if total > 0 else None,
    }


def _model_only_rate(
    model: nn.Module, prep: Prep, target: TargetData, device: torch.device, cfg: TransferConfig
) -> float:
    from landzoo.training import cost

    pos = target.splits["test"][: cfg.eval_batch_size * 2]
    batches = [prep(_to_device(target.batch(b), device)[0]) for b in _batches(pos, cfg.eval_batch_size)]
    model.eval()
    r = cost.time_model_only(model, batches, device, warmup=2, timed=6, batch_size=lambda b: int(b.shape[0]))
    return float(r["img_s"])


# --------------------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------------------
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise TransferError(f"unknown device {name!r} ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TransferError("--device cuda was asked for but no CUDA device is available")
    return dev


def _open_data(
    cfg: TransferConfig, proto: TransferProtocol, bands: tuple[str, ...] | None, out: Path, progress: bool
) -> Path:
    """The store to read: ``--data`` itself, or a store encoded from the raw folder into ``OUT/store``."""
    data = Path(cfg.data)
    if not data.exists():
        raise TransferError(f"--data {data} does not exist")
    if (data / "manifest.json").is_file():
        return data
    from landzoo.store.encode import encode

    store = out / "store"
    reader_kwargs: dict[str, Any] = {}
    if proto.dataset == "sen12ms":
        reader_kwargs = {"multilabel_threshold": proto.threshold, "patch_px": _sen12ms_patch_px(data)}
    encode(
        proto.dataset,
        data,
        store,
        bands=bands,
        classes=proto.class_set,
        reader_kwargs=reader_kwargs,
        workers=max(1, cfg.workers),
        progress=progress,
    )
    return store


def _sen12ms_patch_px(root: Path) -> int:
    """Side of the S2 patches of a raw SEN12MS folder (256 for the real data), read from its first S2 file."""
    from landzoo.datasets.sen12ms import SEASONS

    for season in SEASONS:
        for tif in sorted((root / season).glob("s2_*/*.tif")) if (root / season).is_dir() else []:
            import rasterio

            try:
                with rasterio.open(tif) as src:
                    return int(src.width)
            except rasterio.errors.RasterioError as err:
                raise TransferError(f"cannot read {tif}: {err}") from None
    return 256  # no S2 file: the reader reports the empty folder itself


def _choose_bands(cfg: TransferConfig, source: Source, available: Sequence[str]) -> tuple[str, ...]:
    if cfg.bands:
        try:
            bands = contract.resolve_bands(cfg.bands)
        except contract.ContractError as err:
            raise TransferError(f"--bands: {err}") from None
        missing = [b for b in bands if b not in available]
        if missing:
            raise TransferError(f"the target data has no band(s) {', '.join(missing)}; it has {', '.join(available)}")
    else:
        bands = tuple(b for b in source.contract.bands if b in available)
    if not any(b in source.contract.bands for b in bands):
        raise TransferError(
            f"the target's bands ({','.join(bands or tuple(available))}) have no band in common with the checkpoint's "
            f"({','.join(source.contract.bands)})"
        )
    return bands


def _stats(cfg: TransferConfig, source: Source, target: TargetData) -> tuple[dict[str, tuple[float, float]], str]:
    if cfg.stats == "train":
        stats = band_stats_from(target, target.splits["train"], max_patches=cfg.stats_patches, seed=0)
        n = min(len(target.splits["train"]), cfg.stats_patches)
        return stats, f"computed from {n} training patches of the target (all pixels, float64)"
    if cfg.stats == "checkpoint":
        missing = [b for b in target.bands if b not in source.contract.stats]
        if missing:
            raise TransferError(f"--stats checkpoint: the checkpoint has no statistics for {', '.join(missing)}")
        return {b: tuple(source.contract.stats[b]) for b in target.bands}, f"the checkpoint's ({source.path})"  # type: ignore[misc]
    path = Path(cfg.stats)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        stats = {b: (float(raw[b][0]), float(raw[b][1])) for b in target.bands}
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise TransferError(
            f"--stats {path}: need a JSON object {{band: [mean, std]}} for {','.join(target.bands)} ({err})"
        ) from None
    return stats, f"given ({path})"


def run_transfer(cfg: TransferConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run the sweep described by ``cfg``; write the outputs into ``cfg.out`` and return the summary."""
    from tqdm.auto import tqdm

    from landzoo import checkpoint as ckpt
    from landzoo.training import cost

    out = Path(cfg.out)  # created once the inputs are known good: a typo must not leave an empty folder behind
    proto = get_protocol(cfg.dataset, single_label=cfg.single_label, threshold=cfg.threshold)
    source = resolve_source(cfg.source, cfg.zoo)
    device = _device(cfg.device)
    wanted = contract.resolve_bands(cfg.bands) if cfg.bands else None
    store_path = _open_data(cfg, proto, wanted or tuple(source.contract.bands), out, progress)
    probe = open_target(store_path, proto, bands=None)
    bands = _choose_bands(cfg, source, probe.bands)
    try:
        target = open_target(store_path, proto, bands=bands)
    except LandzooError as err:
        raise TransferError(f"cannot read bands {','.join(bands)} from {store_path}: {err}") from None
    stats, stats_note = _stats(cfg, source, target)
    imagenet = load_weight_file(cfg.imagenet_weights) if cfg.imagenet_weights else None
    out.mkdir(parents=True, exist_ok=True)

    probe_model = _build(source, cfg, bands, proto, 0, target, stats)
    input_size = int(probe_model.input_size)
    resolution = Resolution(cfg.resolution, input_size, target.grid_px)
    try:
        prep = Prep(bands, resolution, stats, target.native_groups).to(device)
    except contract.ContractError as err:
        raise TransferError(f"--bands: {err}") from None
    example = torch.zeros(1, len(bands), input_size, input_size)
    head_name, _ = _head_module(probe_model, len(proto.classes), example)
    params_total = cost.count_parameters(probe_model)
    macs = _safe_macs(probe_model, example)
    env = cost.environment_info(device)
    key = cfg.run_key(
        source.sha256,
        data=file_sha256(Path(store_path) / "index.parquet"),
        bands=bands,
        imagenet_sha=file_sha256(cfg.imagenet_weights) if cfg.imagenet_weights else None,
    )

    train_all = target.splits["train"]
    train_labels = target.labels[train_all]
    subsets = {
        (f, s): np.asarray(train_all[sample_fraction(train_labels, f, s, nested=cfg.nested)])
        for f in cfg.fractions
        for s in cfg.seeds
    }
    specs = [RunSpec(i, f, s) for i in cfg.inits for s in cfg.seeds for f in cfg.fractions]
    adaptation: dict[str, Any] = {}
    feature_cache: dict[tuple[str, int], dict[str, Tensor]] = {}
    feature_time: dict[str, float] = {}
    results: list[dict[str, Any]] = []
    total_epochs = sum(_epochs_for(len(subsets[(r.fraction, r.seed)]), cfg) for r in specs)
    bar = tqdm(total=total_epochs, desc="transfer", unit="epoch", disable=not progress, dynamic_ncols=True)
    try:
        for spec in specs:
            run_dir = out / "runs" / spec.init / f"f{spec.fraction:g}_s{spec.seed}"
            done = _reuse(run_dir, key, cfg.rerun)
            train_pos = subsets[(spec.fraction, spec.seed)]
            if done is not None:
                results.append(done)
                adaptation.setdefault(spec.init, done.get("initialisation", {}).get("adaptation"))
                bar.update(_epochs_for(len(train_pos), cfg))
                continue
            bar.set_description(f"{spec.init} f={spec.fraction:g} seed={spec.seed}")
            build_seed = spec.encoder_seed() if cfg.mode == "linear" else spec.torch_seed()
            model = _build(source, cfg, bands, proto, build_seed, target, stats).to(device)
            init_info = _initialise(model.cpu(), spec.init, source, imagenet, cfg, bands, proto, example)
            model.to(device)
            rep = init_info.pop("_report", None)
            if rep is not None:
                adaptation[spec.init] = rep.to_dict()
            if cfg.mode == "finetune":
                val, train_cost = _finetune(model, prep, target, train_pos, proto, cfg, device, spec.torch_seed(), bar)
                trainable = cost.count_parameters(model)
                extra: dict[str, Any] = {}
            else:
                head_name, head = _head_module(model, len(proto.classes), example.to(device))
                fkey = (spec.init, spec.seed if spec.init == "random" else -1)
                if fkey not in feature_cache:
                    t0 = time.perf_counter()
                    feature_cache.clear()  # one initialisation's features at a time
                    feature_cache[fkey] = {
                        s: _features(model, head, prep, target, target.splits[s], cfg, device) for s in ("train", "val")
                    }
                    feature_time[spec.init] = time.perf_counter() - t0
                index = {int(p): i for i, p in enumerate(train_all)}
                rows = torch.tensor([index[int(p)] for p in train_pos])
                feats = {"train": feature_cache[fkey]["train"][rows], "val": feature_cache[fkey]["val"]}
                labels = {
                    "train": torch.from_numpy(target.labels[train_pos]),
                    "val": torch.from_numpy(target.labels[target.splits["val"]]),
                }
                for p in model.parameters():
                    p.requires_grad_(False)
                for p in head.parameters():
                    p.requires_grad_(True)
                val, train_cost = _linear_probe(head, feats, labels, proto, cfg, device, spec.torch_seed(), bar)
                trainable = cost.count_parameters(model)
                extra = {"feature_time_s": feature_time.get(spec.init)}
            model.eval()
            test, e2e = evaluate(
                model, prep, target, target.splits["test"], proto, device, cfg.eval_batch_size, cfg.workers
            )
            per_class = test.pop("per_class", {})
            result = {
                "init": spec.init,
                "fraction": spec.fraction,
                "seed": spec.seed,
                "n_train": len(train_pos),
                "classes_in_train": int((target.labels[train_pos].sum(0) > 0).sum()),
                "score_name": proto.score,
                "score": float(test[proto.score]),
                "test": _flat(test),
                "test_per_class": per_class,
                "val": val,
                "cost": {
                    "params": params_total,
                    "trainable_params": trainable,
                    "macs": macs,
                    "input_size": input_size,
                    **train_cost,
                    **extra,
                    "infer_img_s_model": _model_only_rate(model, prep, target, device, cfg),
                    "infer_img_s_e2e": e2e,
                    "batch_size": cfg.batch_size,
                },
                "initialisation": init_info,
                "key": key,
            }
            run_dir.mkdir(parents=True, exist_ok=True)
            if cfg.save_checkpoints:
                dc = ckpt.DataContract(
                    bands, proto.class_set, proto.classes, stats, input_size, "bicubic", target.native_groups
                )
                ckpt.save_checkpoint(
                    run_dir / "model.safetensors",
                    {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                    dc,
                    arch=source.arch,
                    arch_kwargs={**source.arch_kwargs, **cfg.arch_kwargs},
                    config={
                        "task": proto.task,
                        "transfer": _jsonable(asdict(cfg)),
                        "run": asdict(spec),
                        "resolution": resolution.describe(),
                    },
                    metrics={f"test_{k}": v for k, v in result["test"].items()},
                )
                result["checkpoint"] = str(run_dir / "model.safetensors")
            (run_dir / "result.json").write_text(json.dumps(_jsonable(result), indent=2) + "\n", encoding="utf-8")
            results.append(result)
    finally:
        bar.close()

    from landzoo.transfer.report import aggregate, write_outputs

    summary = {
        "config": _jsonable(asdict(cfg)),
        "protocol": proto.to_dict(),
        "source": source.describe(),
        "target": {**target.summary(), "stats": {b: list(v) for b, v in stats.items()}, "stats_source": stats_note},
        "bands": list(bands),
        "resolution": {
            "mode": resolution.mode,
            "model_px": input_size,
            "grid_px": target.grid_px,
            "describe": resolution.describe(),
        },
        "head": head_name,
        "adaptation": adaptation,
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
    write_outputs(out, summary)
    return summary


def _safe_macs(model: nn.Module, example: Tensor) -> int | None:
    from landzoo.training import cost

    try:
        return cost.count_macs(model, example)
    except Exception:  # pragma: no cover - a model FlopCounterMode cannot trace
        return None


def _reuse(run_dir: Path, key: dict[str, Any], rerun: bool) -> dict[str, Any] | None:
    path = run_dir / "result.json"
    if rerun or not path.is_file():
        return None
    try:
        done = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return done if done.get("key") == _jsonable(key) else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
