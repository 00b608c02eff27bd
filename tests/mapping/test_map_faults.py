"""Fault catalogue of `landzoo map`: each bad input is one line naming the file or band, a non-zero exit, and nothing
that claims success; and a run killed with SIGKILL, rerun, ends with the maps of an uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
from map_helpers import make_checkpoint, map_cli, outputs

from landzoo.cli import main
from landzoo.synthetic.s2_product import ScenePaths


def _copy(scene: ScenePaths, tmp_path: Path) -> Path:
    dst = tmp_path / scene.safe.name
    shutil.copytree(scene.safe, dst)
    return dst


def _fails(args: list[str], out: Path, capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    assert main(["map", *args, "--out", str(out), "--no-progress"]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("landzoo map: error: ")
    if out.is_dir():
        assert not list(out.glob("*_summary.json")) and not list(out.glob("*.tif")), list(out.iterdir())
        assert not list(out.glob(".*.tmp"))
    return err


def test_a_missing_band_is_named(scene, checkpoint, tmp_path, capsys) -> None:
    safe = _copy(scene, tmp_path)
    next(safe.glob("GRANULE/*/IMG_DATA/R20m/*_B05_20m.jp2")).unlink()
    err = _fails([str(checkpoint), str(safe)], tmp_path / "out", capsys)
    assert "no band B05" in err and str(safe) in err


def test_a_truncated_jp2_is_named(scene, checkpoint, tmp_path, capsys) -> None:
    safe = _copy(scene, tmp_path)
    (safe / "manifest.safe").unlink()  # nothing but the decoder can notice it then
    jp2 = next(safe.glob("GRANULE/*/IMG_DATA/R10m/*_B03_10m.jp2"))
    jp2.write_bytes(jp2.read_bytes()[: jp2.stat().st_size * 6 // 10])
    err = _fails([str(checkpoint), str(safe)], tmp_path / "out", capsys)
    assert jp2.name in err and "band B03" in err and "cannot read" in err


def test_a_damaged_jp2_is_caught_by_the_manifest(scene, checkpoint, tmp_path, capsys) -> None:
    """Damage in the middle of a JPEG 2000 file decodes without error; the checksum in manifest.safe catches it."""
    safe = _copy(scene, tmp_path)
    jp2 = next(safe.glob("GRANULE/*/IMG_DATA/R10m/*_B03_10m.jp2"))
    data = bytearray(jp2.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 4000] = b"\x5a" * 4000
    jp2.write_bytes(bytes(data))
    err = _fails([str(checkpoint), str(safe)], tmp_path / "out", capsys)
    assert jp2.name in err and "manifest.safe" in err and "MD5" in err


def test_a_20m_only_product_is_refused(scene, checkpoint, tmp_path, capsys) -> None:
    safe = _copy(scene, tmp_path)
    shutil.rmtree(next(safe.glob("GRANULE/*/IMG_DATA/R10m")))
    err = _fails([str(checkpoint), str(safe)], tmp_path / "out", capsys)
    assert "band B02 only at 20 m, 60 m" in err or "band B02 only at 20 m" in err
    assert "native 10 m" in err


def test_checkpoint_bands_the_scene_lacks(scene, tmp_path, capsys) -> None:
    ckpt = make_checkpoint(tmp_path / "all12.safetensors", bands="s2_all")
    folder = tmp_path / "bands"
    shutil.copytree(scene.tif, folder)
    next(folder.glob("*_B09_60m.tif")).unlink()
    err = _fails([str(ckpt), str(folder)], tmp_path / "out", capsys)
    assert "no band B09" in err and str(folder) in err


def test_an_unwritable_out_is_refused_before_work(scene, checkpoint, tmp_path, capsys) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should be")
    err = _fails([str(checkpoint), str(scene.safe)], blocker, capsys, code=1)
    assert str(blocker) in err and "is a file" in err
    err = _fails([str(checkpoint), str(scene.safe)], blocker / "maps", capsys, code=1)
    assert str(blocker) in err


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("l1c", "Level-1C"),
        ("not_a_scene", "neither a .SAFE folder"),
        ("bad_zip", "not a readable zip file"),
        ("stride", "--stride 700 m must divide"),
        ("missing", "does not exist"),
    ],
)
def test_more_bad_inputs(scene, checkpoint, tmp_path, capsys, setup: str, needle: str) -> None:
    args = []
    if setup == "l1c":
        safe = _copy(scene, tmp_path)
        (safe / "MTD_MSIL2A.xml").rename(safe / "MTD_MSIL1C.xml")
        target = safe
    elif setup == "not_a_scene":
        target = tmp_path / "notes.txt"
        target.write_text("hello")
    elif setup == "bad_zip":
        target = tmp_path / "broken.zip"
        target.write_bytes(scene.zip.read_bytes()[:5000])
    elif setup == "stride":
        target, args = scene.safe, ["--stride", "700"]
    else:
        target = tmp_path / "nowhere.SAFE"
    err = _fails([str(checkpoint), str(target), *args], tmp_path / "out", capsys)
    assert needle in err


def _snapshot(out: Path, stems: list[str]) -> dict[str, object]:
    """Every map file's bytes; the summaries without what legitimately changes from run to run (timings)."""
    snap: dict[str, object] = {}
    for stem in stems:
        for kind, path in outputs(out, stem).items():
            if kind == "summary":
                s = json.loads(path.read_text())
                for key in ("timings_s", "windows_per_s"):
                    s.pop(key)
                snap[path.name] = s
            else:
                snap[path.name] = path.read_bytes()
    return snap


