"""The paper's CIFAR-style Wide ResNet (WRN-d-k) with optional attention and Ghost convolutions, and its B0..B7.

Layout (reference ``models.WideResNet``, Keras), for N blocks per group and widths w1/w2/w3:

* stem: conv3x3(16, no bias) -> BN -> ReLU
* group g (stride 1, 2, 2): an *expanding* block ``attn(conv3x3(ReLU(BN(conv3x3_s(x))))) + conv1x1_s(x)``,
  then N - 1 pre-activation blocks ``x + attn(conv3x3(ReLU(BN(dropout(conv3x3(ReLU(BN(x))))))))``,
  then BN -> ReLU. Dropout exists only inside the pre-activation blocks (the base, N = 1, has none).
* head: ``pool="paper"``: AvgPool 8x8 (stride 8, valid) then global average, the CIFAR head the reference
  kept although its final map is 15x15 at 60 px (only the top-left 8x8 window is seen);
  ``pool="global"``: plain global average. Then Linear -> logits.

Every option of the reference is an argument here (it hard-coded them in ``__init__``); the registered
names bake them in. Parameter counts equal the reference's (305,875 plain; 305,889 ECA; 10 bands, 19 classes).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from landzoo import scaling
from landzoo.models._catalogue import ModelError, ModelInfo, register_info
from landzoo.models._common import INITS, bn, build_timm, check_choice, conv, exported_args, init_weights, timm_cfg
from landzoo.models.attention import ATTENTIONS, GhostConv, make_attention

__all__ = ["POOLS", "WideResNet"]

#: Head pooling options.
POOLS = ("paper", "global")


def _conv(in_chs: int, out_chs: int, k: int, stride: int, opts: dict[str, Any]) -> nn.Module:
    """A plain conv (no bias) or, with ``ghost``, the reference's Ghost module in its place."""
    if opts["ghost"]:
        return GhostConv(
            in_chs,
            out_chs,
            k,
            stride,
            fixed=opts["ghost_fix"],
            bn_momentum=opts["bn_momentum"],
            tf_padding=opts["tf_padding"],
        )
    return conv(in_chs, out_chs, k, stride, tf_padding=opts["tf_padding"])


