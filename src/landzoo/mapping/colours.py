"""Class colours of the maps: CORINE Land Cover's own legend for BigEarthNet, a qualitative palette otherwise.

BigEarthNet's classes are CORINE (CLC) level-3 classes or groups of them, so a map coloured with CLC's
published legend reads like every CORINE map a user has seen. A BigEarthNet-19 class takes the colour of the
first CLC class it groups, in code order (Urban fabric: 111, Arable land: 211, ...), found by name through
:data:`landzoo.contract.BEN43_TO_BEN19`; other class sets get matplotlib's ``tab20`` colours in class order.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Final

from landzoo import contract

__all__ = ["CLC_RGB", "NODATA_RGBA", "class_colours"]

#: CORINE Land Cover level-3 legend (European Environment Agency), code -> (R, G, B).
# fmt: off
CLC_RGB: Final = MappingProxyType({
    111: (230, 0, 77), 112: (255, 0, 0), 121: (204, 77, 242), 122: (204, 0, 0), 123: (230, 204, 204),
    124: (230, 204, 230), 131: (166, 0, 204), 132: (166, 77, 0), 133: (255, 77, 255), 141: (255, 166, 255),
    142: (255, 230, 255), 211: (255, 255, 168), 212: (255, 255, 0), 213: (230, 230, 0), 221: (230, 128, 0),
    222: (242, 166, 77), 223: (230, 166, 0), 231: (230, 230, 77), 241: (255, 230, 166), 242: (255, 230, 77),
    243: (230, 204, 77), 244: (242, 204, 166), 311: (128, 255, 0), 312: (0, 166, 0), 313: (77, 255, 0),
    321: (204, 242, 77), 322: (166, 255, 128), 323: (166, 230, 77), 324: (166, 242, 0), 331: (230, 230, 230),
    332: (204, 204, 204), 333: (204, 255, 204), 334: (0, 0, 0), 335: (166, 230, 204), 411: (166, 166, 255),
    412: (77, 77, 255), 421: (204, 204, 255), 422: (230, 230, 255), 423: (166, 166, 230), 511: (0, 204, 242),
    512: (128, 242, 230), 521: (0, 255, 166), 522: (166, 255, 230), 523: (230, 242, 255),
})
# fmt: on
#: Colour of map pixels without data (transparent).
NODATA_RGBA: Final = (0, 0, 0, 0)


def _ben19_codes() -> dict[str, int]:
    first: dict[str, int] = {}
    for name43, name19 in contract.BEN43_TO_BEN19.items():
        code = contract.BEN43_CLC_CODES[name43]
        if name19 is not None and (name19 not in first or code < first[name19]):
            first[name19] = code
    return first


def class_colours(classes: Sequence[str]) -> list[tuple[int, int, int]]:
    """One (R, G, B) per class name, in ``classes`` order."""
    ben19 = _ben19_codes()
    out = []
    if all(c in contract.BEN43_CLC_CODES or c in ben19 for c in classes):
        for c in classes:
            out.append(CLC_RGB[contract.BEN43_CLC_CODES[c] if c in contract.BEN43_CLC_CODES else ben19[c]])
        return out
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    for i in range(len(classes)):
        r, g, b, _ = cmap(i % 20)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return out
