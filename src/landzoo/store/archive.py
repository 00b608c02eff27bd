"""Unpack a downloaded archive (``.tar``, ``.tar.gz``/``.tgz``, ``.zip``) so ``encode`` can read it in one command.

Why unpack rather than read members in place: a gzip stream cannot be seeked, and the readers need random
access (a split list names patches in an order unrelated to the archive's). One sequential pass decompresses
the whole archive (about the speed of gzip, a few hundred MB/s per core), then encoding runs in parallel as
for a folder. The unpacked copy is scratch: ``landzoo encode`` deletes it after a successful encode unless
asked to keep it.

Safety and resumption:

* members are extracted with Python's ``data`` filter: absolute paths, ``..`` components, links that point
  outside the folder and special files are refused with an error naming the member;
* a member already on disk with the right size is skipped (a rerun after an interruption only pays the
  decompression, not the writes); a ``.unpacked`` marker, written last, says the whole archive is there.
``.tar.zst`` (BigEarthNet v2's downloads) is not readable by Python 3.11's ``tarfile``: unpack it with
``tar --zstd -xf`` and pass the folder.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path
from typing import IO, Any

from landzoo.store.format import StoreError

__all__ = ["ARCHIVE_SUFFIXES", "dataset_root", "is_archive", "unpack_archive"]

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
_MARKER = ".unpacked"


def is_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file named like an archive this module unpacks (or a ``.tar.zst``, refused later)."""
    name = Path(path).name.lower()
    return Path(path).is_file() and (name.endswith(ARCHIVE_SUFFIXES) or name.endswith((".tar.zst", ".tzst")))


class _Counting:
    """A read-only file wrapper that reports the bytes read (the compressed position, for the progress bar)."""

    def __init__(self, fh: IO[bytes], bar: Any) -> None:
        self._fh, self._bar = fh, bar

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._bar.update(len(data))
        return data


def unpack_archive(archive: str | os.PathLike, dest: str | os.PathLike, *, progress: bool = True) -> Path:
    """Extract ``archive`` into ``dest`` (created), resuming a partial extraction; returns ``dest``."""
    from tqdm import tqdm

    archive, dest = Path(archive), Path(dest)
    name = archive.name.lower()
    if name.endswith((".tar.zst", ".tzst")):
        raise StoreError(f"{archive}: zstd tar archives need `tar --zstd -xf {archive.name}`; then encode the folder")
    if not name.endswith(ARCHIVE_SUFFIXES):
        raise StoreError(f"{archive}: not an archive landzoo unpacks ({', '.join(ARCHIVE_SUFFIXES)})")
    if (dest / _MARKER).is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    size = archive.stat().st_size
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"unpacking {archive.name}", disable=not progress) as bar:
        try:
            if name.endswith(".zip"):
                _unzip(archive, dest, bar)
            else:
                with open(archive, "rb") as raw, tarfile.open(fileobj=_Counting(raw, bar), mode="r|*") as tar:
                    for member in tar:
                        target = dest / member.name
                        if member.isfile() and target.is_file() and target.stat().st_size == member.size:
                            continue  # extracted by an interrupted earlier run
                        try:
                            tar.extract(member, dest, filter="data")
                        except tarfile.FilterError as err:
                            raise StoreError(f"{archive}: refusing member {member.name!r} ({err})") from None
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
            raise StoreError(f"{archive} is not a readable archive or is truncated ({err})") from None
    (dest / _MARKER).write_text(f"{archive.resolve()}\n", encoding="utf-8")
    return dest


def _unzip(archive: Path, dest: Path, bar: Any) -> None:
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(root) or Path(info.filename).is_absolute():
                raise StoreError(f"{archive}: refusing member {info.filename!r} (it points outside the folder)")
            bar.update(info.compress_size)
            if info.is_dir() or (target.is_file() and target.stat().st_size == info.file_size):
                continue
            zf.extract(info, dest)


def dataset_root(dest: str | os.PathLike) -> Path:
    """The folder a reader should open: ``dest`` itself, or its only top-level folder (``BigEarthNet-v1.0/``...)."""
    dest = Path(dest)
    entries = [p for p in dest.iterdir() if p.name != _MARKER]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
