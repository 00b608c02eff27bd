"""Band-aware adaptation of a pretrained model's first layer, by band NAME, from the checkpoint's data contract.

The common ways to reuse a pretrained stem on other bands lose accuracy: timm tiles the RGB kernels
cyclically and scales them by ``3/N`` (so "B05" may get the blue kernel), torchgeo re-initialises the layer.
Here every input channel of the first layer is matched by band name:

* **kept**: a band in both the checkpoint and the target keeps its kernel bit-exactly, moved to the
  target's channel position (the order of the target's band selection);
* **dropped**: a checkpoint band the target lacks is removed with its kernel;
* **added**: a target band the checkpoint lacks gets a kernel by the chosen rule (:data:`RULES`):

  ``nearest`` (default)
      ``alpha * W[s]``, where ``s`` is the checkpoint band whose central wavelength
      (:data:`landzoo.contract.BANDS` ``wavelength_nm``) is nearest (ties: the shorter wavelength; a
      Sentinel-1 band takes the other polarisation; no candidate: zero). One ``alpha`` for the layer keeps
      its *expected activation* unchanged: with normalised (zero-mean, unit-variance, independent) inputs the
      variance of an output is the sum of the squared kernel weights over input channels, so
      ``alpha = min(1, sqrt(E_dropped / E_sources))`` where ``E_dropped`` is the squared norm of the dropped
      kernels and ``E_sources`` that of the copied kernels (one term per added band). A band *swap* (B8A
      dropped, B09 added) is then an exact substitution (``alpha = 1``); a target that only *adds* bands
      gets ``alpha = 0``: the new kernels start at zero, the pretrained features are unchanged at the start,
      and fine-tuning learns the new kernels (a linear probe cannot use them).
  ``copy``
      ``W[s]`` with ``alpha = 1`` (informative, but raises the layer's activation variance).
  ``zero``
      zeros.

The layer that consumes the input is found generically (:func:`find_input_layer`): the first convolution or
linear layer, in forward order, whose weight takes ``len(bands)`` input channels (ResNet/WRN stems, the
patch projection of ViT and MLP-Mixer). A model can name it itself with an ``input_layer`` attribute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import torch
from torch import Tensor, nn

from landzoo import contract
from landzoo.errors import LandzooError

__all__ = [
    "RULES",
    "AdaptError",
    "AdaptationReport",
    "BandRule",
    "LoadReport",
    "adapt_input_weight",
    "adapt_state_dict",
    "find_head",
    "find_input_layer",
    "input_weight_key",
    "nearest_band",
    "transfer_weights",
]

#: Rules for a band the checkpoint lacks; see the module docstring.
RULES: Final = ("nearest", "copy", "zero")


class AdaptError(LandzooError):
    """The first layer cannot be adapted: no band names, no band in common, no layer found, bad rule."""


@dataclass(frozen=True)
class BandRule:
    """What happened to one band: ``kept``, ``dropped``, ``nearest``/``copy`` (from ``source``) or ``zero``."""

    band: str
    rule: str
    source: str | None = None
    scale: float = 1.0
    target_index: int | None = None  # channel in the adapted layer (None for a dropped band)
    source_index: int | None = None  # channel in the checkpoint's layer (None for an added band)
    note: str = ""

    def describe(self) -> str:
        if self.rule == "kept":
            return f"{self.band}: kept (checkpoint channel {self.source_index} -> {self.target_index})"
        if self.rule == "dropped":
            return f"{self.band}: dropped (checkpoint channel {self.source_index})"
        if self.rule == "zero":
            return f"{self.band}: zero kernel{f' ({self.note})' if self.note else ''}"
        return f"{self.band}: {self.rule} from {self.source} x {self.scale:.4g}{f' ({self.note})' if self.note else ''}"


@dataclass
class AdaptationReport:
    """The record of one first-layer adaptation, stored with every transfer result."""

    layer: str
    source_bands: tuple[str, ...]
    target_bands: tuple[str, ...]
    rule: str
    alpha: float
    bands: list[BandRule] = field(default_factory=list)

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(b.band for b in self.bands if b.rule == "kept")

    @property
    def dropped(self) -> tuple[str, ...]:
        return tuple(b.band for b in self.bands if b.rule == "dropped")

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(b.band for b in self.bands if b.rule not in ("kept", "dropped"))

    def rule_of(self, band: str) -> BandRule:
        for b in self.bands:
            if b.band == band:
                return b
        raise KeyError(band)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "source_bands": list(self.source_bands),
            "target_bands": list(self.target_bands),
            "rule": self.rule,
            "alpha": self.alpha,
            "kept": list(self.kept),
            "dropped": list(self.dropped),
            "added": list(self.added),
            "bands": [asdict(b) for b in self.bands],
        }

    def to_markdown(self) -> str:
        lines = [
            f"First layer `{self.layer}`: {len(self.source_bands)} checkpoint bands -> {len(self.target_bands)} "
            f"target bands (rule `{self.rule}`, alpha {self.alpha:.4g}).",
            "",
            "| band | rule | source | scale |",
            "|---|---|---|---|",
        ]
        for b in self.bands:
            src = b.source or ""
            scale = "" if b.rule in ("dropped",) else f"{b.scale:.4g}"
            lines.append(f"| {b.band} | {b.rule}{f' ({b.note})' if b.note else ''} | {src} | {scale} |")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Finding the layer that consumes the input
# --------------------------------------------------------------------------------------------------
_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _in_channels(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return module.in_channels if module.groups == 1 else None
    return None


def find_input_layer(model: nn.Module, in_channels: int, example: Tensor | None = None) -> str:
    """Dotted name of the module that consumes the ``in_channels`` input bands of ``model``.

    Order of preference: the model's own ``input_layer`` attribute (a dotted name); with an ``example``
    input, the first convolution/linear layer *executed* whose weight takes ``in_channels`` channels (so a
    layer registered early but run late cannot be picked); else the first such layer in registration order.
    """
    named = dict(model.named_modules())
    declared = getattr(model, "input_layer", None)
    if isinstance(declared, str):
        if declared not in named or _in_channels(named[declared]) != in_channels:
            raise AdaptError(f"model declares input layer {declared!r}, which is not a layer of {in_channels} inputs")
        return declared
    if example is not None:
        order: list[str] = []
        names = {id(m): n for n, m in named.items()}
        hooks = [
            m.register_forward_pre_hook(lambda mod, _args: order.append(names[id(mod)]))
            for m in named.values()
            if isinstance(m, _LAYER_TYPES)
        ]
        was_training = model.training
        try:
            model.eval()
            with torch.no_grad():
                model(example)
        except Exception:  # a model that cannot run the example: fall back to registration order
            order = []
        finally:
            model.train(was_training)
            for h in hooks:
                h.remove()
        for name in order:
            if _in_channels(named[name]) == in_channels:
                return name
    for name, module in named.items():
        if _in_channels(module) == in_channels:
            return name
    raise AdaptError(
        f"found no convolution or linear layer taking {in_channels} input channels in {type(model).__name__}; "
        "give the model an `input_layer` attribute naming its first layer"
    )


def input_weight_key(model: nn.Module, in_channels: int, example: Tensor | None = None) -> str:
    """State-dict key of the input layer's weight (``conv1.weight``, ``patch_embed.proj.weight``, ...)."""
    name = find_input_layer(model, in_channels, example)
    return f"{name}.weight" if name else "weight"


