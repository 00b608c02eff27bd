"""``landzoo export``: the model-hub folder, its model card and config, and the CLI's errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from landzoo.checkpoint import CheckpointError, DataContract, load_checkpoint, save_checkpoint
from landzoo.cli import main
from landzoo.contract import BEN19
from landzoo.export import export_checkpoint

METRICS = {
    "test_f1_micro": 0.7123456,
    "test_f1_macro": 0.6054321,
    "val_f1_micro": 0.7311111,
    "test_map_macro": 0.6677777,
}


def make_checkpoint(tmp_path: Path, bands: str = "B04,B03,B02,B08") -> Path:
    torch.manual_seed(1)
    state = {"stem.weight": torch.randn(8, 4, 3, 3), "head.weight": torch.randn(19, 8), "head.bias": torch.zeros(19)}
    dc = DataContract.from_names(bands, "ben19", 120)
    cfg = {"protocol": "paper", "optim": {"name": "adam", "lr": 0.0001}, "epochs": 30}
    return save_checkpoint(
        tmp_path / "run" / "model.safetensors", state, dc, arch="resnet50", arch_kwargs={}, config=cfg, metrics=METRICS
    )


def test_export_folder_contents(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "hub"
    paths = export_checkpoint(ckpt, out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "landzoo.json", "model.safetensors"]
    assert set(paths) == {"weights", "sidecar", "config", "card"}
    assert (out / "model.safetensors").read_bytes() == ckpt.read_bytes()

    sidecar = json.loads(ckpt.with_suffix(".json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["contract"] == sidecar["contract"]
    assert config["architecture"] == "resnet50" and config["in_chans"] == 4 and config["num_classes"] == 19

    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "landzoo" and "resnet50" in front["tags"]
    assert "`B04,B03,B02,B08`" in card  # band names in channel order
    rows = [line for line in card.splitlines() if line.startswith("| ") and " S2 " in line]
    assert [r.split("|")[2].strip() for r in rows] == ["B04", "B03", "B02", "B08"]
    for key, value in METRICS.items():
        assert f"{value:.4f}" in card, key
    f1_row = next(line for line in card.splitlines() if line.startswith("| f1_micro |"))
    assert f1_row == "| f1_micro | 0.7123 | 0.7311 |"  # one column per split (test, val)
    assert card.index(BEN19[0]) < card.index(BEN19[1]) < card.index(BEN19[-1])
    assert "load_checkpoint" in card and "adam" in card and sidecar["landzoo_version"] in card

    # the exported folder is itself a checkpoint, with identical tensors and contract
    state, meta = load_checkpoint(out)
    orig, orig_meta = load_checkpoint(ckpt)
    assert all(torch.equal(state[k], orig[k]) for k in orig)
    assert meta.contract == orig_meta.contract and meta.metrics == METRICS


def test_export_refuses_non_empty_destination(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "hub"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not empty"):
        export_checkpoint(ckpt, out)
    export_checkpoint(ckpt, out, overwrite=True)
    assert (out / "README.md").is_file()


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint(tmp_path)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "hub")]) == 0
    assert "README.md" in capsys.readouterr().out
    assert (tmp_path / "hub" / "model.safetensors").is_file()


def test_cli_export_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--out" in out and "CHECKPOINT" in out


def test_cli_export_bad_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["export", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "hub")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("landzoo export: error:") and "nope.safetensors" in err
    assert not (tmp_path / "hub").exists()


def test_cli_export_checkpoint_without_bands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint(tmp_path)
    side = ckpt.with_suffix(".json")
    data = json.loads(side.read_text())
    del data["contract"]["bands"]
    side.write_text(json.dumps(data))
    assert main(["export", str(ckpt), "--out", str(tmp_path / "hub")]) == 2
    err = capsys.readouterr().err
    assert "no band names" in err and err.count("\n") == 1
