"""The layers of docs/architecture.md, checked on every import of src/landzoo: imports run downward only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "landzoo"

#: layer of each top-level module or package of landzoo (higher imports lower, never the reverse)
LAYERS = {
    **dict.fromkeys(("errors", "files", "hardware", "htmlpage", "_lazy", "__version__"), 0),
    **dict.fromkeys(("contract", "transforms", "metrics"), 1),
    **dict.fromkeys(("datasets", "synthetic"), 2),
    "store": 3,
    **dict.fromkeys(("models", "scaling", "checkpoint", "inference"), 4),
    "training": 5,
    **dict.fromkeys(("transfer", "mapping", "export"), 6),
    "cli": 7,
    "__main__": 8,
}


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("landzoo"):
            if node.module == "landzoo":
                out += [f"landzoo.{a.name}" for a in node.names]
            else:
                out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("landzoo.")]
    return out


FILES = sorted(p for p in SRC.rglob("*.py") if p.parent != SRC or p.name not in ("__init__.py",))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_run_downward(path: Path) -> None:
    rel = path.relative_to(SRC)
    here = rel.parts[0].removesuffix(".py")
    if here not in LAYERS:
        pytest.fail(f"{rel}: a new top-level module; give it a layer in docs/architecture.md and here")
    for target in _imports(path):
        there = target.split(".")[1]
        assert there in LAYERS, f"{rel} imports {target}, a module with no layer"
        assert LAYERS[there] <= LAYERS[here], f"{rel} (layer {here}) imports {target} (layer {there}), upward"


def test_the_engine_does_not_import_its_callers() -> None:
    """Inside training/: the engine modules never import the benchmark or its report (they are on top)."""
    for path in (SRC / "training").glob("*.py"):
        if path.stem in ("benchmark", "report", "__init__"):
            continue
        for target in _imports(path):
            assert target not in ("landzoo.training.benchmark", "landzoo.training.report"), f"{path.name}: {target}"
