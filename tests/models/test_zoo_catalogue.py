"""The shipped catalogue (``landzoo models`` without building anything) equals what the builders produce.

The fast test measures one model per family (the smallest: parameters and MACs) and checks every name, family,
source, input size and reference count against the live registry; the ``slow`` test builds every other model
on the meta device and checks its parameter count and input size (a few seconds; counting every model's MACs
takes 20-60 s on the 2-core CI machine, so ``scripts/make_model_catalogue.py --check`` does that by hand).
"""

from __future__ import annotations

import json

import pytest
import torch

from landzoo.cli import main
from landzoo.cli.models import CATALOGUE_FILE, read_catalogue, zoo_rows
from landzoo.models import DEFAULT_BANDS, DEFAULT_CLASSES, build_backbone, count_params, get_model_info, list_models

SHIPPED = read_catalogue()
ROWS = {r["name"]: r for r in SHIPPED["models"]}


def _sample() -> list[str]:
    smallest: dict[str, dict] = {}
    for r in SHIPPED["models"]:
        if r["family"] not in smallest or r["params"] < smallest[r["family"]]["params"]:
            smallest[r["family"]] = r
    return [r["name"] for r in smallest.values()]


SAMPLE = _sample()


def test_catalogue_lists_every_registered_model_in_order() -> None:
    assert (SHIPPED["bands"], SHIPPED["classes"]) == (DEFAULT_BANDS, DEFAULT_CLASSES)
    assert [r["name"] for r in SHIPPED["models"]] == list_models()
    for name, row in ROWS.items():
        info = get_model_info(name)
        assert (row["family"], row["source"], row["input_size"], row["reference_params"]) == (
            info.family,
            info.source,
            info.input_size,
            info.reference_params,
        ), name


def test_catalogue_equals_the_builders_one_model_per_family() -> None:
    assert len(SAMPLE) == len({r["family"] for r in SHIPPED["models"]}) >= 10
    assert zoo_rows(SAMPLE, progress=False) == [ROWS[n] for n in SAMPLE]


@pytest.mark.slow
def test_catalogue_parameter_counts_equal_the_builders_for_every_model() -> None:
    for name in list_models():
        with torch.device("meta"):
            net, size = build_backbone(name)
        assert (count_params(net), size) == (ROWS[name]["params"], ROWS[name]["input_size"]), name


def test_models_command_prints_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    keys = ["name", "family", "input_size", "params", "mmacs", "reference_params"]
    assert printed == [{k: r[k] for k in keys} for r in SHIPPED["models"]]
    assert CATALOGUE_FILE.is_file()


def test_other_bands_are_measured_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--filter", "wrn10_2", "--bands", "rgb", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    # 3 input channels instead of 10: the first 3x3 conv has 7 x 3 x 3 x 16 fewer weights
    assert ROWS["wrn10_2"]["params"] - row["params"] == 7 * 9 * 16
