"""Unpack a downloaded archive (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz``, ``.zip``) so ``encode``
can read it in one command (bigearthnet-common ships its examples as ``.tar.bz2``).

Why unpack rather than read members in place: a gzip stream cannot be seeked, and the readers need random
access (a split list names patches in an order unrelated to the archive's). One sequential pass decompresses
the whole archive (about the speed of gzip, a few hundred MB/s per core), then encoding runs in parallel as
for a folder. The unpacked copy is scratch: ``landzoo encode`` deletes it after a successful encode unless
asked to keep it.

Safety and resumption:

* every member is checked before anything is written or skipped: an absolute name, a ``..`` component, a link
  that points outside the folder (or anywhere absolute) and special files are refused with an error naming the
  member (Python's ``data`` filter only strips a leading ``/``, and an earlier version skipped a ``../`` member
  whose outside target already existed: nothing outside the folder may even be looked at);
* a member already on disk with the right size is skipped (a rerun after an interruption only pays the
  decompression, not the writes); a ``.unpacked`` marker, written last, says the whole archive is there.
``.tar.zst`` (BigEarthNet v2's downloads) is not readable by Python 3.11's ``tarfile``: unpack it with
``tar --zstd -xf`` and pass the folder.
"""

from __future__ import annotations

import os
import re
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

from landzoo.store.format import StoreError

__all__ = ["ARCHIVE_SUFFIXES", "dataset_root", "is_archive", "unpack_archive"]

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".zip")
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
                        _check_member(
                            archive, member.name, member.linkname if member.issym() or member.islnk() else None
                        )
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
            _check_member(archive, info.filename, None)
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(root):  # pragma: no cover - _check_member refuses every such name
                raise StoreError(f"{archive}: refusing member {info.filename!r} (it points outside the folder)")
            bar.update(info.compress_size)
            if info.is_dir() or (target.is_file() and target.stat().st_size == info.file_size):
                continue
            zf.extract(info, dest)


def _check_member(archive: Path, name: str, link: str | None) -> None:
    """Refuse a member whose name (or link target) is absolute or climbs out of the folder with ``..``."""
    for what, value in (("name", name), ("link target", link)):
        if value is None:
            continue
        parts = PurePosixPath(value.replace("\\", "/")).parts
        if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
            raise StoreError(f"{archive}: refusing member {name!r} (its {what} is absolute)")
        depth = 0
        base = PurePosixPath(name).parent.parts if what == "link target" else ()
        for part in (*base, *parts):
            depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
            if depth < 0:
                raise StoreError(f"{archive}: refusing member {name!r} (its {what} points outside the folder)")


def dataset_root(dest: str | os.PathLike) -> Path:
    """The folder a reader should open: ``dest`` itself, or its only top-level folder (``BigEarthNet-v1.0/``...)."""
    dest = Path(dest)
    entries = [p for p in dest.iterdir() if p.name != _MARKER]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
