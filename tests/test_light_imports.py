"""What a fast start rests on: the CLI's parser, ``import landzoo`` and ``import landzoo.store`` import nothing heavy.

Each check runs in a fresh interpreter (the test process has torch loaded already) and reads ``sys.modules``;
the time itself is measured by ``benchmarks/bench_cli.py``, not here. The timm registration on timm's import
is checked in both import orders.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "timm", "rasterio", "pandas", "pyarrow", "matplotlib", "torchmetrics")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import landzoo",
        "import landzoo.store",
        "from landzoo.store import StoreError",
        "import landzoo.contract, landzoo.errors, landzoo.files",
        "from landzoo.cli import build_parser; build_parser()",
    ],
)
def test_light_modules_import_nothing_heavy(code: str) -> None:
    assert _loaded_after(code) == []


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["fit", "--help"], ["models", "--help"]])
def test_cli_help_and_version_import_nothing_heavy(argv: list[str]) -> None:
    code = f"import sys\nfrom landzoo.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code == 0"
    assert _loaded_after(code) == []


def test_the_store_reader_imports_torch_only_when_used() -> None:
    # the Dataset class needs torch; asking for it is the moment torch is imported
    assert "torch" in _loaded_after("from landzoo.store import StoreDataset")


@pytest.mark.parametrize("order", ["import landzoo, timm", "import timm, landzoo", "import landzoo.store, timm"])
def test_the_zoo_is_registered_in_timm_in_either_import_order(order: str) -> None:
    code = f"{order}\nm = timm.create_model('wrn_eca_b0', in_chans=10, num_classes=19)\nprint(type(m).__name__)"
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split()[-1] == "WideResNet"
