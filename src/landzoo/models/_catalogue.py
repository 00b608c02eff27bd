"""The landzoo model catalogue: one :class:`ModelInfo` per architecture name, filled by the family modules.

The catalogue is the landzoo side of the registry (timm's registry is the other side): it says what a
name *means* for this project (family, input resolution, default band selection, scaling coefficients,
reference parameter count) and how to build it. It lives in its own module so that the family modules
can register into it without importing :mod:`landzoo.models` (no import cycle).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from landzoo.errors import LandzooError

__all__ = [
    "DEFAULT_BANDS",
    "DEFAULT_CLASSES",
    "ModelError",
    "ModelInfo",
    "get_model_info",
    "list_models",
    "register_info",
]

#: The paper's 10 bands: every catalogue entry defaults to them.
DEFAULT_BANDS = "s2_10m_20m"
#: The paper's 19 BigEarthNet classes.
DEFAULT_CLASSES = "ben19"


class ModelError(LandzooError, ValueError):
    """An unknown model name, an option a model does not take, or an input a model cannot accept."""


@dataclass(frozen=True)
class ModelInfo:
    """What a catalogue name stands for.

    ``build(in_chans=..., num_classes=..., **options)`` returns the bare network (``[B, C, R, R]`` ->
    ``[B, num_classes]`` logits); :func:`landzoo.models.create_model` wraps it with the input stem.
    ``timm_name`` is the name under which ``timm.create_model`` builds the same network.
    """

    name: str
    family: str
    input_size: int
    build: Callable[..., Any] = field(repr=False, compare=False)
    timm_name: str = ""
    bands: str = DEFAULT_BANDS
    source: str = "landzoo"  # "landzoo": written here; "timm": timm's architecture
    fixed_size: bool = False  # True when the network only accepts its own input size (ViT, Mixer)
    scaling: Mapping[str, float] | None = None  # alpha, beta, gamma, phi of a compound-scaled variant
    options: Mapping[str, Any] = field(default_factory=dict)  # architecture options baked into the name
    reference_params: int | None = None  # the reference (Keras) code's trainable count with 10 bands, 19 classes
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (no builder)."""
        return {
            "name": self.name,
            "family": self.family,
            "input_size": self.input_size,
            "timm_name": self.timm_name or self.name,
            "bands": self.bands,
            "source": self.source,
            "fixed_size": self.fixed_size,
            "scaling": dict(self.scaling) if self.scaling else None,
            "options": dict(self.options),
            "reference_params": self.reference_params,
            "description": self.description,
        }


#: Listing order of the families: the paper's own architectures first, then timm's.
FAMILY_ORDER = (
    "wrn",
    "wrn_eca",
    "efficientnet_eca",
    "efficientnet_custom",
    "vit",
    "mixer",
    "resnet",
    "vgg",
    "densenet",
    "efficientnet",
)

_CATALOGUE: dict[str, ModelInfo] = {}
#: Read-only view of every registered entry, in registration order.
CATALOGUE: Mapping[str, ModelInfo] = MappingProxyType(_CATALOGUE)


def register_info(info: ModelInfo) -> ModelInfo:
    """Add an entry; a second entry under the same name is a programming error, never a silent overwrite."""
    if info.name in _CATALOGUE:
        raise ModelError(f"model name {info.name!r} is registered twice")
    if info.name != info.name.lower():
        raise ModelError(f"model name {info.name!r} must be lowercase")
    _CATALOGUE[info.name] = info
    return info


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Catalogue names in :data:`FAMILY_ORDER`, optionally filtered by a shell ``pattern`` and/or a ``family``."""
    import fnmatch

    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    names = sorted(_CATALOGUE, key=lambda n: rank.get(_CATALOGUE[n].family, len(rank)))  # stable within a family
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if family:
        names = [n for n in names if _CATALOGUE[n].family == family]
    return names


def get_model_info(name: str) -> ModelInfo:
    """The entry of ``name``; an unknown name is an error that lists the closest names.

    (The reference code silently trained a linear model when a name was misspelt.)
    """
    if not isinstance(name, str):
        raise ModelError(f"a model name is a string, not {type(name).__name__}")
    if name in _CATALOGUE:
        return _CATALOGUE[name]
    query = name.lower()
    scored = sorted((-difflib.SequenceMatcher(None, query, n).ratio(), n) for n in _CATALOGUE)
    close = [n for score, n in scored[:5] if -score >= 0.5]  # best first, ties in name order
    hint = f"; did you mean {', '.join(close)}?" if close else "; `landzoo models` lists every name"
    raise ModelError(f"unknown model {name!r}{hint}")
