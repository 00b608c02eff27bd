"""Writing output files safely: atomic replacement, the user's umask, and one-line OS errors.

Every file landzoo writes (store files, checkpoints, sidecars, exports, maps, reports) goes through
:func:`atomic_write`: the content is written to a temporary name in the target folder, flushed to disk, then
renamed over the target, so a reader (or a rerun after ``kill -9``) sees either the old file or the complete
new one, never a half-written one. The temporary file is created with mode ``0o666`` filtered by the process
umask, like any file ``open(..., "w")`` creates (``tempfile.mkstemp`` would make it 0600, and the rename would
carry that private mode over to weights and exports).

:func:`os_error_message` is the one wording of an ``OSError`` for the CLI boundary: what failed and on
which path, in one line (``no space left on device: /data/store/shards/train-00001.10m.npy``).

:func:`sealed` and :func:`seal_mismatch` protect JSON documents whose content gives meaning to other files
(a checkpoint's sidecar, a store's manifest): the seal is the SHA-256 of the rest of the document in canonical
JSON, so a hand edit (a band name, a normalisation constant) is detected where the document is read.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "TMP_SUFFIX",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable_dir",
    "fsync_dir",
    "os_error_message",
    "seal_mismatch",
    "sealed",
    "with_path",
]

#: Suffix of every temporary file :func:`atomic_write` creates (a crash can leave one; reruns remove them).
TMP_SUFFIX = ".tmp"


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename in ``path`` durable (a directory entry is only on disk after the directory is fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, durable: bool = True) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it to ``path``.

    ``durable`` fsyncs the file and the folder (what a checkpoint or store needs to survive a power loss).
    On any exception (a full disk, an interrupt) the temporary file is removed and the exception propagates;
    ``path`` keeps its previous content. An ``OSError`` that names no file (a ``write`` on a full disk) is
    raised again naming ``path``, so the user learns where the space ran out.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(path)
        # created here with the umask applied; ``write`` then opens it by name (safetensors, pandas, rasterio do)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(fd)
    except OSError as err:
        raise with_path(err, path.parent) from None
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise with_path(err, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def with_path(err: OSError, path: str | os.PathLike) -> OSError:
    """``err`` itself if it names a file, else the same error (class and errno) naming ``path``."""
    if err.filename is not None or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror, os.fspath(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda p: p.write_bytes(data), durable=durable)


def atomic_write_text(path: str | os.PathLike, text: str, *, durable: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), durable=durable)


def os_error_message(err: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an OS error: its cause in words and the path it concerns (``path`` when the error has none)."""
    reason = err.strerror or (errno.errorcode.get(err.errno, "") if err.errno else "") or str(err) or type(err).__name__
    reason = reason[:1].lower() + reason[1:]
    where = err.filename if err.filename is not None else path
    if where is None:
        return reason
    text = f"{reason}: {os.fsdecode(where)}"
    if err.filename2 is not None:
        text += f" -> {os.fsdecode(err.filename2)}"
    return text


def check_writable_dir(path: str | os.PathLike, *, what: str = "output folder") -> Path:
    """Create ``path`` if needed and prove it takes a file, before any long work starts.

    Raises ``OSError`` (a read-only file system, no permission, a file in the way) naming the folder.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{what} is a file, not a folder", str(path))
    path.mkdir(parents=True, exist_ok=True)
    probe = _tmp_name(path / ".landzoo-write-probe")
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    probe.unlink()
    return path


#: What a seal covers, written beside its digest so a reader of the file knows.
SEAL_COVERS = "every other key of this file, in canonical JSON (sorted keys, no spaces, UTF-8)"


def _seal_digest(doc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "seal"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sealed(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with a ``seal`` entry: the SHA-256 of everything else in it."""
    body = {k: v for k, v in doc.items() if k != "seal"}
    body["seal"] = {"sha256": _seal_digest(body), "covers": SEAL_COVERS}
    return body


def seal_mismatch(doc: Mapping[str, Any]) -> str | None:
    """``None`` if ``doc``'s seal matches its content; else why not (``"absent"`` when it has no seal)."""
    seal = doc.get("seal")
    if seal is None:
        return "absent"
    recorded = seal.get("sha256") if isinstance(seal, Mapping) else None
    try:
        digest = _seal_digest(doc)
    except ValueError:  # NaN or infinity: never in a file landzoo sealed
        return "content holds NaN or infinity, which landzoo never writes"
    if recorded == digest:
        return None
    return f"seal sha256 {str(recorded)[:12]}... vs content {digest[:12]}..."