# --------------------------------------------------------------------------------------------------
# The adaptation itself
# --------------------------------------------------------------------------------------------------
def nearest_band(band: str, candidates: Sequence[str]) -> str | None:
    """The candidate spectrally nearest to ``band`` (ties: shorter wavelength); S1 matches S1 only."""
    b = contract.band(band)
    if b.wavelength_nm is None:  # Sentinel-1: the other polarisation, if any
        same = [c for c in candidates if contract.band(c).sensor == b.sensor and c != band]
        return same[0] if same else None
    scored = [
        (abs(contract.band(c).wavelength_nm - b.wavelength_nm), contract.band(c).wavelength_nm, c)  # type: ignore[operator]
        for c in candidates
        if contract.band(c).wavelength_nm is not None
    ]
    return min(scored)[2] if scored else None


def _check_bands(source_bands: Sequence[str], target_bands: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not source_bands:
        raise AdaptError("the checkpoint's data contract names no bands; cannot adapt its first layer by name")
    try:
        src = contract.resolve_bands(tuple(source_bands))
        tgt = contract.resolve_bands(tuple(target_bands))
    except contract.ContractError as err:
        raise AdaptError(f"band names: {err}") from None
    common = [b for b in tgt if b in src]
    if not common:
        raise AdaptError(
            f"the target's bands ({','.join(tgt)}) have no band in common with the checkpoint's ({','.join(src)})"
        )
    return src, tgt


def adapt_input_weight(
    weight: Tensor,
    source_bands: Sequence[str],
    target_bands: Sequence[str],
    *,
    rule: str = "nearest",
    layer: str = "",
) -> tuple[Tensor, AdaptationReport]:
    """Re-index the input-channel dimension (dim 1) of a first-layer weight from checkpoint to target bands.

    ``weight`` is ``[out, len(source_bands), ...]`` (any convolution or a channels-last linear layer).
    Returns the new ``[out, len(target_bands), ...]`` weight and the per-band record.
    """
    if rule not in RULES:
        raise AdaptError(f"unknown new-band rule {rule!r}; choose from {', '.join(RULES)}")
    src, tgt = _check_bands(source_bands, target_bands)
    if weight.ndim < 2 or weight.shape[1] != len(src):
        raise AdaptError(
            f"first-layer weight {layer or ''} has shape {tuple(weight.shape)}: expected {len(src)} input channels "
            f"for the checkpoint's bands {','.join(src)}"
        )
    out = torch.zeros((weight.shape[0], len(tgt), *weight.shape[2:]), dtype=weight.dtype, device=weight.device)
    records: list[BandRule] = []
    added: list[tuple[int, str, str | None]] = []
    for j, b in enumerate(tgt):
        if b in src:
            i = src.index(b)
            out[:, j] = weight[:, i]
            records.append(BandRule(b, "kept", b, 1.0, j, i))
        else:
            added.append((j, b, nearest_band(b, src) if rule != "zero" else None))
    dropped = [(i, b) for i, b in enumerate(src) if b not in tgt]

    w64 = weight.detach().to(torch.float64)
    e_dropped = float(sum(w64[:, i].pow(2).sum() for i, _ in dropped))
    e_sources = float(sum(w64[:, src.index(s)].pow(2).sum() for _, _, s in added if s is not None))
    if rule == "copy":
        alpha = 1.0
    elif rule == "nearest":
        alpha = min(1.0, math.sqrt(e_dropped / e_sources)) if e_sources > 0 else 0.0
    else:
        alpha = 0.0

    for j, b, s in added:
        if s is None:
            why = "rule zero" if rule == "zero" else "no checkpoint band of the same sensor"
            records.append(BandRule(b, "zero", None, 0.0, j, None, why))
            continue
        if alpha == 0.0:
            note = "nothing dropped: alpha 0 keeps the layer's activation" if rule == "nearest" else ""
            records.append(BandRule(b, "zero", s, 0.0, j, None, note))
            continue
        out[:, j] = weight[:, src.index(s)] * alpha
        records.append(BandRule(b, rule, s, alpha, j, None))
    for i, b in dropped:
        records.append(BandRule(b, "dropped", None, 0.0, None, i))
    records.sort(
        key=lambda r: (r.target_index is None, r.target_index if r.target_index is not None else r.source_index)
    )
    report = AdaptationReport(layer, src, tgt, rule, alpha, records)
    return out, report


def adapt_state_dict(
    state: Mapping[str, Tensor],
    key: str,
    source_bands: Sequence[str],
    target_bands: Sequence[str],
    *,
    rule: str = "nearest",
) -> tuple[dict[str, Tensor], AdaptationReport]:
    """A copy of ``state`` whose entry ``key`` (the first layer's weight) is adapted to ``target_bands``."""
    if key not in state:
        raise AdaptError(f"the checkpoint has no weight {key!r} (the first layer of the target model)")
    new, report = adapt_input_weight(
        state[key], source_bands, target_bands, rule=rule, layer=key.removesuffix(".weight")
    )
    out = dict(state)
    out[key] = new
    return out, report


# --------------------------------------------------------------------------------------------------
# Whole models: the head, and loading adapted weights into a model built for the target
# --------------------------------------------------------------------------------------------------
def _out_features(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return module.out_channels
    return None


def _executed(model: nn.Module, example: Tensor) -> list[str]:
    named = dict(model.named_modules())
    names = {id(m): n for n, m in named.items()}
    order: list[str] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, _args: order.append(names[id(mod)]))
        for m in named.values()
        if isinstance(m, _LAYER_TYPES)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return order


def find_head(model: nn.Module, num_classes: int, example: Tensor) -> str:
    """Dotted name of the classifier: the last layer executed whose output has ``num_classes`` units.

    A model can name it with a ``head_layer`` attribute. The head is never transferred: its classes are
    the pretraining ones (and even with as many classes, they mean something else).
    """
    named = dict(model.named_modules())
    declared = getattr(model, "head_layer", None)
    if isinstance(declared, str) and declared in named:
        return declared
    for name in reversed(_executed(model, example)):
        if _out_features(named[name]) == num_classes:
            return name
    raise AdaptError(f"found no layer with {num_classes} outputs (the classifier) in {type(model).__name__}")


@dataclass
class LoadReport:
    """Which tensors of a model came from the checkpoint, and which were left as initialised."""

    loaded: list[str]
    head: list[str]  # the target's classifier tensors, left as initialised
    missing: list[str]  # target tensors the checkpoint lacks (left as initialised)
    unused: list[str]  # checkpoint tensors the target does not have (pretraining head, ...)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": len(self.loaded),
            "head": self.head,
            "missing": self.missing,
            "unused": self.unused,
        }


