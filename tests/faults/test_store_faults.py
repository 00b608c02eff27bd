"""Fault catalogue, encode and store: a full disk, a dead worker, leftovers of a killed run, a read-only store.

Each test injects one fault into a real encode (a subprocess, as a user runs it) and asserts the exact outcome:
a one-line error naming the path, a non-zero exit, no hang, and a rerun that ends with the store an
uninterrupted encode writes.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _faults import cli_error_line, forked_landzoo

ENCODE = ("encode", "--dataset", "bigearthnet-v1", "--shard-records", "8", "--quiet")


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(ben_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The store an uninterrupted encode (2 workers) writes, file by file."""
    out = tmp_path_factory.mktemp("ref") / "store"
    proc = forked_landzoo(*ENCODE, "--workers", "2", str(ben_raw), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return tree(out)


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("workers", [1, 2])
def test_file_size_limit_during_encode_is_one_line_then_rerun_is_identical(
    ben_raw: Path, reference: dict[str, bytes], tmp_path: Path, workers: int
) -> None:
    """A write past RLIMIT_FSIZE (EFBIG, errno 27: what a quota does) names the file; no hang, no bus error."""
    out = tmp_path / "store"
    args = (*ENCODE, "--workers", str(workers), str(ben_raw), "--out", str(out))
    proc = forked_landzoo(*args, timeout=60, preexec=lambda: _limit_file_size(500_000))
    line = cli_error_line(proc, "encode")
    assert proc.returncode == 1
    assert "file too large: " in line and str(out / "shards") in line, line
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    # what a kill -9 can leave: a marker's temporary file; the rerun (holding the lock) removes it
    (out / "shards" / ".train-00001.done.json.123.abcdef01.tmp").write_text("{")
    proc = forked_landzoo(*args)
    assert proc.returncode == 0, proc.stderr
    assert tree(out) == reference  # no temporary file, no lock file left: exactly the uninterrupted store
    assert not [name for name in reference if name.endswith((".lock", ".tmp"))]


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root in a mount namespace that allows it)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_full_disk_during_encode_is_one_line_then_rerun_after_freeing_space_is_identical(
    ben_raw: Path, reference: dict[str, bytes], tmp_path: Path, workers: int
) -> None:
    """A real ENOSPC part-way (a 3 MiB file system; the store needs about 6.5): before the fix, 2 workers hung."""
    with _tmpfs(tmp_path / "disk", "3m") as disk:
        out = disk / "store"
        args = (*ENCODE, "--workers", str(workers), str(ben_raw), "--out", str(out))
        proc = forked_landzoo(*args, timeout=60)
        line = cli_error_line(proc, "encode")
        assert "no space left on device: " in line and str(out) in line, line
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        proc = forked_landzoo(*args)
        assert proc.returncode == 0, proc.stderr
        assert tree(out) == reference


def test_a_dead_worker_stops_the_encode_with_an_error_not_a_hang(tmp_path: Path) -> None:
    """A worker killed by a signal (here: it SIGKILLs itself reading patch 5, as the OOM killer would)."""
    from store_fakes import FakeReader

    from landzoo.store.encode import encode_reader
    from landzoo.store.format import StoreError

    class Killed(FakeReader):
        def _read(self, record):  # type: ignore[no-untyped-def]
            if record.meta["index"] == 5 and os.getpid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)
            return super()._read(record)

    parent = os.getpid()
    (tmp_path / "raw").mkdir()
    reader = Killed(tmp_path / "raw", n=24)
    t0 = time.monotonic()
    with pytest.raises(StoreError, match=r"encode worker process died .* run the same command again"):
        encode_reader(reader, tmp_path / "store", workers=2, shard_records=4, progress=False)
    assert time.monotonic() - t0 < 60
    assert not list((tmp_path / "store").rglob("*.tmp"))


@contextlib.contextmanager
def _read_only_view(src: Path, view: Path) -> Iterator[Path]:
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(view)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (needs root in a mount namespace that allows it)")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_a_read_only_store_is_read_and_a_read_only_output_is_one_line(
    ben_store: Path, ben_raw: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    with _read_only_view(ben_store, tmp_path / "ro") as ro:
        proc = forked_landzoo(
            "test",
            str(tiny_checkpoint),
            "--data",
            str(ro),
        )
        assert proc.returncode == 0, proc.stderr
        proc = forked_landzoo("verify", str(ro))
        assert proc.returncode == 0, proc.stderr
        proc = forked_landzoo(*ENCODE, str(ben_raw), "--out", str(ro / "again"))
        line = cli_error_line(proc, "encode")
        assert "read-only file system: " in line and str(ro) in line, line


def test_sigterm_during_encode_unwinds_then_rerun_is_identical(tmp_path: Path) -> None:
    """SIGTERM (preemption, `kill`) in the middle of an encode: the CLI's handler unwinds, temporary files go,
    the complete shards stay, and the same call finishes the store an uninterrupted encode writes."""
    from store_fakes import make_reader

    from landzoo.cli import Terminated, _terminate
    from landzoo.store.encode import encode_reader

    encode_reader(
        make_reader(tmp_path / "raw", n=48), tmp_path / "reference", workers=2, shard_records=4, progress=False
    )
    out = tmp_path / "store"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: what `landzoo encode` does under its SIGTERM handler
        code = 1
        try:
            signal.signal(signal.SIGTERM, _terminate)
            reader = make_reader(tmp_path / "raw", n=48, delay=0.02)
            encode_reader(reader, out, workers=2, shard_records=4, progress=False)
            code = 0
        except Terminated:
            code = 143
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("shards/*.done.json"))) < 2:
        time.sleep(0.005)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 143
    assert not (out / "manifest.json").exists() and not list(out.rglob("*.tmp"))
    encode_reader(make_reader(tmp_path / "raw", n=48), out, workers=2, shard_records=4, progress=False)
    assert tree(out) == tree(tmp_path / "reference")
