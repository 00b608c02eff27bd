"""Fault catalogue, scoring: a damaged store or checkpoint is never scored silently (`landzoo test`/`predict`).

Each fault is injected into a copy of the shared store or checkpoint, then the CLI is run as a user runs it:
one line naming the patch or file, a non-zero exit, and no output file that looks finished.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _faults import cli_error_line, copy_tree, forked_landzoo


def _flip_a_byte(store: Path) -> str:
    """Flip one bit of one record's 20 m pixels (its CRC no longer matches); returns that patch's id."""
    from landzoo.store.reader import Store

    s = Store(store)
    victim = int(np.flatnonzero(s.split == "test")[1])
    path = store / "shards" / f"{s.shard_names[s.shard_of[victim]]}.20m.npy"
    mm = np.load(path, mmap_mode="r+")
    mm[int(s.offset[victim]), 1, 5, 5] ^= 0x0004
    mm.flush()
    del mm
    return str(s.ids[victim])


@pytest.mark.parametrize("command", ["test", "predict"])
def test_a_flipped_byte_in_a_shard_stops_scoring_by_default(
    ben_store: Path, tiny_checkpoint: Path, tmp_path: Path, command: str
) -> None:
    store = copy_tree(ben_store, tmp_path / "store")
    victim = _flip_a_byte(store)
    out = tmp_path / ("preds.parquet" if command == "predict" else "metrics.json")
    proc = forked_landzoo(command, str(tiny_checkpoint), "--data", str(store), "--out", str(out))
    line = cli_error_line(proc, command)
    assert f"patch {victim}" in line and "checksum mismatch" in line, line
    assert not out.exists()


def test_an_edited_sidecar_is_refused_by_test(ben_store: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Editing contract.stats changed test F1 from 0.182 to 0.285 silently; the sidecar's seal refuses it now."""
    ckpt = copy_tree(tiny_checkpoint, tmp_path / "run")
    side = json.loads((ckpt / "model.json").read_text())
    side["contract"]["stats"]["B04"]["mean"] *= 1.5
    (ckpt / "model.json").write_text(json.dumps(side, indent=2))
    proc = forked_landzoo("test", str(ckpt), "--data", str(ben_store))
    line = cli_error_line(proc, "test")
    assert "model.json was edited or damaged" in line, line


@pytest.mark.parametrize("cut", [0, 100, -10])
def test_a_truncated_weights_file_is_one_line(ben_store: Path, tiny_checkpoint: Path, tmp_path: Path, cut: int) -> None:
    ckpt = copy_tree(tiny_checkpoint, tmp_path / "run")
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:cut])  # empty, inside the header, or missing its last bytes
    proc = forked_landzoo("test", str(ckpt), "--data", str(ben_store))
    line = cli_error_line(proc, "test")
    assert "model.safetensors" in line, line


def test_checkpoint_writing_on_a_full_disk_names_the_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The weights do not fit (RLIMIT_FSIZE: EFBIG, as a quota): one error naming the file, no temporary left."""
    import resource

    import torch

    from landzoo.checkpoint import CheckpointError, read_meta, save_checkpoint

    meta = read_meta(tiny_checkpoint)
    state = {"w": torch.zeros(1 << 16)}
    out = tmp_path / "full" / "model.safetensors"
    out.parent.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        with pytest.raises(CheckpointError, match=rf"cannot write {out}: file too large: .*model\.safetensors"):
            save_checkpoint(out, state, meta.contract, arch=meta.arch)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list(out.parent.iterdir()) == []


def test_an_unwritable_output_is_refused_before_scoring(ben_store: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`predict --out` in a folder that cannot take a file: refused at once, naming it (not after scoring)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    proc = forked_landzoo("predict", str(tiny_checkpoint), "--data", str(ben_store), "--out", str(blocker / "p.csv"))
    line = cli_error_line(proc, "predict")
    assert str(blocker) in line, line
