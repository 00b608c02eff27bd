"""``landzoo export``: a folder timm loads by itself, with the data contract in config.json and the model card.

Everything is read back through the ecosystem's entry points: ``timm.create_model("local-dir:...")`` (for a timm
architecture in a fresh interpreter that never imports landzoo), ``timm.create_model(name, pretrained=True,
pretrained_cfg_overlay=dict(file=...))``, ``timm.data.resolve_data_config``, ``safetensors.safe_open``,
``torch.jit.load``; and through :func:`landzoo.load_model` and ``load_checkpoint``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml
from export_helpers import raw_groups, save_trained_like
from safetensors import safe_open

import landzoo
from landzoo import contract
from landzoo.checkpoint import CheckpointError, load_checkpoint
from landzoo.cli import main
from landzoo.contract import BEN19
from landzoo.export import export_checkpoint
from landzoo.export import graphs as export_graphs

RESNET_MINI = {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64], "stem_width": 8}
BANDS = "B04,B03,B02,B08"  # not the store's order: the contract must carry it through


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.nn.Module]:
    """A ResNet-50-mini checkpoint on four bands in a permuted order, exported (folder only) with umask 022."""
    tmp = tmp_path_factory.mktemp("export")
    ckpt, model = save_trained_like(tmp / "run", "resnet50", RESNET_MINI, bands=BANDS)
    old = os.umask(0o022)
    try:
        export_checkpoint(ckpt, tmp / "hub")
    finally:
        os.umask(old)
    return ckpt, tmp / "hub", model


def test_folder_holds_timm_keyed_weights_and_the_contract(exported) -> None:
    ckpt, hub, model = exported
    assert sorted(p.name for p in hub.iterdir()) == ["README.md", "config.json", "landzoo.json", "model.safetensors"]
    for p in hub.iterdir():  # readable by the group and others, as the umask says
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p.name

    with safe_open(str(hub / "model.safetensors"), framework="pt") as f:
        keys, header = set(f.keys()), f.metadata()
        tensors = {k: f.get_tensor(k) for k in keys}
    original = model.state_dict()
    assert keys == {k.removeprefix("backbone.") for k in original} and not any(k.startswith("backbone.") for k in keys)
    assert all(torch.equal(tensors[k.removeprefix("backbone.")], v) for k, v in original.items())
    assert header["landzoo_bands"] == BANDS and header["landzoo_key_prefix"] == "backbone."

    config = json.loads((hub / "config.json").read_text())
    sidecar = json.loads(ckpt.with_suffix(".json").read_text())
    assert config["architecture"] == "resnet50" and config["num_classes"] == 19 and config["in_chans"] == 4
    assert config["model_args"] == {"in_chans": 4, "num_classes": 19, **RESNET_MINI}
    assert config["label_names"] == list(BEN19)
    assert config["contract"] == sidecar["contract"]
    assert config["band_groups"] == {"10m": ["B04", "B03", "B02", "B08"]}
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [4, 120, 120]
    assert cfg["mean"] == pytest.approx([contract.BEN_BAND_STATS[b][0] for b in BANDS.split(",")])
    assert cfg["std"] == pytest.approx([contract.BEN_BAND_STATS[b][1] for b in BANDS.split(",")])


def test_timm_loads_the_folder_without_landzoo(exported, tmp_path: Path) -> None:
    """resnet50 is timm's own architecture: a fresh interpreter that never imports landzoo builds the network."""
    _, hub, model = exported
    x = torch.randn(3, 4, 120, 120, generator=torch.Generator().manual_seed(5))
    np.save(tmp_path / "x.npy", x.numpy())
    code = (
        "import sys, numpy as np, timm, torch\n"
        f"net = timm.create_model('local-dir:{hub}', pretrained=True).eval()\n"
        f"y = net(torch.from_numpy(np.load('{tmp_path / 'x.npy'}'))).detach().numpy()\n"
        f"np.save('{tmp_path / 'y.npy'}', y)\n"
        "assert not any(m.startswith('landzoo') for m in sys.modules)\n"
        "print(net.pretrained_cfg['label_names'][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == BEN19[0]
    with torch.no_grad():
        want = model.backbone(x).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=0, atol=1e-5)


