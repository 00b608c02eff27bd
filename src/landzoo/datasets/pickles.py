"""Reading the pickled side files of public datasets without letting them run code.

SEN12MS ships its labels (``IGBP_probability_labels.pkl``: a dict of file name -> numpy array of 17
probabilities) and split lists (``*_list.pkl``: a list of file names) as pickles. ``pickle.load`` calls any
function a file names, so a crafted dataset would run code at ``landzoo inspect``. :func:`load_data_pickle`
unpickles with an allow-list of exactly the types those files are made of: builtin containers, strings and
numbers (pickle opcodes, no globals needed) and numpy arrays, dtypes and scalars, under the module names numpy
1.x and 2.x pickle them with. Any other global is refused before it is looked up, naming the file and the
global.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "load_data_pickle"]

_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")

#: (module, name) pairs a dataset pickle may reference: numpy array/scalar reconstruction and the byte codec
#: that pickle protocol 2 uses for array buffers. Nothing that can call arbitrary code.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict")]
    + [(m, n) for m in _NUMPY_CORE for n in ("_reconstruct", "scalar")]
    + [(m, "_frombuffer") for m in _NUMPY_NUMERIC]
    + [("builtins", n) for n in ("set", "frozenset", "complex", "bytearray")]
)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global outside :data:`ALLOWED_GLOBALS` (it could run code)."""


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS and not (module == "numpy.dtypes" and name.endswith("DType")):
            raise UnsafePickleError(f"it references {module}.{name}, which a data file never needs")
        return super().find_class(module, name)


def load_data_pickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` allowing only builtin and numpy data types; raises ``UnsafePickleError`` otherwise.

    Other failures (truncated file, not a pickle) raise what :mod:`pickle` raises; callers turn every
    exception into their dataset error naming the file.
    """
    data = Path(path).read_bytes()
    return _DataUnpickler(io.BytesIO(data)).load()
