"""The host's CPU model name, as every benchmark and cost record writes it.

One helper rather than a copy per report: the I/O benchmark (:mod:`landzoo.store.bench`), the model
benchmark (:mod:`landzoo.models.bench`) and the training cost records (:mod:`landzoo.training.cost`) put
this string side by side with their numbers, so they must name the same machine the same way to be
compared. Standard library only, so it is cheap to import from anywhere.
"""

from __future__ import annotations

import platform
from pathlib import Path

__all__ = ["CPUINFO", "cpu_name"]

#: Where Linux lists the CPUs (a module attribute so that tests can point it elsewhere).
CPUINFO = Path("/proc/cpuinfo")


def cpu_name() -> str:
    """The first ``model name`` in ``/proc/cpuinfo`` (Linux), else ``platform.processor()`` or the machine type.

    ``platform.processor()`` is often empty or just ``x86_64`` on Linux, hence ``/proc/cpuinfo`` first; ARM
    Linux kernels may list no ``model name``, and other systems have no ``/proc``: both fall back.
    """
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()