@pytest.mark.slow
def test_kill_9_during_a_multi_scene_run_then_rerun(
    scene: ScenePaths, old_scene: ScenePaths, checkpoint: Path, tmp_path: Path
) -> None:
    scenes = [str(scene.safe), str(scene.tif), str(old_scene.safe)]
    stems = sorted([scene.product, f"{scene.product}_tif", old_scene.product])
    args = [str(checkpoint), *scenes, "--no-progress", "--batch-size", "1"]
    whole = tmp_path / "whole"
    assert main(["map", *args, "--out", str(whole)]) == 0
    reference = _snapshot(whole, stems)

    out = tmp_path / "killed"
    proc = map_cli(*args, "--out", str(out))
    order = [Path(s).name.removesuffix(".SAFE") for s in sorted(scenes)]
    second = order[1]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / f"{order[0]}_summary.json").exists() and list(out.glob(f".{second}_*.tmp")):
            break
        time.sleep(0.005)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (out / f"{order[0]}_summary.json").exists()
    assert not (out / f"{second}_summary.json").exists()  # the interrupted scene does not look finished
    assert not (out / f"{order[2]}_summary.json").exists()
    finished_before = (out / f"{order[0]}_probs.tif").stat().st_mtime_ns

    rerun = map_cli(*args, "--out", str(out))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert f"skipped {order[0]}: finished" in stdout
    assert (out / f"{order[0]}_probs.tif").stat().st_mtime_ns == finished_before
    assert not list(out.glob(".*"))
    assert _snapshot(out, stems) == reference


@pytest.mark.slow
def test_slurm_array_script_splits_the_scenes(scene: ScenePaths, old_scene: ScenePaths, checkpoint: Path, tmp_path):
    """scripts/slurm/map-array.sbatch as two array tasks (srun replaced by a plain exec): each maps its own scene."""
    import os
    import subprocess
    import sys

    from map_helpers import REPO

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (fake / "srun").chmod(0o755)
    (fake / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (fake / "python").chmod(0o755)
    out = tmp_path / "maps"
    script = REPO / "scripts" / "slurm" / "map-array.sbatch"
    scenes = sorted([str(scene.safe), str(old_scene.safe)])
    procs = []
    for task in (0, 1):
        env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
        env.update(SLURM_ARRAY_TASK_ID=str(task + 3), SLURM_ARRAY_TASK_MIN="3", SLURM_ARRAY_TASK_COUNT="2")
        cmd = ["bash", str(script), str(checkpoint), str(out), *scenes, "--", "--dtype", "float16"]
        procs.append(
            subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    for task, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        assert f"(rank {task} of 2: 1 of 2 scenes)" in stdout
        assert f"mapped {Path(scenes[task]).name.removesuffix('.SAFE')}" in stdout
    for s in scenes:
        summary = json.loads((out / f"{Path(s).name.removesuffix('.SAFE')}_summary.json").read_text())
        assert summary["request"]["dtype"] == "float16" and summary["rank"]["world_size"] == 2
