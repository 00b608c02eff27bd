"""``landzoo transfer`` end to end on a raw synthetic SEN12MS folder (fast settings) and every bad input."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import timm
import torch
from transfer_synth import ARCH, ARCH_KWARGS, random_checkpoint, sen12ms_store

from landzoo import contract
from landzoo.cli import main


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    store = sen12ms_store(root)
    from transfer_synth import _CACHE

    return {"root": root, "store": store, "raw": _CACHE["s12-raw"], "ckpt": random_checkpoint(root)}


FAST = ["--fractions", "0.5", "--seeds", "0", "--epochs", "2", "--min-steps", "0", "--batch-size", "32", "--quiet"]


def _fail(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("landzoo transfer: error: ")
    return err


def test_cli_on_a_raw_folder_with_imagenet_weights(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Raw folder (encoded into OUT/store), three initialisations, linear probe; ImageNet from a local timm file."""
    torch.manual_seed(5)
    net = timm.create_model(ARCH, pretrained=False, in_chans=3, num_classes=1000, img_size=32, init="torch")
    weights = tmp_path / "wrn_imagenet.pth"
    torch.save(net.state_dict(), weights)  # timm's own key names (no "backbone." prefix)
    out = tmp_path / "out"
    argv = ["transfer", "--from", str(env["ckpt"]), "--dataset", "sen12ms", "--data", str(env["raw"]), "--out", str(out),
            "--mode", "linear", "--imagenet-weights", str(weights), "--workers", "0", *FAST]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| zoo | 0.5 |" in printed and "| random | 0.5 |" in printed and "| imagenet | 0.5 |" in printed
    assert (out / "store" / "manifest.json").is_file()
    for name in ("transfer.json", "transfer_runs.csv", "transfer_table.csv", "transfer_table.md", "report.md"):
        assert (out / name).is_file(), name
    assert (out / "score_vs_fraction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()  # self-contained: the plot inlined, a row per initialisation
    assert not re.search(r'(src|href)="(?!data:)', page) and page.count("data:image/png;base64,") == 1
    assert all(re.search(rf'<td class="text">{init}</td><td>0.5</td>', page) for init in ("zoo", "random", "imagenet"))
    with open(out / "transfer_runs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["init"] for r in rows] == ["zoo", "random", "imagenet"]
    assert all(r["hardware"] and float(r["train_time_s"]) > 0 and float(r["infer_img_s_e2e"]) > 0 for r in rows)
    summary = json.loads((out / "transfer.json").read_text())
    assert summary["imagenet"].startswith("compared")
    # ImageNet RGB kernels kept bit-exactly under their band names; the other 7 bands start at zero (nothing dropped)
    rep = summary["adaptation"]["imagenet"]
    assert rep["kept"] == ["B02", "B03", "B04"] and rep["alpha"] == 0.0
    from landzoo.checkpoint import load_checkpoint

    state, meta = load_checkpoint(out / "runs" / "imagenet" / "f0.5_s0" / "model.safetensors")
    stem = state["backbone.stem.0.weight"]
    src = net.state_dict()["stem.0.weight"]
    for b, rgb_channel in (("B04", 0), ("B03", 1), ("B02", 2)):
        assert torch.equal(stem[:, meta.contract.bands.index(b)], src[:, rgb_channel]), b
    for b in ("B05", "B11", "B12"):
        assert torch.count_nonzero(stem[:, meta.contract.bands.index(b)]) == 0
    # the new checkpoint's contract carries the target's statistics, not BigEarthNet's
    assert meta.contract.class_set == "sen12ms_simple10"
    assert meta.contract.stats["B02"] == pytest.approx(tuple(summary["target"]["stats"]["B02"]))
    assert meta.contract.stats["B02"] != pytest.approx(contract.BEN_BAND_STATS["B02"])
    # rebuilt from that checkpoint (zoo loader and training loader alike), the model normalises with the target's
    # statistics and takes SEN12MS's bands as one 10 m group
    from landzoo.checkpoint import build_model_from_checkpoint
    from landzoo.training.run import load_module

    assert meta.contract.native is False
    rebuilt, _ = build_model_from_checkpoint(out / "runs" / "imagenet" / "f0.5_s0" / "model.safetensors")
    module = load_module(out / "runs" / "imagenet" / "f0.5_s0" / "model.safetensors")
    assert module.contract["native"] is False
    assert module.contract["stats"]["B02"] == pytest.approx(list(meta.contract.stats["B02"]))
    for model in (rebuilt, module.model):
        (group, names), *_ = model.transform.groups.items()
        assert names == meta.contract.bands and len(model.transform.groups) == 1
        mean = getattr(model.transform, f"mean_{group}").flatten().tolist()
        assert mean == pytest.approx([meta.contract.stats[b][0] for b in names])
    x = {group: torch.randint(0, 4000, (2, len(meta.contract.bands), 64, 64), dtype=torch.int32)}
    rebuilt.eval(), module.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), module(x))
    # a second call reuses every finished run
    assert main(argv) == 0
    again = json.loads((out / "transfer.json").read_text())
    assert [r["score"] for r in again["runs"]] == [r["score"] for r in summary["runs"]]


