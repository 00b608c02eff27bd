"""The command line as a user meets it: --help everywhere, JSON output, one-line errors and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from _fixtures import shared_fixture
from landzoo.cli import COMMANDS, build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


def test_every_command_module_registers_a_subcommand() -> None:
    names = _subcommands()
    assert len(names) == len(COMMANDS)
    assert {"demo", "generate", "inspect"} <= set(names)


@pytest.mark.parametrize("command", _subcommands())
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: landzoo {command}")


def test_inspect_real_v1_patches_json(capsys: pytest.CaptureFixture[str]) -> None:
    root = shared_fixture("bigearthnet_gdf_builder", "tiny")
    assert main(["inspect", "--dataset", "bigearthnet-v1", str(root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    n_folders = sum(1 for p in root.iterdir() if p.is_dir())
    assert summary["patches"] == n_folders == 11
    assert sum(summary["patches_per_split"].values()) == 11
    # Every patch has at least one 19-class label in this sample; label counts are per patch.
    freq = summary["label_frequency"]["all"]
    assert sum(freq.values()) >= 11 and max(freq.values()) <= 11
    assert summary["bad_patches"] == []


def _broken_copy(tmp_path: Path) -> tuple[Path, str]:
    src = shared_fixture("bigearthnet_common", "BigEarthNet-S2-Example")
    dst = tmp_path / "BigEarthNet-v1.0"
    shutil.copytree(src, dst)
    victim = sorted(p.name for p in dst.iterdir())[0]
    (dst / victim / f"{victim}_B11.tif").unlink()
    return dst, victim


def test_inspect_lists_bad_patches_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, victim = _broken_copy(tmp_path)
    # drop_snow_cloud=false keeps the one snowy example patch, so all 6 folders are in the index.
    assert main(["inspect", "--dataset", "bigearthnet-v1", str(root), "--json", "-o", "drop_snow_cloud=false"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["patches"] == 5 and not any(summary["excluded"].values())
    assert [b["id"] for b in summary["bad_patches"]] == [victim]
    assert summary["bad_patches"][0]["path"].endswith(f"{victim}_B11.tif")


def test_inspect_strict_stops_with_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, victim = _broken_copy(tmp_path)
    args = ["inspect", "--dataset", "bigearthnet-v1", str(root), "--strict", "--json", "-o", "drop_snow_cloud=false"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert victim in err and "B11.tif" in err and "missing" in err


def test_inspect_refuses_malformed_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["inspect", "--dataset", "eurosat", str(tmp_path), "-o", "nonsense"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_inspect_missing_folder_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--dataset", "bigearthnet-v2", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and len(err.strip().splitlines()) == 1


def test_inspect_limit_still_reports_bad_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A foreign folder is found while listing, never read: ``--limit`` must not hide it (exit 1, not 0)."""
    root = tmp_path / "BigEarthNet-v1.0"
    shutil.copytree(shared_fixture("bigearthnet_common", "BigEarthNet-S2-Example"), root)
    (root / "notes").mkdir()
    assert main(["inspect", "--dataset", "bigearthnet-v1", str(root), "--limit", "1", "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["patches"] == 1 and [b["id"] for b in summary["bad_patches"]] == ["notes"]


def test_inspect_prints_patches_in_no_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "BigEarthNet-v1.0"
    shutil.copytree(shared_fixture("bigearthnet_common", "BigEarthNet-S2-Example"), root)
    (tmp_path / "splits").mkdir()  # a split list beside the patch folder naming one of the five patches
    (tmp_path / "splits" / "train.csv").write_text("S2A_MSIL2A_20170613T101031_87_48\n")
    assert main(["inspect", "--dataset", "bigearthnet-v1", str(root), "--bands", "rgb"]) == 0
    out = capsys.readouterr().out
    assert "in no split (on disk, named by no split list): 4" in out


def test_generate_offers_exactly_the_synthetic_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    """One list of dataset names: a dataset added to landzoo.synthetic.DATASETS is offered by the CLI (and the
    synthetic Sentinel-2 scene, a product rather than a patch dataset, after them)."""
    from landzoo.synthetic import DATASETS

    monkeypatch.setitem(DATASETS, "zz-test", "landzoo.synthetic.eurosat")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    dataset = next(a for a in sub.choices["generate"]._actions if a.dest == "dataset")
    assert list(dataset.choices) == [*sorted(DATASETS), "s2-scene"]


def test_hardware_reports_name_the_cpu_the_same_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The I/O benchmark, the model benchmark and the run cost records share one CPU-name helper."""
    from landzoo import hardware
    from landzoo.models.bench import hardware_string as model_hardware
    from landzoo.store.bench import hardware as io_hardware
    from landzoo.training.cost import hardware_string as run_hardware

    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nvendor_id\t: Test\nmodel name\t: Test CPU 9000 @ 1.00GHz\n")
    monkeypatch.setattr(hardware, "CPUINFO", fake)
    assert hardware.cpu_name() == "Test CPU 9000 @ 1.00GHz"
    assert io_hardware().startswith("Test CPU 9000 @ 1.00GHz, ")
    assert model_hardware("cpu")["cpu"] == "Test CPU 9000 @ 1.00GHz"
    assert run_hardware("cpu").startswith("CPU: Test CPU 9000 @ 1.00GHz (")
    fake.write_text("processor\t: 0\n")  # e.g. ARM: no model name
    monkeypatch.setattr(hardware.platform, "processor", lambda: "")
    assert hardware.cpu_name() == hardware.platform.machine()
