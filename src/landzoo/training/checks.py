"""Input checks that run before anything trains: the model names exist in the zoo, the store is complete."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from landzoo.training.errors import RunError

__all__ = ["check_model_names", "check_store"]


def check_model_names(names: Sequence[str]) -> None:
    """Refuse unknown model names before anything trains (the reference code fell back to a linear model)."""
    from landzoo import models

    known = _known_models(models)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `landzoo models` lists them"
            raise RunError(f"unknown model {name!r}{hint}")


def _known_models(models: Any) -> list[str]:
    for attr in ("list_models", "model_names", "catalogue"):
        fn = getattr(models, attr, None)
        if callable(fn):
            out = fn()
            if isinstance(out, dict):
                return list(out)
            names = []
            for item in out:
                names.append(
                    item
                    if isinstance(item, str)
                    else getattr(item, "name", item.get("name") if isinstance(item, dict) else str(item))
                )
            return names
    raise RunError("the model zoo (landzoo.models) offers no catalogue of names")  # pragma: no cover


def check_store(store: str | Path | None, splits: Sequence[str] = ()) -> Path:
    """The store folder, which must exist and be complete (its manifest is written last)."""
    if store is None:
        raise RunError("no data store given (data.store=PATH or --data PATH); build one with `landzoo encode`")
    from landzoo.store.format import StoreError
    from landzoo.store.reader import check_store_folder

    try:  # says what the path is instead (a GeoTIFF, a raw folder, an interrupted encode) and the next step
        path = check_store_folder(store)
        if splits:
            from landzoo.store.reader import Store

            opened = Store(path)
            for split in splits:
                opened.rows(split)  # a split the store lacks is named with the ones it has
        return path
    except StoreError as err:
        raise RunError(str(err)) from None
