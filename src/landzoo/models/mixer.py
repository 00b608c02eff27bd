"""The paper's MLP-Mixer and Mixer-Tiny (reference ``models.Mixer`` / ``Mixer_Tiny``).

Not timm's MlpMixer: patch 12 at 120 px (100 tokens), few blocks, and the reference's LayerNorm quirk:
``LayerNormalization(axis=1)`` on ``[B, tokens, channels]`` normalises over the **token** axis (one
gamma/beta per token: 2 x 100 parameters) instead of the channels. That quirk is the default
(``norm_axis="tokens"``); ``norm_axis="channels"`` is the standard Mixer. Keras' LayerNormalization
epsilon is 1e-3. Block: ``x + T(MLP_tok(T(LN(x))))`` then ``x + MLP_ch(LN(x))``, MLP = Dense -> GELU -> Dense.
Head: global average over tokens -> LN (channels) -> Linear. Parameter count: Mixer 446,723 (as the reference).
"""

from __future__ import annotations

from typing import Any

from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from landzoo.models._catalogue import ModelError, ModelInfo, register_info
from landzoo.models._common import INITS, build_timm, check_choice, exported_args, init_weights, keras_init, timm_cfg

__all__ = ["NORM_AXES", "PaperMixer"]

NORM_AXES = ("tokens", "channels")
_KERAS_LN_EPS = 1e-3


class _Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class _Norm(nn.Module):
    """LayerNorm over the token axis (reference quirk) or over channels, on ``[B, N, C]``."""

    def __init__(self, num_tokens: int, dim: int, axis: str) -> None:
        super().__init__()
        self.axis = axis
        self.ln = nn.LayerNorm(num_tokens if axis == "tokens" else dim, eps=_KERAS_LN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        if self.axis == "tokens":
            return self.ln(x.transpose(1, 2)).transpose(1, 2)
        return self.ln(x)


class _MixerBlock(nn.Module):
    def __init__(self, num_tokens: int, dim: int, tokens_hidden: int, channels_hidden: int, axis: str) -> None:
        super().__init__()
        self.norm1 = _Norm(num_tokens, dim, axis)
        self.token_mlp = _Mlp(num_tokens, tokens_hidden)
        self.norm2 = _Norm(num_tokens, dim, axis)
        self.channel_mlp = _Mlp(dim, channels_hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class PaperMixer(nn.Module):
    """The paper's MLP-Mixer: ``Conv(hidden, patch, stride patch)`` tokens, ``num_blocks`` mixer blocks, GAP, LN."""

    def __init__(
        self,
        num_blocks: int = 4,
        hidden_dim: int = 128,
        tokens_mlp_dim: int = 64,
        channels_mlp_dim: int = 200,
        patch_size: int = 12,
        img_size: int = 120,
        in_chans: int = 10,
        num_classes: int = 19,
        *,
        norm_axis: str = "tokens",
        init: str = "paper",
        drop_rate: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs.pop("global_pool", None)
        if kwargs:
            raise ModelError(f"PaperMixer got unknown option(s): {', '.join(sorted(kwargs))}")
        check_choice("norm_axis", norm_axis, NORM_AXES)
        check_choice("init", init, INITS)
        if isinstance(img_size, tuple | list):
            img_size = int(img_size[-1])
        if img_size % patch_size:
            raise ModelError(f"Mixer patch {patch_size} does not tile a {img_size} px input")
        self.num_classes, self.in_chans, self.img_size, self.patch_size = num_classes, in_chans, img_size, patch_size
        self.num_tokens = (img_size // patch_size) ** 2
        self.stem = keras_init(nn.Conv2d(in_chans, hidden_dim, patch_size, stride=patch_size), "glorot_uniform")
        self.blocks = nn.Sequential(
            *[
                _MixerBlock(self.num_tokens, hidden_dim, tokens_mlp_dim, channels_mlp_dim, norm_axis)
                for _ in range(num_blocks)
            ]
        )
        self.norm = nn.LayerNorm(hidden_dim, eps=_KERAS_LN_EPS)
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()  # the reference has none
        self.num_features = self.head_hidden_size = hidden_dim
        self.head = nn.Linear(hidden_dim, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self, init)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ModelError(f"this Mixer is built for {self.img_size} px inputs, got {tuple(x.shape[-2:])}")
        return self.blocks(self.stem(x).flatten(2).transpose(1, 2))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head_drop(self.norm(x.mean(dim=1)))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ---- registered variants ---------------------------------------------------------------------------
_VARIANTS = {
    "mixer_p12_120": ({"num_blocks": 4, "hidden_dim": 128, "tokens_mlp_dim": 64, "channels_mlp_dim": 200}, 446_723),
    "mixer_tiny_p12_120": ({"num_blocks": 2, "hidden_dim": 64, "tokens_mlp_dim": 64, "channels_mlp_dim": 64}, None),
}

default_cfgs = generate_default_cfgs({name: timm_cfg(120, "stem", "head", fixed_input_size=True) for name in _VARIANTS})


def _create(name: str, pretrained: bool = False, **kwargs: Any) -> PaperMixer:
    kwargs = {**exported_args(name, pretrained, kwargs), **kwargs}
    return build_timm(PaperMixer, name, pretrained, **{**_VARIANTS[name][0], "patch_size": 12, **kwargs})


@register_model
def mixer_p12_120(pretrained: bool = False, **kwargs: Any) -> PaperMixer:
    """The paper's MLP-Mixer: patch 12, 4 blocks, hidden 128, token-MLP 64, channel-MLP 200."""
    return _create("mixer_p12_120", pretrained, **kwargs)


@register_model
def mixer_tiny_p12_120(pretrained: bool = False, **kwargs: Any) -> PaperMixer:
    """The paper's Mixer-Tiny: patch 12, 2 blocks, hidden 64, token-MLP 64, channel-MLP 64."""
    return _create("mixer_tiny_p12_120", pretrained, **kwargs)


for _n, (_opts, _ref) in _VARIANTS.items():
    register_info(
        ModelInfo(
            name=_n,
            family="mixer",
            input_size=120,
            build=(lambda n: lambda **kw: _create(n, **kw))(_n),
            timm_name=_n,
            fixed_size=True,
            options=dict(_opts, patch_size=12),
            reference_params=_ref,
            description=(globals()[_n].__doc__ or "").strip(),
        )
    )
