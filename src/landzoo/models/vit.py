"""The paper's Vision Transformer (reference ``models.ViT``, after the Keras "image classification with ViT" example).

Not timm's ViT: no class token, a rank-1 positional "embedding", a flatten-all-tokens MLP head. Per layer:
``x + MHA(LN(x))`` then ``x + MLP(LN(x))`` with MLP = Dense(128, GELU) -> Dropout -> Dense(64, GELU) -> Dropout
(GELU after *both* layers, as in the reference). Multi-head attention is Keras' ``MultiHeadAttention(num_heads=4,
key_dim=64)``: each head has its own 64-d query/key/value (inner width 4 x 64 = 256, not 64 / 4 as in
``nn.MultiheadAttention``), attention-probability dropout 0.1, and an output projection 256 -> 64; all with
biases. The parameter counts match the reference exactly (ViT/6 55,237,395; ViT/20 7,760,147).

Patch vectors: a Conv2d with kernel = stride = patch computes the same linear projection as
``tf.image.extract_patches`` + Dense (weights ordered differently; same count).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from landzoo.models._catalogue import ModelError, ModelInfo, register_info
from landzoo.models._common import INITS, build_timm, check_choice, exported_args, init_weights, keras_init, timm_cfg

__all__ = ["POS_EMBEDS", "PaperViT"]

#: Positional embedding options: the reference's Dense(64, no bias) of the patch index, or a learned table.
POS_EMBEDS = ("paper", "learned")


class KerasMHA(nn.Module):
    """Keras ``MultiHeadAttention(num_heads, key_dim)`` self-attention: per-head key_dim, output projection to dim."""

    def __init__(self, dim: int, num_heads: int, key_dim: int, attn_drop: float) -> None:
        super().__init__()
        inner = num_heads * key_dim
        self.num_heads, self.key_dim = num_heads, key_dim
        self.q = nn.Linear(dim, inner)
        self.k = nn.Linear(dim, inner)
        self.v = nn.Linear(dim, inner)
        self.proj = nn.Linear(inner, dim)
        self.attn_drop = nn.Dropout(attn_drop)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.view(b, n, self.num_heads, self.key_dim).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        # Explicit matmuls (not F.scaled_dot_product_attention) so FlopCounterMode counts them on every device.
        attn = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(self.key_dim), dim=-1)
        y = self.attn_drop(attn) @ v
        return self.proj(y.transpose(1, 2).reshape(b, n, self.num_heads * self.key_dim))


class _Mlp(nn.Sequential):
    """Dense(units, GELU) -> Dropout for each width: the reference's ``mlp`` helper."""

    def __init__(self, in_dim: int, widths: tuple[int, ...], drop: float) -> None:
        layers: list[nn.Module] = []
        for w in widths:
            layers += [nn.Linear(in_dim, w), nn.GELU(), nn.Dropout(drop)]
            in_dim = w
        super().__init__(*layers)


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, key_dim: int, mlp_widths: tuple[int, ...], drop: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = KerasMHA(dim, num_heads, key_dim, drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, mlp_widths, drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PaperViT(nn.Module):
    """The paper's ViT: patch ``patch_size`` at ``img_size`` px, 64-d tokens, 8 layers, 4 heads of key_dim 64.

    ``pos_embed="paper"``: ``pos[i] = i * w`` (a Keras Dense(64, no bias) applied to the integer index i; 64
    parameters). ``"learned"``: a learned ``[num_patches, dim]`` table (the usual ViT; more parameters).
    The head flattens all tokens: LN -> Flatten -> Dropout(0.5) -> Dense(2048, GELU) -> Dropout(0.5) ->
    Dense(1024, GELU) -> Dropout(0.5) -> Linear(num_classes) (logits).
    """

    def __init__(
        self,
        patch_size: int = 6,
        img_size: int = 120,
        in_chans: int = 10,
        num_classes: int = 19,
        *,
        dim: int = 64,
        depth: int = 8,
        num_heads: int = 4,
        key_dim: int = 64,
        mlp_widths: tuple[int, ...] = (128, 64),
        head_widths: tuple[int, ...] = (2048, 1024),
        drop: float = 0.1,
        head_drop: float = 0.5,
        pos_embed: str = "paper",
        init: str = "paper",
        drop_rate: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs.pop("global_pool", None)
        if drop_rate is not None:  # timm's name for the classifier dropout
            head_drop = drop_rate
        if kwargs:
            raise ModelError(f"PaperViT got unknown option(s): {', '.join(sorted(kwargs))}")
        check_choice("pos_embed", pos_embed, POS_EMBEDS)
        check_choice("init", init, INITS)
        if isinstance(img_size, tuple | list):
            img_size = int(img_size[-1])
        if img_size % patch_size:
            raise ModelError(
                f"ViT patch {patch_size} does not tile a {img_size} px input (the reference drops the rest)"
            )
        self.num_classes, self.in_chans, self.img_size, self.patch_size = num_classes, in_chans, img_size, patch_size
        self.num_patches = (img_size // patch_size) ** 2
        self.patch_embed = keras_init(nn.Conv2d(in_chans, dim, patch_size, stride=patch_size), "glorot_uniform_dense")
        self.pos_mode = pos_embed
        if pos_embed == "paper":
            self.pos_embed = nn.Linear(1, dim, bias=False)
        else:
            self.pos_embed_table = nn.Parameter(torch.zeros(1, self.num_patches, dim))
            nn.init.trunc_normal_(self.pos_embed_table, std=0.02)
        self.blocks = nn.Sequential(*[_Block(dim, num_heads, key_dim, mlp_widths, drop) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head_drop = nn.Dropout(head_drop)
        self.pre_logits = _Mlp(self.num_patches * dim, head_widths, head_drop)
        self.num_features = self.head_hidden_size = head_widths[-1] if head_widths else self.num_patches * dim
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self, init)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def _positions(self, x: Tensor) -> Tensor:
        if self.pos_mode == "paper":
            idx = torch.arange(self.num_patches, device=x.device, dtype=x.dtype).unsqueeze(1)
            return self.pos_embed(idx).unsqueeze(0)
        return self.pos_embed_table

    def forward_features(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ModelError(f"this ViT is built for {self.img_size} px inputs, got {tuple(x.shape[-2:])}")
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B, N, dim], patches in row-major order
        return self.norm(self.blocks(x + self._positions(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.pre_logits(self.head_drop(x.flatten(1)))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ---- registered variants ---------------------------------------------------------------------------
PATCHES = (6, 12, 20, 30, 40)
REFERENCE_PARAMS = {6: 55_237_395, 20: 7_760_147}

default_cfgs = generate_default_cfgs(
    {f"vit_p{p}_120": timm_cfg(120, "patch_embed", "head", fixed_input_size=True) for p in PATCHES}
)


def _create(name: str, patch: int, pretrained: bool = False, **kwargs: Any) -> PaperViT:
    kwargs = {**exported_args(name, pretrained, kwargs), **kwargs}
    return build_timm(PaperViT, name, pretrained, patch_size=patch, **kwargs)


@register_model
def vit_p6_120(pretrained: bool = False, **kwargs: Any) -> PaperViT:
    """The paper's ViT, 6 px patches at 120 px (400 tokens)."""
    return _create("vit_p6_120", 6, pretrained, **kwargs)


@register_model
def vit_p12_120(pretrained: bool = False, **kwargs: Any) -> PaperViT:
    """The paper's ViT, 12 px patches at 120 px (100 tokens)."""
    return _create("vit_p12_120", 12, pretrained, **kwargs)


@register_model
def vit_p20_120(pretrained: bool = False, **kwargs: Any) -> PaperViT:
    """The paper's ViT, 20 px patches at 120 px (36 tokens)."""
    return _create("vit_p20_120", 20, pretrained, **kwargs)


@register_model
def vit_p30_120(pretrained: bool = False, **kwargs: Any) -> PaperViT:
    """The paper's ViT, 30 px patches at 120 px (16 tokens)."""
    return _create("vit_p30_120", 30, pretrained, **kwargs)


@register_model
def vit_p40_120(pretrained: bool = False, **kwargs: Any) -> PaperViT:
    """The paper's ViT, 40 px patches at 120 px (9 tokens)."""
    return _create("vit_p40_120", 40, pretrained, **kwargs)


for _p in PATCHES:
    _n = f"vit_p{_p}_120"
    register_info(
        ModelInfo(
            name=_n,
            family="vit",
            input_size=120,
            build=(lambda n, p: lambda **kw: _create(n, p, **kw))(_n, _p),
            timm_name=_n,
            fixed_size=True,
            options={"patch_size": _p},
            reference_params=REFERENCE_PARAMS.get(_p),
            description=(globals()[_n].__doc__ or "").strip(),
        )
    )
