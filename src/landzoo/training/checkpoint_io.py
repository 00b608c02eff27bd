"""Lightning checkpoints (``.ckpt``): written atomically, read without running code, damage named in one line.

Reading: a ``.ckpt`` is a pickle, and ``torch.load(weights_only=False)`` would run whatever a crafted file
asks for before any check. landzoo reads every ``.ckpt`` (``landzoo test``/``predict`` on a user's file, the
selected checkpoint after training, ``--resume``) with ``weights_only=True``: PyTorch's restricted unpickler,
which admits tensors, storages, ``OrderedDict`` and plain Python containers and numbers, plus the types in
:data:`ALLOWED_GLOBALS`. That list is what landzoo's own checkpoints hold beyond those (measured with
``pickletools`` on fit, transfer and DDP checkpoints: nothing), so it is empty; a type is added there only when
landzoo itself starts saving it. A file that names any other type is refused, naming the file and the type.

Writing: :class:`AtomicCheckpointIO` writes through :func:`landzoo.files.atomic_write` (temporary file, fsync,
rename), so a kill or a full disk leaves the previous ``last.ckpt`` intact, never a truncated one; an OS error
names the checkpoint's path.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from landzoo.files import atomic_write
from landzoo.training.errors import RunError

__all__ = ["ALLOWED_GLOBALS", "AtomicCheckpointIO", "load_lightning_checkpoint"]

#: Types a landzoo ``.ckpt`` may hold besides what ``weights_only=True`` admits by itself (see the module docstring).
ALLOWED_GLOBALS: tuple[Any, ...] = ()


def load_lightning_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A ``.ckpt`` as a dict, read with ``weights_only=True``; anything wrong is a :class:`RunError` naming it."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise RunError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL\s+`?([\w.]+)", str(err))
        if found:
            raise RunError(
                f"checkpoint {path} holds an object of type {found.group(1)}, which landzoo never saves; refusing to load it "
                "(unpickling it could run code). Use a checkpoint written by landzoo"
            ) from None
        raise RunError(f"checkpoint {path} is damaged or not a checkpoint (it cannot be unpickled)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        if isinstance(err, OSError) and err.errno not in (None, errno.EINVAL):
            raise
        raise RunError(
            f"checkpoint {path} is truncated or damaged ({_first_line(err)}); delete it, or start the run again"
        ) from None
    if not isinstance(state, dict):
        raise RunError(f"checkpoint {path} does not hold a Lightning checkpoint (a {type(state).__name__})")
    return state


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with landzoo's atomic writes and restricted reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        # serialised in memory first (as Lightning's own writer does): torch's zip writer turns a failed write into
        # a RuntimeError without its cause; written by Python, a full disk is an OSError naming this checkpoint
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            atomic_write(path, lambda tmp: _write(tmp, buffer))
        except OSError as err:
            if err.filename is None or str(err.filename) != str(path):
                raise OSError(err.errno, err.strerror or str(err), str(path)) from None
            raise

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        return load_lightning_checkpoint(path, map_location=map_location or "cpu")


def _write(path: Path, buffer: io.BytesIO) -> None:
    with open(path, "wb") as fh:
        fh.write(buffer.getbuffer())
