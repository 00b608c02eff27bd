"""Reader options: declared once per reader, converted by type from Python values and from ``-o`` text."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from landzoo.cli import main
from landzoo.cli._reader_options import parse_options
from landzoo.datasets import DatasetError, open_dataset, reader_class
from landzoo.datasets.base import Reader
from landzoo.datasets.options import COMMON_ARGUMENTS, make_options, option_names
from landzoo.synthetic import generate


@pytest.fixture(scope="module")
def sen12ms_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("opt") / "s12"  # 100 patches: 4 scenes of 16 px, 3 of them train
    return generate("sen12ms", out, patches=100, seed=2, workers=1, progress=False, patch_px=16)


def test_every_reader_declares_only_its_own_options() -> None:
    """The common arguments live in Reader.__init__ once; no reader re-declares one as an option."""
    import inspect

    common = [p for p in inspect.signature(Reader.__init__).parameters if p not in ("self", "root", "options")]
    assert tuple(common) == COMMON_ARGUMENTS
    for name in ("bigearthnet-v1", "bigearthnet-v2", "sen12ms", "eurosat"):
        cls = reader_class(name)
        assert "__init__" not in vars(cls), name
        assert dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen
        assert not set(option_names(cls.Options)) & set(COMMON_ARGUMENTS), name
        assert all(f.default is not dataclasses.MISSING for f in dataclasses.fields(cls.Options)), name


def test_help_lists_each_readers_options() -> None:
    from landzoo.cli._reader_options import READER_OPTIONS
    from landzoo.datasets import READERS

    assert {n: option_names(reader_class(n).Options) for n in READERS} == READER_OPTIONS


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("drop_snow_cloud", "false", False),
        ("drop_snow_cloud", "True", True),
        ("s1_root", "/data/s1", Path("/data/s1")),
        ("s1_root", "none", None),
        (
            "split_files",
            "train=a.csv, val=b.csv,test=c.csv",
            {"train": Path("a.csv"), "val": Path("b.csv"), "test": Path("c.csv")},
        ),
        ("split_files", "test=/x/t.csv", {"test": Path("/x/t.csv")}),
    ],
)
def test_bigearthnet_v1_options_from_text(name: str, text: str, expected: object) -> None:
    cls = reader_class("bigearthnet-v1")
    assert getattr(make_options(cls.name, cls.Options, {name: text}), name) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4", 4),
        ("0.25", 0.25),
        ("ROIs1158_spring/s2_1", ("ROIs1158_spring/s2_1",)),
        ("ROIs1158_spring/s2_1, ROIs1970_fall/s1_7", ("ROIs1158_spring/s2_1", "ROIs1970_fall/s1_7")),
    ],
)
def test_val_scenes_is_a_count_a_fraction_or_names(text: str, expected: object) -> None:
    cls = reader_class("sen12ms")
    assert make_options("sen12ms", cls.Options, {"val_scenes": text}).val_scenes == expected


def test_python_values_are_checked_by_the_same_types() -> None:
    cls = reader_class("sen12ms")
    opts = make_options("sen12ms", cls.Options, {"val_scenes": ["ROIs1158_spring/s2_1"], "seed": 7, "patch_px": 64})
    assert opts.val_scenes == ("ROIs1158_spring/s2_1",) and opts.seed == 7 and opts.patch_px == 64
    with pytest.raises(DatasetError, match=r"^sen12ms option seed: expected an integer, got True$"):
        make_options("sen12ms", cls.Options, {"seed": True})
    with pytest.raises(DatasetError, match=r"label_source: expected one of pickle, lc, got 'LC'"):
        make_options("sen12ms", cls.Options, {"label_source": "LC"})
    with pytest.raises(DatasetError, match=r"multilabel_threshold must be in \(0, 1\]"):
        make_options("sen12ms", cls.Options, {"multilabel_threshold": "1.5"})


@pytest.mark.parametrize("text", ["/tmp/x.csv", "train", "train=a.csv,b.csv", "training=a.csv", "train=a,train=b"])
def test_a_split_mapping_that_is_not_one_is_one_line_with_the_syntax(text: str) -> None:
    """``-o split_files=/tmp/x.csv`` used to iterate the string ("unknown split(s) /, t, m, p")."""
    cls = reader_class("eurosat")
    with pytest.raises(DatasetError) as info:
        make_options("eurosat", cls.Options, {"split_files": text})
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("eurosat option split_files: expected SPLIT=PATH pairs")
    assert "train=train.csv,val=val.csv,test=test.csv" in msg and repr(text) in msg
    assert "/, t" not in msg


def test_empty_split_mapping_turns_lists_off() -> None:
    cls = reader_class("eurosat")
    assert make_options("eurosat", cls.Options, {"split_files": ""}).split_files == {}


def test_unknown_option_lists_only_what_o_can_set(sen12ms_root: Path) -> None:
    with pytest.raises(DatasetError) as info:
        open_dataset("sen12ms", sen12ms_root, patch_size=64)
    msg = str(info.value)
    own = ", ".join(option_names(reader_class("sen12ms").Options))
    assert msg.startswith(f"sen12ms reader has no option patch_size; its own options (-o KEY=VALUE): {own}. ")
    assert "--missing" in msg and "--bands" in msg


def test_parse_options_only_splits_key_value() -> None:
    assert parse_options(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(DatasetError, match="not of the form KEY=VALUE"):
        parse_options(["novalue"])
    with pytest.raises(DatasetError, match=r"'missing' is set by its own command-line flag \(--missing\)"):
        parse_options(["missing=report"])
    with pytest.raises(DatasetError, match="'a' is given twice"):
        parse_options(["a=1", "a=2"])


def test_cli_converts_options_by_type(sen12ms_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI as a user types it: a count of val scenes, and a bad split mapping as one line."""
    assert main(["inspect", "--dataset", "sen12ms", str(sen12ms_root), "--json", "-o", "val_scenes=2"]) == 0
    out = capsys.readouterr().out
    reader = open_dataset("sen12ms", sen12ms_root, val_scenes=2)
    assert f'"val": {reader.split_counts()["val"]}' in out and "2 whole train scene(s)" in out
    assert main(["inspect", "--dataset", "eurosat", str(sen12ms_root), "-o", "split_files=/tmp/x.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected SPLIT=PATH pairs" in err
