"""Checkpoint round trip, the data contract and its refusals."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from landzoo import __version__
from landzoo.checkpoint import (
    SCHEMA_VERSION,
    CheckpointError,
    ContractMismatchError,
    DataContract,
    build_model_from_checkpoint,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    write_sidecar,
)
from landzoo.contract import BEN19, BEN43, BEN_BAND_STATS, ContractError, resolve_bands
from landzoo.errors import LandzooError

REPO = Path(__file__).resolve().parents[2]


def small_model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(10, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(19))
    m(torch.randn(2, 10, 6, 6))  # materialise and move BN statistics off their defaults
    return m


def odd_state() -> dict[str, torch.Tensor]:
    """Tensors that catch lossy storage: special floats, half types, ints, bools, a tied pair, a view."""
    special = torch.tensor([float("nan"), -0.0, float("inf"), -float("inf"), 1e-45, 3.4e38])
    base = torch.randn(6, 4)
    return {
        "special": special,
        "half": torch.randn(3, 5).half(),
        "bf16": torch.randn(7).bfloat16(),
        "f64": torch.randn(2, 2, dtype=torch.float64),
        "long": torch.arange(-5, 5),
        "u8": torch.randint(0, 255, (4,), dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "tied.a": base,
        "tied.b": base,  # shared storage (tied weights)
        "view": base[:, 1],  # non-contiguous view of the same storage
        "scalar": torch.tensor(3.5),
    }


def bits(t: torch.Tensor) -> bytes:
    return t.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""


def contract10() -> DataContract:
    return DataContract.from_names("s2_10m_20m", "ben19", 60)


@pytest.mark.parametrize("form", ["file", "folder"])
def test_round_trip_bit_exact_and_meta_equal(tmp_path: Path, form: str) -> None:
    state = {**small_model().state_dict(), **{f"x.{k}": v for k, v in odd_state().items()}}
    dc = contract10()
    target = tmp_path / ("m.safetensors" if form == "file" else "ckpt")
    config = {"protocol": "paper", "lr": 1e-4, "epochs": 30, "milestones": (27,), "path": tmp_path}
    metrics = {"test": {"f1_micro": 0.71, "f1_macro": 0.64, "auroc_macro": float("nan")}, "val_f1_micro": 0.7}
    weights = save_checkpoint(
        target, state, dc, arch="wrn10_2_eca", arch_kwargs={"pool": "paper"}, config=config, metrics=metrics
    )
    assert weights.is_file() and weights.suffix == ".safetensors"
    sidecar = weights.with_suffix(".json") if form == "file" else target / "landzoo.json"
    assert sidecar.is_file()

    for path in (weights, sidecar) if form == "file" else (target,):
        loaded, meta = load_checkpoint(path)
        assert set(loaded) == set(state)
        for k, v in state.items():
            assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape, k
            assert bits(loaded[k]) == bits(v), k
        assert meta.contract == dc
        assert meta.arch == "wrn10_2_eca" and meta.arch_kwargs == {"pool": "paper"}
        assert meta.config == {"protocol": "paper", "lr": 1e-4, "epochs": 30, "milestones": [27], "path": str(tmp_path)}
        assert meta.metrics == {"test": {"f1_micro": 0.71, "f1_macro": 0.64, "auroc_macro": None}, "val_f1_micro": 0.7}
        assert meta.landzoo_version == __version__ and meta.schema_version == SCHEMA_VERSION
        assert meta.num_tensors == len(state)
        assert meta.num_values == sum(v.numel() for v in state.values())

    raw = json.loads(sidecar.read_text())  # plain JSON: no NaN tokens
    assert raw["contract"]["bands"] == list(resolve_bands("s2_10m_20m"))
    assert raw["contract"]["classes"] == list(BEN19)
    assert raw["contract"]["stats"]["B8A"] == {"mean": BEN_BAND_STATS["B8A"][0], "std": BEN_BAND_STATS["B8A"][1]}
    with safe_open(str(weights), framework="pt") as f:
        header = f.metadata()
    assert header["landzoo_bands"] == ",".join(resolve_bands("s2_10m_20m"))
    assert header["landzoo_class_set"] == "ben19"


def test_git_commit_recorded(tmp_path: Path) -> None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not running from a git checkout")
    save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(2)}, contract10(), arch="a")
    meta = read_meta(tmp_path / "m.safetensors")
    assert meta.git_commit == head.stdout.strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*", meta.created)


def test_contract_mismatch_messages() -> None:
    dc = DataContract.from_names("B02,B03,B04", "ben19", 120)
    with pytest.raises(ContractMismatchError) as err:
        dc.check_compatible("B04,B03,B02", BEN19)
    msg = str(err.value)
    assert "checkpoint bands B02,B03,B04 vs data B04,B03,B02" in msg
    assert "permuted" in msg and "\n" not in msg

    with pytest.raises(ContractMismatchError) as err:
        dc.check_compatible(["B02", "B03"], BEN19)
    assert "checkpoint bands B02,B03,B04 vs data B02,B03" in str(err.value)
    assert "data lacks B04" in str(err.value) and "permuted" not in str(err.value)

    with pytest.raises(ContractMismatchError, match="data has extra B08"):
        dc.check_compatible(("B02", "B03", "B04", "B08"), BEN19)
    with pytest.raises(ContractMismatchError, match="data repeats B04"):
        dc.check_compatible(("B02", "B03", "B04", "B04"), BEN19)

    reordered = tuple(sorted(BEN19))  # ConfigILM's alphabetical order
    with pytest.raises(ContractMismatchError) as err:
        dc.check_compatible("B02,B03,B04", reordered)
    msg = str(err.value)
    assert "classes order differs" in msg and "permuted" in msg and "\n" not in msg
    assert "'Urban fabric'; 'Industrial or commercial units'" in msg  # checkpoint order, quoted
    assert "'Agro-forestry areas'; 'Arable land'" in msg  # data order

    with pytest.raises(ContractMismatchError, match="data has extra") as err:
        dc.check_compatible("B02,B03,B04", "ben43")
    assert "permuted" not in str(err.value)

    dc.check_compatible(("B02", "B03", "B04"), "ben19")  # the same: no error
    contract10().check_compatible("s2_10m_20m", BEN19)
    contract10().check_compatible("s2_10m_20m")  # classes not checked
    assert issubclass(ContractMismatchError, LandzooError)


def test_contract_refuses_bad_definitions() -> None:
    with pytest.raises(ContractError, match="band names"):
        DataContract((), "ben19", BEN19)
    with pytest.raises(ContractError, match="not given in its order"):
        DataContract(("B02",), "ben19", tuple(reversed(BEN19)))
    with pytest.raises(ContractError, match="unknown class set"):
        DataContract(("B02",), "nope", BEN19)
    with pytest.raises(ContractError, match="statistics for band"):
        DataContract(("B02", "B03"), "ben43", BEN43, stats={"B02": (1.0, 2.0)})
    with pytest.raises(ContractError, match="positive std"):
        DataContract(("B02",), "ben43", BEN43, stats={"B02": (1.0, 0.0)})
    with pytest.raises(ContractError, match="resampling"):
        DataContract(("B02",), "ben43", BEN43, resample="lanczos")
    with pytest.raises(ContractError, match="unknown band"):
        DataContract(("B99",), "ben43", BEN43)
    dc = DataContract(("B04",), "ben43", BEN43, stats={"B04": [1, 2], "B02": [3, 4]}, input_size=120)
    assert dc.stats == {"B04": (1.0, 2.0)}  # only the contract's bands are kept
    assert DataContract.from_dict(dc.to_dict()) == dc


def _save(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "m.safetensors", small_model().state_dict(), contract10(), arch="wrn10_2")


def _edit_sidecar(path: Path, edit) -> None:
    """Edit the sidecar and seal it again: what the checks below the seal must still refuse."""
    side = path.with_suffix(".json")
    data = json.loads(side.read_text())
    edit(data)
    write_sidecar(side, data)


def test_missing_band_names_refused(tmp_path: Path) -> None:
    w = _save(tmp_path)
    _edit_sidecar(w, lambda d: d["contract"].pop("bands"))
    with pytest.raises(CheckpointError, match="no band names in its data contract"):
        load_checkpoint(w)
    _edit_sidecar(w, lambda d: d["contract"].__setitem__("bands", []))
    with pytest.raises(CheckpointError, match="no band names"):
        load_checkpoint(w)
    _edit_sidecar(w, lambda d: d.pop("contract"))
    with pytest.raises(CheckpointError, match="no data contract"):
        load_checkpoint(w)
    w.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match=r"no sidecar m\.json"):
        load_checkpoint(w)


def test_damaged_or_mismatched_files_refused(tmp_path: Path) -> None:
    w = _save(tmp_path)
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its sidecar"):
        load_checkpoint(w)

    w = _save(tmp_path)
    _edit_sidecar(w, lambda d: d["contract"].__setitem__("bands", ["B04", "B03", "B02", *d["contract"]["bands"][3:]]))
    with pytest.raises(CheckpointError, match="weights header says bands B02,B03,B04"):
        load_checkpoint(w, verify=False)

    w = _save(tmp_path)
    _edit_sidecar(w, lambda d: d.__setitem__("schema_version", 99))
    with pytest.raises(CheckpointError, match="schema 99, newer"):
        load_checkpoint(w)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.safetensors")
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "junk.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "junk.json")


def test_save_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a tensor"):
        save_checkpoint(tmp_path / "a.safetensors", {"w": [1, 2]}, contract10(), arch="x")
    with pytest.raises(CheckpointError, match=r"config\.bad"):
        save_checkpoint(
            tmp_path / "a.safetensors", {"w": torch.ones(1)}, contract10(), arch="x", config={"bad": object()}
        )
    with pytest.raises(CheckpointError, match="architecture"):
        save_checkpoint(tmp_path / "a.safetensors", {"w": torch.ones(1)}, contract10(), arch="")
    # a plain-dict contract (as the engine may hold it) is validated the same way
    with pytest.raises(CheckpointError, match="no band names"):
        save_checkpoint(tmp_path / "a.safetensors", {"w": torch.ones(1)}, {"class_set": "ben19"}, arch="x")


def test_build_model_from_checkpoint(tmp_path: Path) -> None:
    try:
        from landzoo.models import create_model
    except ImportError:
        pytest.skip("landzoo.models (the zoo) is not available yet")
    model = create_model("wrn10_2_eca", bands="s2_10m_20m", classes="ben19")
    size = int(getattr(model, "input_size", 60))
    dc = DataContract.from_names("s2_10m_20m", "ben19", size)
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), dc, arch="wrn10_2_eca")
    rebuilt, meta = build_model_from_checkpoint(path)
    assert meta.arch == "wrn10_2_eca"
    for k, v in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v), k


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["contract"]["stats"]["B02"].__setitem__("mean", d["contract"]["stats"]["B02"]["mean"] + 1.0),
        lambda d: d["contract"].__setitem__("resample", "bilinear"),
        lambda d: d["arch_kwargs"].__setitem__("drop_rate", 0.5),
        lambda d: d["contract"]["bands"].reverse(),
        lambda d: d.pop("seal"),
    ],
    ids=["stats", "resample", "arch_kwargs", "bands", "seal removed"],
)
def test_a_hand_edited_sidecar_is_refused(tmp_path: Path, edit) -> None:
    """Any edit changes the content's digest: refused before the contract is used (a stats edit moved F1 silently)."""
    w = _save(tmp_path)
    side = w.with_suffix(".json")
    data = json.loads(side.read_text())
    edit(data)
    side.write_text(json.dumps(data, indent=1))
    with pytest.raises(CheckpointError, match=r"m\.json(: its seal was removed| was edited or damaged)"):
        load_checkpoint(w)


def test_sidecar_of_schema_1_without_seal_still_loads(tmp_path: Path) -> None:
    w = _save(tmp_path)
    side = w.with_suffix(".json")
    data = json.loads(side.read_text())
    del data["seal"]
    data["schema_version"] = 1
    side.write_text(json.dumps(data))
    state, meta = load_checkpoint(w)
    assert meta.schema_version == 1 and meta.contract == contract10() and len(state) == meta.num_tensors


def test_weights_files_are_byte_reproducible(tmp_path: Path) -> None:
    """The same tensors and contract give the same bytes (safetensors writes its metadata in hash order)."""
    state = small_model().state_dict()
    a = save_checkpoint(tmp_path / "a" / "m.safetensors", state, contract10(), arch="wrn10_2")
    digests = {hashlib.sha256(a.read_bytes()).hexdigest()}
    for k in range(4):
        b = save_checkpoint(tmp_path / f"b{k}" / "m.safetensors", state, contract10(), arch="wrn10_2")
        digests.add(hashlib.sha256(b.read_bytes()).hexdigest())
    assert len(digests) == 1
    from safetensors.torch import load_file

    loaded = load_file(a)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
