"""Where ../shared/fixtures is, and a skip with a reason when it is absent (imported by the tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def shared_fixture(*parts: str) -> Path:
    """Path to a file or folder under ../shared/fixtures, or skip the test with a reason if absent."""
    path = SHARED_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real-sample fixture {path} is absent (it lives in ../shared, beside a development checkout)")
    return path
