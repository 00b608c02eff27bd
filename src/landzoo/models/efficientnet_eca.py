"""The paper's custom EfficientNet (reference ``models.EfficientNet``): B0 layout, attention after the depthwise conv.

It is *not* timm's EfficientNet: the reference wrote its own MBConv, which differs from the standard one
in ways that change the parameter count, and these are kept because they define the released models:

* every MBConv has its 1x1 expansion conv, even with expansion t = 1 (standard EfficientNet skips it);
* every conv and the depthwise conv carry a bias (Keras default), although BatchNorm follows each;
* the depthwise conv is followed by BN -> ReLU6 -> attention -> swish (standard: BN -> swish -> SE);
* the residual "drop connect" is plain element-wise dropout at rate ``dropout`` before the addition
  (standard: per-sample stochastic depth); the head has dropout at the same rate.

Default attention is ECA (with the reference's Conv1D bias). ``ghost=True`` puts the reference's Ghost
module in place of the 1x1 expansion and projection convs (not the stem/head, as in the reference).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from landzoo import scaling
from landzoo.models._catalogue import ModelError, ModelInfo, register_info
from landzoo.models._common import INITS, bn, build_timm, check_choice, conv, exported_args, init_weights, timm_cfg
from landzoo.models.attention import ATTENTIONS, GhostConv, make_attention

__all__ = ["EfficientNetECA", "MBConv"]


class _ConvBN(nn.Module):
    """conv (with bias) or Ghost module -> BN -> optional swish: the reference's ``conv_bn``/``conv_bn_0``."""

    def __init__(
        self, in_chs: int, out_chs: int, k: int, stride: int, act: bool, opts: dict[str, Any], ghost: bool
    ) -> None:
        super().__init__()
        if ghost:
            self.conv: nn.Module = GhostConv(
                in_chs,
                out_chs,
                k,
                stride,
                fixed=opts["ghost_fix"],
                bn_momentum=opts["bn_momentum"],
                tf_padding=opts["tf_padding"],
            )
            out_chs = self.conv.out_chs
        else:
            self.conv = conv(in_chs, out_chs, k, stride, bias=True, tf_padding=opts["tf_padding"])
        self.out_chs = out_chs
        self.bn = bn(out_chs, opts["bn_momentum"])
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """The reference's MBConv: expand 1x1 -> depthwise k x k -> BN -> ReLU6 -> attention -> swish -> project 1x1."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int, t: int, opts: dict[str, Any]) -> None:
        super().__init__()
        ghost = opts["ghost"]
        self.expand = _ConvBN(in_chs, in_chs * t, 1, 1, True, opts, ghost)
        mid = self.expand.out_chs
        self.dw = conv(mid, mid, kernel, stride, bias=True, depthwise=True, tf_padding=opts["tf_padding"])
        self.dw_bn = bn(mid, opts["bn_momentum"])
        self.attn = make_attention(opts["attention"], mid, eca_bias=opts["eca_bias"], bn_momentum=opts["bn_momentum"])
        self.project = _ConvBN(mid, out_chs, 1, 1, False, opts, ghost)
        self.out_chs = self.project.out_chs
        self.has_skip = stride == 1 and self.out_chs == in_chs
        self.drop = nn.Dropout(opts["dropout"]) if self.has_skip and opts["dropout"] > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.dw_bn(self.dw(self.expand(x)))
        y = F.silu(self.attn(F.relu6(y)))
        y = self.project(y)
        return x + self.drop(y) if self.has_skip else y


class EfficientNetECA(nn.Module):
    """Custom EfficientNet of the paper, scaled by (A, B) = (alpha^phi, beta^phi) with the reference's rounding.

    Options as in :class:`landzoo.models.wrn.WideResNet` (``attention``, ``ghost``, ``ghost_fix``,
    ``bn_momentum``, ``eca_bias``, ``init``, ``tf_padding``); ``dropout`` is the reference's single rate for
    the residual dropout and the head (``drop_rate``, timm's name, overrides the head's). ``img_size`` is
    informative (any input size works).
    """

    def __init__(
        self,
        in_chans: int = 10,
        num_classes: int = 19,
        *,
        depth_multiplier: float = 1.0,
        width_multiplier: float = 1.0,
        attention: str = "eca",
        ghost: bool = False,
        ghost_fix: bool = True,
        dropout: float = 0.1,
        bn_momentum: float = 0.1,
        eca_bias: bool = True,
        init: str = "paper",
        tf_padding: bool = False,
        img_size: int | None = None,
        drop_rate: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs.pop("global_pool", None)
        if kwargs:
            raise ModelError(f"EfficientNetECA got unknown option(s): {', '.join(sorted(kwargs))}")
        head_drop = dropout if drop_rate is None else drop_rate  # timm's name for the classifier dropout
        check_choice("attention", attention, ATTENTIONS)
        check_choice("init", init, INITS)
        dims = scaling.efficientnet_dims(depth_multiplier, width_multiplier)
        opts = {
            "attention": attention,
            "ghost": ghost,
            "ghost_fix": ghost_fix,
            "bn_momentum": bn_momentum,
            "eca_bias": eca_bias,
            "tf_padding": tf_padding,
            "dropout": dropout,
        }
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.img_size = img_size
        self.stem = _ConvBN(in_chans, dims.stem, 3, 2, True, opts, ghost=False)
        blocks: list[nn.Module] = []
        prev = dims.stem
        for filters, kernel, stride, t, repeats in dims.stages:
            for i in range(repeats):
                block = MBConv(prev, filters, kernel, stride if i == 0 else 1, t, opts)
                blocks.append(block)
                prev = block.out_chs
        self.blocks = nn.Sequential(*blocks)
        self.head = _ConvBN(prev, dims.head, 1, 1, True, opts, ghost=False)
        self.num_features = self.head_hidden_size = dims.head
        self.head_drop = nn.Dropout(head_drop) if head_drop > 0 else nn.Identity()
        self.classifier = nn.Linear(dims.head, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self, init)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head_drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ---- registered variants ---------------------------------------------------------------------------
_VARIANTS: dict[str, tuple[scaling.Coefficients | None, dict[str, Any]]] = {}
for _phi in range(8):
    _c = scaling.variant_coefficients(_phi)
    _VARIANTS[f"efficientnet_eca_b{_phi}"] = (
        _c,
        {
            "attention": "eca",
            "depth_multiplier": _c.depth,
            "width_multiplier": _c.width,
            "resolution_multiplier": _c.resolution,
        },
    )
# The "augmented EfficientNet" variants of the paper's zoo, at base coefficients (60 px).
for _attn in ("none", "se", "cbam", "coord"):
    _VARIANTS[f"efficientnet_{'plain' if _attn == 'none' else _attn}_b0"] = (None, {"attention": _attn})
for _attn in ("none", "eca", "se", "cbam", "coord"):
    _VARIANTS[f"efficientnet_{'plain' if _attn == 'none' else _attn}_b0_ghost"] = (
        None,
        {"attention": _attn, "ghost": True},
    )


def _resolution(name: str) -> int:
    return scaling.scaled_resolution(_VARIANTS[name][1].get("resolution_multiplier", 1.0))


default_cfgs = generate_default_cfgs(
    {name: timm_cfg(_resolution(name), "stem.conv", "classifier") for name in _VARIANTS}
)


def _create(name: str, pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    opts = {**_VARIANTS[name][1], **exported_args(name, pretrained, kwargs), **kwargs}
    res = opts.pop("resolution_multiplier", 1.0)
    opts.setdefault("img_size", scaling.scaled_resolution(res))
    return build_timm(EfficientNetECA, name, pretrained, **opts)


@register_model
def efficientnet_eca_b0(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with ECA, base coefficients (60 px)."""
    return _create("efficientnet_eca_b0", pretrained, **kwargs)