def test_checkpoint_without_band_names(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = tmp_path / "nobands.safetensors"
    shutil.copy(env["ckpt"], ck)
    side = json.loads(env["ckpt"].with_suffix(".json").read_text())
    side["contract"]["bands"] = []
    del side["seal"]  # a sidecar of schema 1 (before seals), as an older landzoo wrote it
    side["schema_version"] = 1
    ck.with_suffix(".json").write_text(json.dumps(side))
    err = _fail(
        [
            "transfer",
            "--from",
            str(ck),
            "--dataset",
            "sen12ms",
            "--data",
            str(env["store"]),
            "--out",
            str(tmp_path / "o"),
            *FAST,
        ],
        capsys,
    )
    assert "no band names" in err


def test_no_band_in_common(env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck = random_checkpoint(tmp_path, bands="s1", name="s1")
    err = _fail(
        [
            "transfer",
            "--from",
            str(ck),
            "--dataset",
            "sen12ms",
            "--data",
            str(env["store"]),
            "--out",
            str(tmp_path / "o"),
            *FAST,
        ],
        capsys,
    )
    assert "no band in common" in err and "VV,VH" in err


@pytest.mark.parametrize("fractions", ["0.1,1.5", "0", "-0.2", "abc"])
def test_fraction_outside_unit_interval(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], fractions: str
) -> None:
    argv = ["transfer", "--from", str(env["ckpt"]), "--dataset", "sen12ms", "--data", str(env["store"]),
            "--out", str(tmp_path / "o"), *FAST, "--fractions", fractions]  # fmt: skip
    err = _fail(argv, capsys)
    assert "(0, 1]" in err


def test_missing_label_file(env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(env["raw"], raw)
    shutil.rmtree(raw / "labels")
    argv = [
        "transfer",
        "--from",
        str(env["ckpt"]),
        "--dataset",
        "sen12ms",
        "--data",
        str(raw),
        "--out",
        str(tmp_path / "o"),
        *FAST,
    ]
    err = _fail(argv, capsys)
    assert "IGBP_probability_labels.pkl" in err and "does not exist" in err


def test_other_bad_options(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ["transfer", "--dataset", "sen12ms", "--data", str(env["store"]), "--out", str(tmp_path / "o"), *FAST]
    assert "needs --imagenet-weights" in _fail([*base, "--from", str(env["ckpt"]), "--inits", "zoo,imagenet"], capsys)
    err = _fail([*base, "--from", ARCH], capsys)
    assert "ships no weights" in err  # an architecture name is not a checkpoint
    assert "does not exist" in _fail(
        [*base, "--from", str(env["ckpt"]), "--imagenet-weights", str(tmp_path / "x.pth")], capsys
    )
    monkeypatch.chdir(tmp_path)  # without --out: the default folder must not be created for a failing run
    assert "--data" in _fail(
        ["transfer", "--from", str(env["ckpt"]), "--dataset", "sen12ms", "--data", str(tmp_path / "none"), *FAST],
        capsys,
    )
    assert not (tmp_path / "transfer-out").exists()
    assert ARCH_KWARGS["input_size"] == 32  # the fixtures' model (sanity of the shared helper)


def test_linear_probe_shares_one_random_encoder_per_seed_and_reuse_checks_the_data(
    env: dict[str, Path], tmp_path: Path
) -> None:
    """Every fraction of a seed probes the same frozen random encoder its cached features came from; a finished
    run is reused only for the same target data."""
    from landzoo.checkpoint import load_checkpoint
    from landzoo.transfer.run import TransferConfig, run_transfer

    out = tmp_path / "o"
    cfg = TransferConfig(
        source=str(env["ckpt"]), dataset="sen12ms", data=str(env["store"]), out=str(out), fractions=(0.5, 1.0),
        seeds=(0,), mode="linear", inits=("random",), epochs=2, min_steps=0, batch_size=32, workers=0,
    )  # fmt: skip
    first = run_transfer(cfg, progress=False)
    a, _ = load_checkpoint(out / "runs" / "random" / "f0.5_s0" / "model.safetensors")
    b, _ = load_checkpoint(out / "runs" / "random" / "f1_s0" / "model.safetensors")
    differ = {k for k in a if not torch.equal(a[k], b[k])}
    assert differ and all(k.startswith("backbone.fc.") for k in differ), differ  # only the trained head differs
    # the same call reuses; another store (a copy whose index differs by one byte of metadata) does not
    assert [r["score"] for r in run_transfer(cfg, progress=False)["runs"]] == [r["score"] for r in first["runs"]]
    other = tmp_path / "store-copy"
    shutil.copytree(env["store"], other)
    import pyarrow.parquet as pq

    table = pq.read_table(other / "index.parquet")
    pq.write_table(table.replace_schema_metadata({b"note": b"another store"}), other / "index.parquet")
    # a consistent store: its manifest records the new index's SHA-256 and is sealed again
    import hashlib

    from landzoo.files import sealed
    from landzoo.store.format import canonical_json

    manifest = json.loads((other / "manifest.json").read_text())
    manifest["index_sha256"] = hashlib.sha256((other / "index.parquet").read_bytes()).hexdigest()
    (other / "manifest.json").write_bytes(canonical_json(sealed(manifest)))
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs" / "random").rglob("result.json")}
    from dataclasses import replace

    run_transfer(replace(cfg, data=str(other)), progress=False)
    assert all(p.stat().st_mtime_ns != t for p, t in mtimes.items())  # retrained, not reused


def test_single_label_checkpoints_are_refused_by_test_and_predict(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from landzoo.transfer.run import TransferConfig, run_transfer

    out = tmp_path / "single"
    cfg = TransferConfig(
        source=str(env["ckpt"]), dataset="sen12ms", data=str(env["store"]), out=str(out), fractions=(1.0,),
        seeds=(0,), mode="linear", inits=("random",), single_label=True, epochs=1, min_steps=0, batch_size=32,
        workers=0,
    )  # fmt: skip
    run_transfer(cfg, progress=False)
    ckpt = out / "runs" / "random" / "f1_s0" / "model.safetensors"
    for argv in (["test", str(ckpt), "--data", str(env["store"])],
                 ["predict", str(ckpt), "--data", str(env["store"]), "--out", str(tmp_path / "p.csv")]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "single-label (softmax) model" in err, err