def test_the_issue_example_wrn_eca_b0_from_the_weights_file_alone(tmp_path: Path) -> None:
    ckpt, model = save_trained_like(tmp_path / "run", "wrn_eca_b0", {})
    export_checkpoint(ckpt, tmp_path / "hub")
    weights = tmp_path / "hub" / "model.safetensors"
    by_file = timm.create_model("wrn_eca_b0", pretrained=True, pretrained_cfg_overlay=dict(file=str(weights))).eval()
    by_dir = timm.create_model(f"local-dir:{tmp_path / 'hub'}", pretrained=True).eval()
    x = torch.randn(2, 10, 60, 60, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model.backbone(x)
        torch.testing.assert_close(by_file(x), want, rtol=0, atol=0)
        torch.testing.assert_close(by_dir(x), want, rtol=0, atol=0)
    # timm's own data config carries the real per-band statistics, in channel order
    data = timm.data.resolve_data_config(model=by_dir)
    assert data["input_size"] == (10, 60, 60)
    assert data["mean"] == pytest.approx(tuple(contract.BEN_BAND_STATS[b][0] for b in model.bands))
    assert data["std"] == pytest.approx(tuple(contract.BEN_BAND_STATS[b][1] for b in model.bands))


def test_a_weights_file_says_which_network_it_needs(tmp_path: Path) -> None:
    """Three bands, EuroSAT's ten classes, a half-width WRN: the file alone is enough for timm."""
    kwargs = {"width_multiplier": 0.5}
    ckpt, model = save_trained_like(
        tmp_path / "run", "wrn_eca_b0", kwargs, bands="rgb", classes="eurosat10", native=False
    )
    export_checkpoint(ckpt, tmp_path / "hub")
    net = timm.create_model(
        "wrn_eca_b0", pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / "hub" / "model.safetensors"))
    ).eval()
    assert (net.in_chans, net.num_classes) == (3, 10)
    x = torch.randn(2, 3, 60, 60)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model.backbone(x), rtol=0, atol=0)
    with pytest.raises(landzoo.models.ModelError, match="ships no pretrained weights"):
        timm.create_model("wrn_eca_b0", pretrained=True)