@register_model
def efficientnet_eca_b1(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with ECA, phi = 1."""
    return _create("efficientnet_eca_b1", pretrained, **kwargs)


@register_model
def efficientnet_eca_b2(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with ECA, phi = 2."""
    return _create("efficientnet_eca_b2", pretrained, **kwargs)


@register_model
def efficientnet_eca_b3(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with ECA, phi = 3."""
    return _create("efficientnet_eca_b3", pretrained, **kwargs)


@register_model
def efficientnet_eca_b4(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with ECA, phi = 4."""
    return _create("efficientnet_eca_b4", pretrained, **kwargs)


@register_model
def efficientnet_eca_b5(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with ECA, phi = 5."""
    return _create("efficientnet_eca_b5", pretrained, **kwargs)


@register_model
def efficientnet_eca_b6(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with ECA, phi = 6."""
    return _create("efficientnet_eca_b6", pretrained, **kwargs)


@register_model
def efficientnet_eca_b7(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with ECA, phi = 7."""
    return _create("efficientnet_eca_b7", pretrained, **kwargs)


@register_model
def efficientnet_plain_b0(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet without attention, base coefficients."""
    return _create("efficientnet_plain_b0", pretrained, **kwargs)


@register_model
def efficientnet_se_b0(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with squeeze-and-excitation after the depthwise conv."""
    return _create("efficientnet_se_b0", pretrained, **kwargs)


@register_model
def efficientnet_cbam_b0(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with CBAM after the depthwise conv."""
    return _create("efficientnet_cbam_b0", pretrained, **kwargs)


@register_model
def efficientnet_coord_b0(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with coordinate attention after the depthwise conv."""
    return _create("efficientnet_coord_b0", pretrained, **kwargs)


@register_model
def efficientnet_plain_b0_ghost(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet, Ghost 1x1 convs, no attention."""
    return _create("efficientnet_plain_b0_ghost", pretrained, **kwargs)


@register_model
def efficientnet_eca_b0_ghost(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with ECA and Ghost 1x1 convs."""
    return _create("efficientnet_eca_b0_ghost", pretrained, **kwargs)


@register_model
def efficientnet_se_b0_ghost(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with SE and Ghost 1x1 convs."""
    return _create("efficientnet_se_b0_ghost", pretrained, **kwargs)


@register_model
def efficientnet_cbam_b0_ghost(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with CBAM and Ghost 1x1 convs."""
    return _create("efficientnet_cbam_b0_ghost", pretrained, **kwargs)


@register_model
def efficientnet_coord_b0_ghost(pretrained: bool = False, **kwargs: Any) -> EfficientNetECA:
    """Custom EfficientNet with coordinate attention and Ghost 1x1 convs."""
    return _create("efficientnet_coord_b0_ghost", pretrained, **kwargs)


for _name, (_coeffs, _opts) in _VARIANTS.items():
    register_info(
        ModelInfo(
            name=_name,
            family="efficientnet_eca"
            if _name.startswith("efficientnet_eca_b") and not _name.endswith("_ghost")
            else "efficientnet_custom",
            input_size=_resolution(_name),
            build=(lambda n: lambda **kw: _create(n, **kw))(_name),
            timm_name=_name,
            scaling=_coeffs.as_dict() if _coeffs else None,
            options={k: v for k, v in _opts.items() if not k.endswith("_multiplier")},
            reference_params=3_419_583 if _name == "efficientnet_eca_b0" else None,
            description=(globals()[_name].__doc__ or "").strip(),
        )
    )
