"""Small building blocks shared by the paper's own architectures: convolutions, BatchNorm, Keras-style init.

The reference code is Keras; these helpers make the PyTorch ports say, in one place, how each Keras
default is translated:

* ``padding="same"`` with a stride: Keras pads asymmetrically (extra row/column at the bottom/right).
  ``tf_padding=True`` reproduces that (timm's ``Conv2dSame``), which matters only for loading the
  reference checkpoints; the default is PyTorch's symmetric padding (same output sizes, same parameters).
* BatchNorm momentum: Keras' ``momentum`` weights the *old* running value, PyTorch's the *new* batch value.
  The reference wrote Keras ``momentum=0.1`` (a PyTorch value pasted into Keras), so its running
  statistics keep only 10 % of history. ``bn_momentum`` here is in PyTorch's convention: 0.1 (default)
  is what the reference meant; 0.9 reproduces what it did.
* Initialisation: ``init="paper"`` mirrors the reference (``he_normal`` convolutions, Glorot-uniform
  dense and 1-D conv kernels unless a layer is tagged with :func:`keras_init`, zero biases, BatchNorm gamma ~ U(-0.05, 0.05) from Keras' ``"uniform"``);
  ``init="torch"`` is the usual PyTorch recipe (Kaiming-normal fan-out convolutions, BN gamma 1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from timm.layers import create_conv2d
from torch import nn

from landzoo.models._catalogue import ModelError

__all__ = ["INITS", "bn", "check_choice", "conv", "init_weights", "keras_init"]

#: Initialisation schemes :func:`init_weights` knows.
INITS = ("paper", "torch")

# Keras' he_normal / glorot_normal draw from a normal truncated at 2 sigma, with the sigma corrected for
# the truncation (keras.initializers.VarianceScaling, distribution="truncated_normal").
_TRUNC_CORRECTION = 0.87962566103423978


def check_choice(what: str, value: object, choices: tuple[str, ...]) -> None:
    """Refuse an option value outside ``choices`` with a message that lists them."""
    if value not in choices:
        raise ModelError(f"{what} must be one of {', '.join(map(repr, choices))}, not {value!r}")


def conv(
    in_chs: int,
    out_chs: int,
    kernel_size: int,
    stride: int = 1,
    *,
    bias: bool = False,
    depthwise: bool = False,
    tf_padding: bool = False,
) -> nn.Module:
    """A 2-D convolution with Keras ``padding="same"`` output sizes (TF's asymmetric padding if ``tf_padding``)."""
    return create_conv2d(
        in_chs,
        out_chs,
        kernel_size,
        stride=stride,
        padding="same" if tf_padding else "",
        bias=bias,
        depthwise=depthwise,
    )


def bn(channels: int, momentum: float = 0.1, eps: float = 1e-5) -> nn.BatchNorm2d:
    """BatchNorm2d with the reference's epsilon (1e-5) and a PyTorch-convention momentum."""
    return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)


def _fan_in(w: torch.Tensor) -> int:
    return int(w.shape[1] * math.prod(w.shape[2:])) if w.ndim > 1 else int(w.shape[0])


def _fan_out(w: torch.Tensor) -> int:
    return int(w.shape[0] * math.prod(w.shape[2:])) if w.ndim > 1 else int(w.shape[0])


def _trunc_normal(w: torch.Tensor, std: float) -> None:
    # N(0, std) truncated at +-2 std: redraw the ~5 % outside until none is left (torch's trunc_normal_
    # is several times slower on CPU, which made building the larger models slow).
    w.normal_(0.0, std)
    while not w.is_meta:
        bad = w.abs() > 2 * std
        n = int(bad.sum())
        if not n:
            return
        w[bad] = torch.empty(n, dtype=w.dtype, device=w.device).normal_(0.0, std)


def _he_normal_keras(w: torch.Tensor) -> None:
    _trunc_normal(w, math.sqrt(2.0 / _fan_in(w)) / _TRUNC_CORRECTION)


def _glorot_uniform(w: torch.Tensor) -> None:
    limit = math.sqrt(6.0 / (_fan_in(w) + _fan_out(w)))
    nn.init.uniform_(w, -limit, limit)