def test_landzoo_reads_the_folder_as_a_checkpoint(exported) -> None:
    ckpt, hub, model = exported
    from_hub, from_ckpt = landzoo.load_model(hub), landzoo.load_model(ckpt)
    assert from_hub.contract == from_ckpt.contract and from_hub.bands == tuple(BANDS.split(","))
    groups = raw_groups(model, batch=2, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(from_hub.model(groups), model(groups), rtol=0, atol=0)
    state, meta = load_checkpoint(hub)
    assert set(state) == set(model.state_dict()) and meta.contract == from_ckpt.contract


def test_an_export_folder_exports_again_to_the_same_weights(exported, tmp_path: Path) -> None:
    _, hub, _ = exported
    export_checkpoint(hub, tmp_path / "again")
    files = [safe_open(str(d / "model.safetensors"), framework="pt") for d in (hub, tmp_path / "again")]
    keys = [set(f.keys()) for f in files]
    assert files[0].metadata() == files[1].metadata() and keys[0] == keys[1]
    assert all(torch.equal(files[0].get_tensor(k), files[1].get_tensor(k)) for k in keys[0])


def test_model_card(exported) -> None:
    ckpt, hub, _ = exported
    card = (hub / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "landzoo" and "resnet50" in front["tags"]
    assert f"`{BANDS}`" in card  # band names in channel order
    rows = [line for line in card.splitlines() if line.startswith("| ") and " S2 " in line]
    assert [r.split("|")[2].strip() for r in rows] == BANDS.split(",")
    assert "| 10m | B04,B03,B02,B08 |" in card  # the band grouping
    assert card.index(BEN19[0]) < card.index(BEN19[1]) < card.index(BEN19[-1])
    assert 'timm.create_model("local-dir:THIS_FOLDER", pretrained=True)' in card
    assert "landzoo.load_model" in card and "mean" in card
    sidecar = json.loads(ckpt.with_suffix(".json").read_text())
    assert sidecar["landzoo_version"] in card and sidecar["weights"]["sha256"] in card


def test_stacked_and_resized_group_inputs(tmp_path: Path) -> None:
    """EuroSAT-style data on one 10 m grid at 64 px: --group-px sizes the graph's input; --inputs stacked is the net."""
    ckpt, model = save_trained_like(
        tmp_path / "run", "wrn10_2", {"init": "torch"}, bands="s2_10m", classes="eurosat10", native=False
    )
    export_checkpoint(ckpt, tmp_path / "groups", formats=["torchscript"], group_px={"10m": 64})
    export_checkpoint(ckpt, tmp_path / "stacked", formats=["torchscript"], inputs="stacked")
    raw = raw_groups(model, batch=3, seed=2, px={"10m": 64})
    with torch.no_grad():
        want = model(raw)
        got, probs = torch.jit.load(str(tmp_path / "groups" / "model.torchscript.pt"))(raw["10m"].float())
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
        torch.testing.assert_close(probs, torch.sigmoid(want), rtol=0, atol=1e-4)
        stacked = model.transform(raw)
        got, _ = torch.jit.load(str(tmp_path / "stacked" / "model.torchscript.pt"))(stacked)
        torch.testing.assert_close(got, model.backbone(stacked), rtol=0, atol=1e-4)
    config = json.loads((tmp_path / "groups" / "config.json").read_text())
    assert config["graph_inputs"][0]["shape"] == ["batch", 4, 64, 64]


def test_export_refuses_non_empty_destination(exported, tmp_path: Path) -> None:
    ckpt, _, _ = exported
    out = tmp_path / "hub"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not empty"):
        export_checkpoint(ckpt, out)
    export_checkpoint(ckpt, out, overwrite=True)
    assert (out / "README.md").is_file()


def test_cli_export_with_a_graph(exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, _, _ = exported  # given as its run folder (model.safetensors + model.json), as `landzoo fit` leaves it
    assert main(["export", str(ckpt.parent), "--out", str(tmp_path / "hub"), "--format", "torchscript"]) == 0
    out = capsys.readouterr().out
    assert "README.md" in out and "max |torchscript - PyTorch| = " in out
    assert (tmp_path / "hub" / "model.torchscript.pt").is_file()


def test_cli_export_fails_above_the_tolerance_and_keeps_no_file(
    exported, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt, _, _ = exported
    run = export_graphs._RUNNERS["torchscript"]
    monkeypatch.setitem(
        export_graphs._RUNNERS, "torchscript", lambda *a: (lambda f: lambda xs: [y + 1e-3 for y in f(xs)])(run(*a))
    )
    rc = main(["export", str(ckpt), "--out", str(tmp_path / "hub"), "--format", "torchscript"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "exceeds the tolerance 0.0001" in err and "model.torchscript.pt" in err
    assert not (tmp_path / "hub" / "model.torchscript.pt").exists()
    assert not [p for p in (tmp_path / "hub").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "tflite"], "unknown format 'tflite'"),
        (["--group-px", "10m:120"], "expected GROUP=PX"),
        (["--inputs", "stacked"], "--inputs and --group-px shape the graphs: add --format"),
        (["--group-px", "10m=240"], "--inputs and --group-px shape the graphs: add --format"),
    ],
)
def test_cli_export_bad_options(exported, tmp_path: Path, capsys: pytest.CaptureFixture[str], args, message) -> None:
    ckpt, _, _ = exported
    assert main(["export", str(ckpt), "--out", str(tmp_path / "hub"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_export_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--out" in out and "CHECKPOINT" in out and "onnx" in out


def test_cli_export_bad_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["export", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "hub")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("landzoo export: error:") and "nope.safetensors" in err
    assert not (tmp_path / "hub").exists()


def test_cli_export_checkpoint_without_bands(exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, _, _ = exported
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(ckpt.read_bytes())
    data = json.loads(ckpt.with_suffix(".json").read_text())
    del data["contract"]["bands"]
    del data["seal"]  # a sidecar of schema 1 (before seals), as an older landzoo wrote it
    data["schema_version"] = 1
    (run / "model.json").write_text(json.dumps(data))
    assert main(["export", str(run / "model.safetensors"), "--out", str(tmp_path / "hub")]) == 2
    err = capsys.readouterr().err
    assert "no band names" in err and err.count("\n") == 1