class ExpandBlock(nn.Module):
    """First block of a group: two 3x3 convs (the first strided) + attention, plus a strided 1x1 shortcut."""

    def __init__(self, in_chs: int, width: int, stride: int, opts: dict[str, Any]) -> None:
        super().__init__()
        self.conv1 = _conv(in_chs, width, 3, stride, opts)
        self.bn1 = bn(width, opts["bn_momentum"])
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = _conv(width, width, 3, 1, opts)
        self.attn = make_attention(opts["attention"], width, eca_bias=opts["eca_bias"], bn_momentum=opts["bn_momentum"])
        self.shortcut = _conv(in_chs, width, 1, stride, opts)

    def forward(self, x: Tensor) -> Tensor:
        y = self.attn(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return y + self.shortcut(x)


class PreActBlock(nn.Module):
    """Identity block: BN -> ReLU -> conv3x3 -> dropout -> BN -> ReLU -> conv3x3 -> attention, plus the input."""

    def __init__(self, width: int, dropout: float, opts: dict[str, Any]) -> None:
        super().__init__()
        self.bn1 = bn(width, opts["bn_momentum"])
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = _conv(width, width, 3, 1, opts)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn2 = bn(width, opts["bn_momentum"])
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = _conv(width, width, 3, 1, opts)
        self.attn = make_attention(opts["attention"], width, eca_bias=opts["eca_bias"], bn_momentum=opts["bn_momentum"])

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(self.act1(self.bn1(x)))
        y = self.conv2(self.act2(self.bn2(self.drop(y))))
        return x + self.attn(y)


class WideResNet(nn.Module):
    """WRN-d-k of the paper; build a scaled one with ``WideResNet.from_multipliers`` or a registered name.

    Args:
        blocks_per_group: N (1 for WRN-10-k).
        widths: channels of the three groups (32/64/128 for k = 2).
        in_chans, num_classes: input bands and outputs (logits; apply a sigmoid for probabilities).
        attention: ``"none" | "eca" | "se" | "cbam" | "coord"``, after the second conv of every block.
        ghost: Ghost modules in place of every conv after the stem (shortcuts included, as in the reference).
        ghost_fix: keep the Ghost depthwise branch (default) or reproduce the reference bug (``False``).
        pool: ``"paper"`` (8x8 average pool, then global) or ``"global"``.
        dropout: dropout inside the pre-activation blocks (reference coefficient ``dropout``).
        bn_momentum: PyTorch convention; 0.1 is what the reference meant, 0.9 what it did (Keras momentum=0.1).
        eca_bias: ECA's Conv1D bias (reference: yes).
        init: ``"paper"`` (Keras he_normal, BN gamma ~ U(-0.05, 0.05)) or ``"torch"``.
        tf_padding: TF's asymmetric "same" padding for strided convs (for reference checkpoints).
        img_size: input side, used only to check that ``pool="paper"`` has an 8x8 window to pool.
    """

    def __init__(
        self,
        blocks_per_group: int = 1,
        widths: tuple[int, int, int] = (32, 64, 128),
        in_chans: int = 10,
        num_classes: int = 19,
        *,
        attention: str = "none",
        ghost: bool = False,
        ghost_fix: bool = True,
        pool: str = "paper",
        dropout: float = 0.1,
        drop_rate: float = 0.0,
        bn_momentum: float = 0.1,
        eca_bias: bool = True,
        init: str = "paper",
        tf_padding: bool = False,
        img_size: int | None = None,
        stem_width: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs.pop("global_pool", None)  # timm passes it from the pretrained cfg; the head is fixed here
        if kwargs:
            raise ModelError(f"WideResNet got unknown option(s): {', '.join(sorted(kwargs))}")
        check_choice("attention", attention, ATTENTIONS)
        check_choice("pool", pool, POOLS)
        check_choice("init", init, INITS)
        if blocks_per_group < 1:
            raise ModelError(f"a WRN needs at least one block per group, got {blocks_per_group}")
        if pool == "paper" and img_size is not None:
            final = math.ceil(math.ceil(img_size / 2) / 2)  # two stride-2 groups, "same" padding
            if final < 8:
                raise ModelError(
                    f"pool='paper' needs a final feature map of at least 8x8, but {img_size} px gives {final}x{final}; "
                    "use pool='global' or an input of at least 29 px"
                )
        opts = {
            "attention": attention,
            "ghost": ghost,
            "ghost_fix": ghost_fix,
            "bn_momentum": bn_momentum,
            "eca_bias": eca_bias,
            "tf_padding": tf_padding,
        }
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.pool = pool
        self.img_size = img_size
        self.blocks_per_group = blocks_per_group
        self.widths = tuple(int(w) for w in widths)
        self.stem = nn.Sequential(
            conv(in_chans, stem_width, 3, 1, tf_padding=tf_padding), bn(stem_width, bn_momentum), nn.ReLU(inplace=True)
        )
        groups = []
        prev = stem_width
        for width, stride in zip(self.widths, (1, 2, 2), strict=True):
            out = 2 * (width // 2) if ghost else width
            blocks: list[nn.Module] = [ExpandBlock(prev, width, stride, opts)]
            blocks += [PreActBlock(out, dropout, opts) for _ in range(blocks_per_group - 1)]
            blocks += [bn(out, bn_momentum), nn.ReLU(inplace=True)]
            groups.append(nn.Sequential(*blocks))
            prev = out
        self.groups = nn.Sequential(*groups)
        self.num_features = self.head_hidden_size = prev
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(prev, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self, init)

    @classmethod
    def from_multipliers(
        cls,
        depth_multiplier: float = 1.0,
        width_multiplier: float = 1.0,
        resolution_multiplier: float = 1.0,
        *,
        blocks_rule: str = "paper",
        **kwargs: Any,
    ) -> WideResNet:
        """A WRN scaled by (A, B, G) with the reference's rounding (:func:`landzoo.scaling.wrn_dims`)."""
        d = scaling.wrn_dims(depth_multiplier, width_multiplier, resolution_multiplier, blocks_rule=blocks_rule)
        kwargs.setdefault("img_size", d.resolution)
        return cls(d.blocks_per_group, d.widths, **kwargs)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        return self.groups(self.stem(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.pool == "paper":
            x = nn.functional.avg_pool2d(x, 8)
        x = self.head_drop(torch.flatten(x.mean(dim=(2, 3)), 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ---- registered variants ---------------------------------------------------------------------------
def _variant_kwargs(name: str) -> dict[str, Any]:
    return dict(_VARIANTS[name][1])


def _scaled(phi: int) -> dict[str, Any]:
    c = scaling.variant_coefficients(phi)
    return {"depth_multiplier": c.depth, "width_multiplier": c.width, "resolution_multiplier": c.resolution}


# name -> (Coefficients or None, constructor options)
_VARIANTS: dict[str, tuple[scaling.Coefficients | None, dict[str, Any]]] = {}
for _attn in ATTENTIONS:
    for _ghost in (False, True):
        _name = "wrn10_2" + ("" if _attn == "none" else f"_{_attn}") + ("_ghost" if _ghost else "")
        _VARIANTS[_name] = (None, {"attention": _attn, "ghost": _ghost})
for _phi in range(8):
    _VARIANTS[f"wrn_eca_b{_phi}"] = (scaling.variant_coefficients(_phi), {"attention": "eca", **_scaled(_phi)})


def _resolution(name: str) -> int:
    opts = _VARIANTS[name][1]
    return scaling.scaled_resolution(opts.get("resolution_multiplier", 1.0))


default_cfgs = generate_default_cfgs({name: timm_cfg(_resolution(name), "stem.0", "fc") for name in _VARIANTS})


def _create(name: str, pretrained: bool = False, **kwargs: Any) -> WideResNet:
    opts = {**_variant_kwargs(name), **exported_args(name, pretrained, kwargs), **kwargs}
    scale = {k: opts.pop(k) for k in ("depth_multiplier", "width_multiplier", "resolution_multiplier") if k in opts}
    blocks_rule = opts.pop("blocks_rule", "paper")
    d = scaling.wrn_dims(**scale, blocks_rule=blocks_rule)
    opts.setdefault("img_size", d.resolution)
    return build_timm(WideResNet, name, pretrained, blocks_per_group=d.blocks_per_group, widths=d.widths, **opts)


def _info(name: str, description: str) -> None:
    coeffs, opts = _VARIANTS[name]
    register_info(
        ModelInfo(
            name=name,
            family="wrn_eca" if name.startswith("wrn_eca_b") else "wrn",
            input_size=_resolution(name),
            build=lambda **kw: _create(name, **kw),
            timm_name=name,
            scaling=coeffs.as_dict() if coeffs else None,
            options={k: v for k, v in opts.items() if not k.endswith("_multiplier")},
            reference_params={"wrn10_2": 305_875, "wrn10_2_eca": 305_889, "wrn_eca_b0": 305_889}.get(name),
            description=description,
        )
    )


# One small timm entry point per variant (timm registers a function under its own name).
@register_model
def wrn10_2(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 at 60 px, no attention (reference base)."""
    return _create("wrn10_2", pretrained, **kwargs)


@register_model
def wrn10_2_ghost(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 with Ghost convolutions."""
    return _create("wrn10_2_ghost", pretrained, **kwargs)


@register_model
def wrn10_2_eca(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 with ECA after the second conv of every block."""
    return _create("wrn10_2_eca", pretrained, **kwargs)


@register_model
def wrn10_2_eca_ghost(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 with ECA and Ghost convolutions."""
    return _create("wrn10_2_eca_ghost", pretrained, **kwargs)


@register_model
def wrn10_2_se(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 with squeeze-and-excitation."""
    return _create("wrn10_2_se", pretrained, **kwargs)


@register_model
def wrn10_2_se_ghost(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 with squeeze-and-excitation and Ghost convolutions."""
    return _create("wrn10_2_se_ghost", pretrained, **kwargs)


@register_model
def wrn10_2_cbam(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 with CBAM."""
    return _create("wrn10_2_cbam", pretrained, **kwargs)


@register_model
def wrn10_2_cbam_ghost(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 with CBAM and Ghost convolutions."""
    return _create("wrn10_2_cbam_ghost", pretrained, **kwargs)


@register_model
def wrn10_2_coord(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 with coordinate attention."""
    return _create("wrn10_2_coord", pretrained, **kwargs)


@register_model
def wrn10_2_coord_ghost(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-10-2 with coordinate attention and Ghost convolutions."""
    return _create("wrn10_2_coord_ghost", pretrained, **kwargs)


@register_model
def wrn_eca_b0(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """Compound-scaled WRN-ECA, phi = 0 (= wrn10_2_eca)."""
    return _create("wrn_eca_b0", pretrained, **kwargs)


@register_model
def wrn_eca_b1(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """Compound-scaled WRN-ECA, phi = 1."""
    return _create("wrn_eca_b1", pretrained, **kwargs)


@register_model
def wrn_eca_b2(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """Compound-scaled WRN-ECA, phi = 2."""
    return _create("wrn_eca_b2", pretrained, **kwargs)


@register_model
def wrn_eca_b3(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """Compound-scaled WRN-ECA, phi = 3."""
    return _create("wrn_eca_b3", pretrained, **kwargs)


@register_model
def wrn_eca_b4(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """Compound-scaled WRN-ECA, phi = 4."""
    return _create("wrn_eca_b4", pretrained, **kwargs)


@register_model
def wrn_eca_b5(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """Compound-scaled WRN-ECA, phi = 5."""
    return _create("wrn_eca_b5", pretrained, **kwargs)


@register_model
def wrn_eca_b6(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """Compound-scaled WRN-ECA, phi = 6."""
    return _create("wrn_eca_b6", pretrained, **kwargs)


@register_model
def wrn_eca_b7(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """Compound-scaled WRN-ECA, phi = 7."""
    return _create("wrn_eca_b7", pretrained, **kwargs)


for _name in _VARIANTS:
    _info(_name, (globals()[_name].__doc__ or "").strip())
