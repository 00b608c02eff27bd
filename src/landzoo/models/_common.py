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

import math
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


def build_timm(
    cls: type[nn.Module],
    name: str,
    pretrained: bool,
    pretrained_cfg: Any = None,
    pretrained_cfg_overlay: Any = None,
    cache_dir: Any = None,
    **opts: Any,
) -> Any:
    """``timm.models.build_model_with_cfg`` for a landzoo architecture; ``pretrained=True`` is refused (none exist).

    An ``img_size`` given as timm's ``(H, W)`` tuple is reduced to the square side these models take.
    ``cache_dir`` (timm's weight-download folder) is accepted and unused: there is nothing to download.
    """
    from timm.models import build_model_with_cfg

    if pretrained:
        raise ModelError(f"{name}: landzoo ships no pretrained weights (pretrained=True is not available)")
    if isinstance(opts.get("img_size"), tuple | list):
        opts["img_size"] = int(opts["img_size"][-1])
    return build_model_with_cfg(
        cls,
        name,
        pretrained=False,
        pretrained_cfg=pretrained_cfg,
        pretrained_cfg_overlay=pretrained_cfg_overlay,
        **opts,
    )
