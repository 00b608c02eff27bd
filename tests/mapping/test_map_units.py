"""The mapping stage's parts against brute force: grid, averaging, window counts, strip reads, metadata, ranks."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from landzoo import contract
from landzoo.mapping import reader as reader_mod
from landzoo.mapping.engine import RowAccumulator
from landzoo.mapping.errors import MapError
from landzoo.mapping.grid import WindowGrid
from landzoo.mapping.product import parse_mtd
from landzoo.mapping.reader import StripReader, _window_sums
from landzoo.mapping.run import rank_world, scene_shard
from landzoo.mapping.sources import open_scene

TILE = 109_800


def test_full_tile_grid_counts() -> None:
    g = WindowGrid.build((600_000.0, 5_000_040.0), TILE, TILE, 1200, [10, 20])
    assert (g.rows, g.cols, g.windows, g.cell_rows) == (91, 91, 8281, 91)
    assert g.uncovered_m() == {"right": 600, "bottom": 600}
    assert g.transform == (1200.0, 0.0, 600_000.0, 0.0, -1200.0, 5_000_040.0)
    h = WindowGrid.build((0.0, 0.0), TILE, TILE, 600, [10, 20])
    assert (h.windows, h.k, h.cell_rows, h.uncovered_m()["right"]) == (182 * 182, 2, 183, 0)
    assert h.px(20) == (60, 30) and h.px(10) == (120, 60)
    assert g.window_bounds(2, 3) == (600_000.0 + 3600, 5_000_040.0 - 2400 - 1200, 600_000.0 + 4800, 5_000_040.0 - 2400)


@pytest.mark.parametrize(
    ("stride", "sizes", "match"),
    [(700, [10], "divide"), (1000, [10], "divide"), (400, [10, 20, 60], "multiple of 60"), (10, [10, 20], "20 m")],
)
def test_grid_refuses_strides_off_the_pixel_grids(stride: int, sizes: list[int], match: str) -> None:
    with pytest.raises(MapError, match=match):
        WindowGrid.build((0.0, 0.0), 6000, 6000, stride, sizes)


def test_grid_refuses_a_scene_smaller_than_a_window() -> None:
    with pytest.raises(MapError, match="less than one 1200 m window"):
        WindowGrid.build((0.0, 0.0), 1140, 6000, 1200, [10, 20])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_row_accumulator_is_the_mean_of_covering_windows(k: int) -> None:
    stride = 1200 // k
    grid = WindowGrid.build((0.0, 0.0), 6000, 4800, stride, [10])
    rng = np.random.default_rng(k)
    probs = rng.random((grid.rows, grid.cols, 3)).astype(np.float32)
    probs[rng.random((grid.rows, grid.cols)) < 0.3] = np.nan
    acc = RowAccumulator(grid, 3)
    got = np.full((grid.cell_rows, grid.cell_cols, 3), -1.0, dtype=np.float32)
    for r in range(grid.rows):
        row, mean = acc.add(r, probs[r])
        got[row] = mean
    for row, mean in acc.finish():
        got[row] = mean
    for i, j in itertools.product(range(grid.cell_rows), range(grid.cell_cols)):
        cover = probs[max(0, i - k + 1) : i + 1, max(0, j - k + 1) : j + 1].reshape(-1, 3)
        cover = cover[~np.isnan(cover[:, 0])]
        if len(cover):
            np.testing.assert_allclose(got[i, j], cover.astype(np.float64).mean(axis=0), rtol=0, atol=1e-7)
        else:
            assert np.isnan(got[i, j]).all()


def test_window_sums_count_pixels_per_window() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((60, 300)) < 0.1
    got = _window_sums(mask, 9, 60, 30)
    assert list(got) == [int(mask[:, i * 30 : i * 30 + 60].sum()) for i in range(9)]


def _striped_stack(path: Path, rng: np.random.Generator) -> np.ndarray:
    """A 10 m multi-band file with 16 px blocks (so the reader rolls its buffer) and a nodata notch."""
    data = rng.integers(1, 5000, size=(10, 480, 480), dtype=np.uint16)
    data[:, 130:140, 200:230] = 0
    with rasterio.open(
        path, "w", driver="GTiff", width=480, height=480, count=10, dtype="uint16", crs="EPSG:32633",
        transform=Affine(10, 0, 300_000, 0, -10, 5_000_040), tiled=True, blockxsize=16, blockysize=16,
    ) as ds:  # fmt: skip
        ds.write(data)
    return data


def test_strip_reader_windows_equal_direct_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "MIN_CHUNK_ROWS", 1)
    path = tmp_path / "stack.tif"
    data = _striped_stack(path, np.random.default_rng(1))
    bands = contract.BAND_SELECTIONS["s2_10m_20m"]
    scene = open_scene(path, bands=bands)
    layers, _, sgrid = scene.layers(bands)
    grid = WindowGrid.build(sgrid.origin, sgrid.width_m, sgrid.height_m, 600, [10, 20])
    by = {la.band: la for la in layers}
    groups = {g: [by[b] for b in names] for g, names in contract.band_groups(bands).items()}
    seen = set()
    skipped = 0
    for batch in StripReader(grid, groups, batch=4, band_threads=3):
        skipped += batch.nodata if batch.last else 0
        for i, col in enumerate(batch.cols):
            seen.add((batch.row, int(col)))
            y, x = batch.row * 60, int(col) * 60
            ten = data[:4, y : y + 120, x : x + 120]
            twenty = data[4:, y : y + 120, x : x + 120].reshape(6, 60, 2, 60, 2).astype(np.float64).mean(axis=(2, 4))
            assert np.array_equal(batch.groups["10m"][i], ten)
            assert np.array_equal(batch.groups["20m"][i], np.floor(twenty + 0.5).astype(np.uint16))
    empty = {
        (r, c)
        for r in range(grid.rows)
        for c in range(grid.cols)
        if (data[:, r * 60 : r * 60 + 120, c * 60 : c * 60 + 120] == 0).any()
    }
    assert seen == {(r, c) for r in range(grid.rows) for c in range(grid.cols)} - empty
    assert skipped == len(empty) > 0


MTD = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
 <n1:General_Info><Product_Info><PROCESSING_BASELINE>05.11</PROCESSING_BASELINE>
  <PRODUCT_URI>S2A_MSIL2A_20240101T000000_N0511_R001_T31UFU_20240101T010000.SAFE</PRODUCT_URI></Product_Info>
 <Product_Image_Characteristics>
  <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
  <QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>
  <BOA_ADD_OFFSET_VALUES_LIST>
   <BOA_ADD_OFFSET band_id="8">-1008</BOA_ADD_OFFSET><BOA_ADD_OFFSET band_id="1">-1001</BOA_ADD_OFFSET>
   <BOA_ADD_OFFSET band_id="12">-1012</BOA_ADD_OFFSET>
  </BOA_ADD_OFFSET_VALUES_LIST>
  <Spectral_Information_List>
   <Spectral_Information bandId="1" physicalBand="B2"/><Spectral_Information bandId="8" physicalBand="B8A"/>
   <Spectral_Information bandId="12" physicalBand="B12"/>
  </Spectral_Information_List>
 </Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>"""


