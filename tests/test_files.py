"""landzoo.files: atomic writes follow the umask, name the path in OS errors, leave no temporary file."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from landzoo.files import atomic_write, atomic_write_text, check_writable_dir, os_error_message, seal_mismatch, sealed


@pytest.fixture
def umask():
    old = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask)
    finally:
        os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path: Path, umask, mask: int, mode: int) -> None:
    """Weights and exports were 0600 whatever the umask (tempfile.mkstemp); now like any other output."""
    umask(mask)
    path = atomic_write_text(tmp_path / "a.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_checkpoint_and_store_files_follow_the_umask(tmp_path: Path, umask) -> None:
    import torch

    from landzoo.checkpoint import DataContract, save_checkpoint

    umask(0o022)
    dc = DataContract.from_names("rgb", "ben19", 60)
    w = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.zeros(3)}, dc, arch="wrn10_2")
    for p in (w, w.with_suffix(".json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")

    def fail(p: Path) -> None:
        p.write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as info:
        atomic_write(target, fail)
    assert info.value.filename == str(target)  # the error names the file it was writing
    assert os_error_message(info.value) == f"no space left on device: {target}"
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_check_writable_dir(tmp_path: Path) -> None:
    assert check_writable_dir(tmp_path / "new" / "dir").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError) as info:
        check_writable_dir(blocker)
    assert os_error_message(info.value).endswith(f": {blocker}")


def test_seal_detects_any_edit() -> None:
    doc = sealed({"bands": ["B02", "B03"], "stats": {"B02": [1.0, 2.0]}})
    assert seal_mismatch(doc) is None
    assert seal_mismatch({k: v for k, v in doc.items() if k != "seal"}) == "absent"
    doc["stats"]["B02"][0] = 1.5
    assert seal_mismatch(doc).startswith("seal sha256 ")
