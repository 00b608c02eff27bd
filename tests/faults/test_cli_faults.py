"""Fault catalogue, command line: the wrong kind of input gets the message that names the next step.

A GeoTIFF where a store is expected points to `landzoo map`; a raw dataset folder to `landzoo encode`; an
interrupted encode to rerunning it; a closed pipe ends quietly; a file that is no archive is named as such.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from _faults import REPO, cli_error_line, copy_tree, forked_landzoo


@pytest.mark.parametrize("command", ["test", "predict"])
@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda raw, tmp: next(raw.rglob("*_B02.tif")), r"is a file, not a landzoo store; .*`landzoo map"),
        (lambda raw, tmp: raw, r"is a raw dataset folder, not a store: encode it first with `landzoo encode"),
        (lambda raw, tmp: tmp / "typo", r"data store .*typo does not exist; build one with `landzoo encode`"),
    ],
    ids=["geotiff", "raw folder", "absent"],
)
def test_data_that_is_not_a_store(
    ben_raw: Path, tiny_checkpoint: Path, tmp_path: Path, command: str, make, expect: str
) -> None:
    data = make(ben_raw, tmp_path)
    extra = ["--out", str(tmp_path / "p.csv")] if command == "predict" else []
    line = cli_error_line(forked_landzoo(command, str(tiny_checkpoint), "--data", str(data), *extra), command)
    assert re.search(expect, line), line


def test_an_interrupted_encode_is_named_as_such(ben_store: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    store = copy_tree(ben_store, tmp_path / "store")
    (store / "manifest.json").unlink()  # what a kill -9 before the last write leaves
    line = cli_error_line(forked_landzoo("test", str(tiny_checkpoint), "--data", str(store)), "test")
    assert "unfinished landzoo store" in line and "run the same `landzoo encode` command again" in line, line


def test_negative_batch_size_is_refused_by_the_parser(ben_store: Path, tiny_checkpoint: Path) -> None:
    proc = forked_landzoo("test", str(tiny_checkpoint), "--data", str(ben_store), "--batch-size", "-4")
    assert proc.returncode == 2 and "--batch-size: must be at least 1, not -4" in proc.stderr


def test_a_closed_pipe_ends_quietly(ben_store: Path) -> None:
    """`landzoo info STORE | head` ended in a BrokenPipeError traceback."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "landzoo", "info", str(ben_store)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before anything is written, as `head` after its lines
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, stderr[-3000:]
    assert stderr == "", stderr


def test_encode_names_a_file_that_is_no_archive_and_reads_tar_bz2(ben_raw: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    line = cli_error_line(
        forked_landzoo("encode", "--dataset", "bigearthnet-v1", str(notes), "--out", str(tmp_path / "s")), "encode"
    )
    assert f"{notes} is a file: SRC is the dataset folder or its downloaded archive (.tar, " in line, line
    archive = tmp_path / "BigEarthNet-v1.0.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(ben_raw, arcname="BigEarthNet-v1.0")
    proc = forked_landzoo(
        "encode",
        "--dataset",
        "bigearthnet-v1",
        str(archive),
        "--out",
        str(tmp_path / "s2"),
        "--quiet",
        "--workers",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s2" / "manifest.json").is_file()