def transfer_weights(
    model: nn.Module,
    state: Mapping[str, Tensor],
    source_bands: Sequence[str],
    target_bands: Sequence[str],
    num_classes: int,
    *,
    rule: str = "nearest",
    example: Tensor | None = None,
    optional: Sequence[str] = ("num_batches_tracked",),
) -> tuple[AdaptationReport, LoadReport]:
    """Load a pretrained ``state`` into ``model`` (built for the target bands and classes), adapting its first layer.

    The first layer is matched by band name (:func:`adapt_input_weight`); the classifier (:func:`find_head`)
    keeps its fresh initialisation; every other tensor must have the same name and shape in both, else the
    checkpoint is for another architecture. Only tensors whose names end in one of ``optional`` (BatchNorm's
    step counters, absent from some weight files) may be missing.
    """
    tgt = tuple(target_bands)
    if example is None:
        size = getattr(model, "input_size", None) or 64
        size = size[-1] if isinstance(size, tuple | list) else int(size)
        example = torch.zeros(1, len(tgt), size, size)
    key = input_weight_key(model, len(tgt), example)
    adapted, report = adapt_state_dict(state, key, source_bands, tgt, rule=rule)
    head = find_head(model, num_classes, example)
    own = model.state_dict()
    head_keys = [k for k in own if k.startswith(f"{head}.")]
    new: dict[str, Tensor] = {}
    missing, wrong = [], []
    for k, v in own.items():
        if k in head_keys:
            continue
        if k not in adapted:
            missing.append(k)
            continue
        if tuple(adapted[k].shape) != tuple(v.shape):
            wrong.append(f"{k} {tuple(adapted[k].shape)} vs {tuple(v.shape)}")
            continue
        new[k] = adapted[k].to(dtype=v.dtype)
    if wrong:
        raise AdaptError(
            f"the checkpoint does not fit this architecture: {len(wrong)} tensor(s) differ in shape, e.g. {wrong[0]}"
        )
    required = [k for k in missing if not k.endswith(tuple(optional))]
    if required:
        raise AdaptError(
            f"the checkpoint lacks {len(required)} of the model's {len(own) - len(head_keys)} tensors "
            f"(e.g. {required[0]}): it is for another architecture"
        )
    model.load_state_dict(new, strict=False)
    unused = sorted(k for k in adapted if k not in own or k in head_keys)
    return report, LoadReport(sorted(new), head_keys, missing, unused)