def _glorot_uniform_dense(w: torch.Tensor) -> None:
    # A conv that stands for a Keras Dense on flattened patches: fan_out is the output width only.
    limit = math.sqrt(6.0 / (_fan_in(w) + int(w.shape[0])))
    nn.init.uniform_(w, -limit, limit)


_KERAS_INITS = {
    "he_normal": _he_normal_keras,
    "glorot_uniform": _glorot_uniform,
    "glorot_uniform_dense": _glorot_uniform_dense,
}


def keras_init(module: nn.Module, name: str) -> nn.Module:
    """Tag a layer with the Keras kernel initialiser the reference gave it (used by ``init="paper"``)."""
    module.keras_init = name  # type: ignore[assignment]
    return module


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str = "paper") -> None:
    """Initialise every conv/linear/norm layer of ``model`` with ``scheme`` (see the module docstring).

    Runs single-threaded: many small in-place ops gain nothing from intra-op threads, and on a busy
    machine thread hand-offs made building the larger models take seconds instead of a fraction of one.
    """
    check_choice("init", scheme, INITS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _init(model, scheme)
    finally:
        torch.set_num_threads(threads)


def _init(model: nn.Module, scheme: str) -> None:
    for m in model.modules():
        tagged = getattr(m, "keras_init", None)
        if scheme == "paper" and tagged is not None and isinstance(m, nn.Conv2d | nn.Conv1d | nn.Linear):
            _KERAS_INITS[tagged](m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            if scheme == "paper":
                _he_normal_keras(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear | nn.Conv1d):
            if scheme == "paper":
                _glorot_uniform(m.weight)
            else:
                _trunc_normal(m.weight, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            if scheme == "paper":
                nn.init.uniform_(m.weight, -0.05, 0.05)
            else:
                nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---- timm registration ------------------------------------------------------------------------------
def timm_cfg(size: int, first_conv: str, classifier: str, *, fixed_input_size: bool = False) -> dict[str, Any]:
    """timm's pretrained-config entry for a landzoo architecture: 10 bands, 19 classes, no weights behind it.

    Inputs are normalised by the model's input stem (the data contract's statistics), so timm's mean/std
    are the identity.
    """
    cfg: dict[str, Any] = {
        "num_classes": 19,
        "input_size": (10, size, size),
        "pool_size": None,
        "crop_pct": 1.0,
        "mean": (0.0,) * 10,
        "std": (1.0,) * 10,
        "first_conv": first_conv,
        "classifier": classifier,
        "license": "mit",
        "notes": ("landzoo port of Papoutsis et al. 2023; no pretrained weights",),
    }
    if fixed_input_size:
        cfg["fixed_input_size"] = True
    return cfg


#: safetensors header entry of an exported weight file (``landzoo export``): the keyword arguments that build its
#: network through timm (``in_chans``, ``num_classes`` and the architecture's options), as JSON.
HEADER_TIMM_ARGS = "landzoo_timm_args"


def _weights_file(cfg: dict[str, Any]) -> Path | None:
    """The weight file a resolved timm config points at (``file=``, or ``local-dir:`` folder's model file)."""
    loc = cfg.get("file")
    if not loc:
        return None
    path = Path(loc)
    if path.is_dir():
        found = sorted(path.glob("*.safetensors"))
        return path / "model.safetensors" if (path / "model.safetensors").is_file() else (found[0] if found else None)
    return path


def _exported_args(path: Path | None) -> dict[str, Any]:
    """The timm build arguments a landzoo-exported safetensors file records in its header ({} for other files)."""
    if path is None or path.suffix != ".safetensors" or not path.is_file():
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        return dict(json.loads(header[HEADER_TIMM_ARGS])) if HEADER_TIMM_ARGS in header else {}
    except Exception as err:  # a damaged file: say which
        raise ModelError(f"cannot read the weights {path}: {err}") from None


def _resolve_cfg(name: str, pretrained_cfg: Any, pretrained_cfg_overlay: Any) -> dict[str, Any]:
    from timm.models import resolve_pretrained_cfg

    cfg = resolve_pretrained_cfg(name, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=pretrained_cfg_overlay)
    return cfg.to_dict()


def exported_args(name: str, pretrained: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The timm build arguments recorded by the weight file that ``pretrained=True`` will load ({} otherwise).

    A registered entry point merges them under its own ``kwargs`` (explicit arguments win), so that
    ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=EXPORTED))`` rebuilds the network
    the file was exported from (band count, class count, architecture options) without repeating them.
    """
    if not pretrained:
        return {}
    cfg = _resolve_cfg(name, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
    return _exported_args(_weights_file(cfg))


def pretrained_cfg_to_load(name: str, pretrained_cfg: Any, pretrained_cfg_overlay: Any) -> dict[str, Any]:
    """The timm config that loads the weights named by ``pretrained_cfg``/``pretrained_cfg_overlay``, for ``name``.

    landzoo ships no weights, so ``pretrained=True`` needs weights the user gives: ``pretrained_cfg_overlay=
    dict(file=...)`` or ``timm.create_model("local-dir:FOLDER", pretrained=True)`` on a ``landzoo export`` folder.
    For a landzoo-exported file the config's ``num_classes`` and input channels are the file's (unless the
    overlay sets them), so timm keeps the classifier and the first convolution as trained, and adapts them with
    its usual rules only where the caller asks for other ones.
    """
    cfg = _resolve_cfg(name, pretrained_cfg, pretrained_cfg_overlay)
    if cfg.get("state_dict") is None and not cfg.get("file"):
        raise ModelError(
            f"{name}: landzoo ships no pretrained weights; give the weights of a `landzoo export` folder with "
            f'pretrained_cfg_overlay=dict(file="FOLDER/model.safetensors") or create "local-dir:FOLDER"'
        )
    exported = _exported_args(_weights_file(cfg))
    overlay = dict(pretrained_cfg_overlay or {})
    if "in_chans" in exported and "input_size" not in overlay:
        cfg["input_size"] = (int(exported["in_chans"]), *cfg["input_size"][1:])
    if "num_classes" in exported and "num_classes" not in overlay:
        cfg["num_classes"] = int(exported["num_classes"])
    return cfg


def load_pretrained_weights(model: nn.Module, cfg: dict[str, Any]) -> None:
    """timm's own loader (``timm.models.load_pretrained``) with ``cfg``, strict: a missing key is an error."""
    from timm.models import load_pretrained

    model.pretrained_cfg = model.default_cfg = cfg  # type: ignore[assignment]
    load_pretrained(
        model,
        pretrained_cfg=cfg,
        num_classes=getattr(model, "num_classes", cfg.get("num_classes", 1000)),
        in_chans=getattr(model, "in_chans", cfg["input_size"][0]),
        strict=True,
    )


def build_timm(
    cls: type[nn.Module],
    name: str,
    pretrained: bool,
    pretrained_cfg: Any = None,
    pretrained_cfg_overlay: Any = None,
    cache_dir: Any = None,
    **opts: Any,
) -> Any:
    """``timm.models.build_model_with_cfg`` for a landzoo architecture.

    ``pretrained=True`` loads weights the caller names (:func:`pretrained_cfg_to_load`); nothing is ever
    downloaded. An ``img_size`` given as timm's ``(H, W)`` tuple is reduced to the square side these models take.
    ``cache_dir`` (timm's weight-download folder) is accepted and unused: there is nothing to download.
    """
    from timm.models import build_model_with_cfg

    cfg = pretrained_cfg_to_load(name, pretrained_cfg, pretrained_cfg_overlay) if pretrained else None
    if isinstance(opts.get("img_size"), tuple | list):
        opts["img_size"] = int(opts["img_size"][-1])
    model = build_model_with_cfg(
        cls,
        name,
        pretrained=False,
        pretrained_cfg=cfg if cfg is not None else pretrained_cfg,
        pretrained_cfg_overlay=None if cfg is not None else pretrained_cfg_overlay,
        **opts,
    )
    if cfg is not None:
        load_pretrained_weights(model, cfg)
    return model
