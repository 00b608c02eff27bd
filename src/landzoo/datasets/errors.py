"""The readers' errors: one for the dataset as a whole, one naming a patch and the file at fault."""

from __future__ import annotations

import os

from landzoo.errors import LandzooError

__all__ = ["DatasetError", "PatchError"]


class DatasetError(LandzooError):
    """A dataset-level problem (missing root, missing split list, bad option)."""


class PatchError(DatasetError):
    """A problem with one patch; the message names the patch and the file at fault."""

    def __init__(self, patch_id: str, path: str | os.PathLike | None, reason: str) -> None:
        self.patch_id = patch_id
        self.path = None if path is None else str(path)
        self.reason = reason
        where = f" ({self.path})" if self.path else ""
        super().__init__(f"patch {patch_id}{where}: {reason}")

    def __reduce__(self) -> tuple:
        # picklable with its fields (a DataLoader or encode worker sends it to the parent process)
        return (type(self), (self.patch_id, self.path, self.reason))