def test_mtd_offsets_are_read_by_band_name() -> None:
    meta = parse_mtd(MTD.encode(), "MTD_MSIL2A.xml")
    assert meta.offsets == {"B8A": -1008.0, "B02": -1001.0, "B12": -1012.0}
    assert (meta.baseline, meta.quantification, meta.nodata) == ("05.11", 10000.0, 0.0)
    old = parse_mtd(MTD.replace("BOA_ADD_OFFSET", "OTHER").encode(), "x")
    assert old.offsets == {}
    with pytest.raises(MapError, match="not a readable XML"):
        parse_mtd(b"<a><b></a>", "broken.xml")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (0, 1)),
        ({"RANK": "3", "WORLD_SIZE": "4", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, (3, 4)),
        ({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "5"}, (2, 5)),
        (
            {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}
            | {"SLURM_NTASKS": "2", "SLURM_PROCID": "1"},
            (3, 6),
        ),
        ({"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, (1, 2)),
    ],
)
def test_rank_from_torchrun_and_slurm(env: dict[str, str], expected: tuple[int, int]) -> None:
    assert rank_world(env)[:2] == expected


def test_scene_shard_takes_every_nth_of_the_sorted_list() -> None:
    scenes = [f"s{i}.SAFE" for i in (5, 1, 3, 2, 4, 0)] + ["./s3.SAFE"]  # the same scene twice, spelt two ways
    parts = [scene_shard(scenes, {"RANK": str(r), "WORLD_SIZE": "3"})[0] for r in range(3)]
    assert [[p.name for p in part] for part in parts] == [
        ["s0.SAFE", "s3.SAFE"],
        ["s1.SAFE", "s4.SAFE"],
        ["s2.SAFE", "s5.SAFE"],
    ]
    with pytest.raises(MapError, match="not a valid rank"):
        scene_shard(scenes, {"RANK": "3", "WORLD_SIZE": "3"})


def test_window_read_through_rasterio_window_equals_direct_slice(tmp_path: Path) -> None:
    """The helper the other tests trust: a rasterio window read is a slice of the full array."""
    path = tmp_path / "s.tif"
    data = _striped_stack(path, np.random.default_rng(2))
    with rasterio.open(path) as ds:
        assert np.array_equal(ds.read(3, window=Window(60, 120, 120, 120)), data[2, 120:240, 60:180])


def test_a_rank_without_scenes_does_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from landzoo.mapping.run import MapOptions, map_scenes

    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    said: list[str] = []
    assert (
        map_scenes("no-checkpoint-needed", ["a.SAFE", "b.SAFE"], tmp_path / "out", MapOptions(), log=said.append) == []
    )
    assert said == ["map: rank 2 of 3 has none of the 2 scenes"]
