"""Attention and efficiency modules of the paper's ``modules.py``: ECA, SE, CBAM, Coordinate attention, Ghost conv.

Each module is a port of the reference Keras function, with the same parameter count; where the
reference differs from the module's original paper this is kept when it defines the architecture
(ECA's Conv1D bias, SE's swish) and made optional when it is a plain bug (Ghost's lost depthwise branch).
``docs/models.md`` has the one table of every such choice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landzoo.models._common import bn, check_choice, conv, keras_init

__all__ = [
    "ATTENTIONS",
    "CBAM",
    "ECA",
    "SE",
    "CoordAttention",
    "GhostConv",
    "eca_kernel_size",
    "make_attention",
]

#: Attention options of the WRN and custom EfficientNet families.
ATTENTIONS = ("none", "eca", "se", "cbam", "coord")


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ECA's adaptive 1-D kernel: ``t = int(|(log2 C + b) / gamma|)``, made odd by adding one if even.

    C = 32, 64, 128 -> 3, 3, 5 (the reference's rule; timm's ``EcaModule`` also floors it at 3).
    """
    if channels < 1:
        raise ValueError(f"ECA needs at least one channel, got {channels}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """Efficient Channel Attention: GAP -> Conv1D over channels (k from :func:`eca_kernel_size`) -> sigmoid -> scale.

    ``bias=True`` is the reference's Keras ``Conv1D`` default (the ECA paper has no bias): one parameter more.
    """

    def __init__(self, channels: int, *, bias: bool = True, kernel_size: int | None = None) -> None:
        super().__init__()
        k = kernel_size or eca_kernel_size(channels)
        self.kernel_size = k
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        y = x.mean(dim=(2, 3)).unsqueeze(1)  # [B, 1, C]
        y = torch.sigmoid(self.conv(y)).squeeze(1)
        return x * y[:, :, None, None]


class SE(nn.Module):
    """Squeeze-and-Excitation as in the reference: GAP -> Dense(C/ratio, swish) -> Dense(C, sigmoid) -> scale."""

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // ratio)
        self.fc1 = keras_init(nn.Linear(channels, hidden), "he_normal")
        self.fc2 = keras_init(nn.Linear(hidden, channels), "he_normal")

    def forward(self, x: Tensor) -> Tensor:
        y = torch.sigmoid(self.fc2(F.silu(self.fc1(x.mean(dim=(2, 3))))))
        return x * y[:, :, None, None]


class CBAM(nn.Module):
    """CBAM as in the reference: shared MLP on avg- and max-pooled channels (ratio 16), then a 7x7 spatial map."""

    def __init__(self, channels: int, ratio: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        hidden = max(1, channels // ratio)
        self.fc1 = keras_init(nn.Linear(channels, hidden), "he_normal")
        self.fc2 = keras_init(nn.Linear(hidden, channels), "he_normal")
        self.spatial = keras_init(nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False), "he_normal")

    def _mlp(self, v: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(v)))

    def forward(self, x: Tensor) -> Tensor:
        ca = torch.sigmoid(self._mlp(x.mean(dim=(2, 3))) + self._mlp(x.amax(dim=(2, 3))))
        x = x * ca[:, :, None, None]
        sa = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(sa))


class CoordAttention(nn.Module):
    """Coordinate attention as in the reference: reduction 32 (at least 8 channels), BN, h-swish, two sigmoid maps.

    The reference's 1x1 convolutions on the pooled ``[C, H + W, 1]`` strips are computed as Linear layers
    over channels (same weights and count); PyTorch's CPU conv kernels are very slow on width-1 maps.
    """

    def __init__(self, channels: int, reduction: int = 32, *, bn_momentum: float = 0.1) -> None:
        super().__init__()
        mip = max(8, channels // reduction)
        self.conv1 = keras_init(nn.Linear(channels, mip), "glorot_uniform")
        self.bn1 = nn.BatchNorm1d(mip, eps=1e-5, momentum=bn_momentum)
        self.conv_h = keras_init(nn.Linear(mip, channels), "glorot_uniform")
        self.conv_w = keras_init(nn.Linear(mip, channels), "glorot_uniform")

    def forward(self, x: Tensor) -> Tensor:
        h = x.shape[-2]
        strips = torch.cat([x.mean(dim=3), x.mean(dim=2)], dim=2)  # [B, C, H + W]: rows, then columns
        y = self.conv1(strips.transpose(1, 2)).transpose(1, 2)  # [B, mip, H + W]
        y = F.hardswish(self.bn1(y)).transpose(1, 2)  # [B, H + W, mip]
        a_h = torch.sigmoid(self.conv_h(y[:, :h])).transpose(1, 2)  # [B, C, H]
        a_w = torch.sigmoid(self.conv_w(y[:, h:])).transpose(1, 2)  # [B, C, W]
        return x * a_h.unsqueeze(3) * a_w.unsqueeze(2)


def make_attention(name: str, channels: int, *, eca_bias: bool = True, bn_momentum: float = 0.1) -> nn.Module:
    """The attention module called ``name`` (one of :data:`ATTENTIONS`) for ``channels`` channels."""
    check_choice("attention", name, ATTENTIONS)
    if name == "eca":
        return ECA(channels, bias=eca_bias)
    if name == "se":
        return SE(channels)
    if name == "cbam":
        return CBAM(channels)
    if name == "coord":
        return CoordAttention(channels, bn_momentum=bn_momentum)
    return nn.Identity()


class GhostConv(nn.Module):
    """The reference's "ghost" convolution: half the channels from a conv, half from a cheap depthwise 3x3 of them.

    ``fixed=True`` (default) computes what the reference meant: ``x2 = ReLU(BN(DW3x3(ReLU(BN(x1)))))``.
    ``fixed=False`` reproduces the reference bug (``BatchNormalization()(x1)`` where ``(x2)`` was meant):
    the depthwise branch is discarded and ``x2 = ReLU(BN(x1))``; Keras then drops the unused layers,
    so that variant has ``9*h + 2*h`` fewer parameters (h = out // 2). Output: ``concat(x1, x2)``, 2*h channels.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int = 1,
        *,
        fixed: bool = True,
        bn_momentum: float = 0.1,
        tf_padding: bool = False,
    ) -> None:
        super().__init__()
        half = out_chs // 2
        if half < 1:
            raise ValueError(f"a ghost convolution needs at least 2 output channels, got {out_chs}")
        self.out_chs = 2 * half
        self.fixed = fixed
        self.primary = conv(in_chs, half, kernel_size, stride, tf_padding=tf_padding)
        if fixed:
            self.cheap = nn.Sequential(
                bn(half, bn_momentum),
                nn.ReLU(inplace=True),
                conv(half, half, 3, 1, depthwise=True, tf_padding=tf_padding),
                bn(half, bn_momentum),
                nn.ReLU(inplace=True),
            )
        else:
            self.cheap = nn.Sequential(bn(half, bn_momentum), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.primary(x)
        return torch.cat([x1, self.cheap(x1)], dim=1)
