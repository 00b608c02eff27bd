"""Fault catalogue, readers: dataset pickles that would run code are refused before anything is called."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from landzoo.datasets import DatasetError, open_dataset
from landzoo.datasets.pickles import UnsafePickleError, load_data_pickle
from landzoo.datasets.sen12ms import read_split_list
from landzoo.synthetic import generate


class _Payload:
    """Unpickling this calls ``os.system`` (the classic crafted-pickle attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def sen12ms_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("sen12ms", tmp_path_factory.mktemp("s12") / "sen12ms", patches=8, seed=0)


@pytest.mark.parametrize("proto", [2, 3, 4, 5])
def test_real_data_types_round_trip(tmp_path: Path, proto: int) -> None:
    """What the official files hold (dict of float arrays, list of names) loads exactly, in every protocol."""
    data = {"a.tif": np.array([0.25, 0.75]), "b.tif": np.arange(17, dtype=np.float32), "n": np.float64(0.5)}
    names = ["ROIs1158_spring_s2_1_p30.tif", "ROIs1158_spring_s2_1_p31.tif"]
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps((data, names), protocol=proto))
    got, got_names = load_data_pickle(p)
    assert got_names == names
    assert set(got) == set(data)
    for k, v in data.items():
        np.testing.assert_array_equal(got[k], v)
        assert np.asarray(got[k]).dtype == np.asarray(v).dtype


def test_malicious_split_list_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "train_list.pkl"
    path.write_bytes(pickle.dumps([_Payload(marker)], protocol=3))
    with pytest.raises(DatasetError, match=r"refusing split list .*train_list\.pkl.*(posix|os)\.system"):
        read_split_list(path)
    assert not marker.exists()


def test_malicious_label_file_runs_nothing_at_inspect(sen12ms_root: Path, tmp_path: Path) -> None:
    """The crafted label pickle of a whole dataset: `open_dataset` (what `inspect` runs) refuses it, runs nothing."""
    marker = tmp_path / "pwned"
    labels = tmp_path / "IGBP_probability_labels.pkl"
    labels.write_bytes(pickle.dumps({"x.tif": _Payload(marker)}, protocol=3))
    with pytest.raises(DatasetError, match=r"refusing label file .*IGBP_probability_labels\.pkl"):
        ds = open_dataset("sen12ms", sen12ms_root, labels_path=labels)
        ds[0]
    assert not marker.exists()


def test_globals_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps({"f": print}, protocol=3))  # a harmless builtin is still not data
    with pytest.raises(UnsafePickleError, match=r"builtins\.print"):
        load_data_pickle(p)
