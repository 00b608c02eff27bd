"""docs/api.md runs: its Python blocks are executed in order, in one namespace, from an empty working folder.

The blocks hold their own checks (``assert``, ``torch.testing.assert_close``), so a page that drifts from the
code fails here. Each block is compiled under its own name, so a traceback says which block broke.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_page_has_examples() -> None:
    assert len(_blocks()) >= 6


def test_every_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_api"}
    for i, code in enumerate(_blocks(), 1):
        exec(compile(code, f"docs/api.md block {i}", "exec"), namespace)
    assert (tmp_path / "hub" / "wrn_eca_b0" / "model.onnx").is_file()
