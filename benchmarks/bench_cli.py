"""Benchmark the command line's start: ``landzoo --help``, ``--version``, every ``COMMAND --help``, ``landzoo models``.

    python benchmarks/bench_cli.py                                  # writes benchmarks/results/cli-vm.json
    python benchmarks/bench_cli.py --src /tmp/old/src --out old.json   # the same for another source tree

Each command runs in a fresh interpreter (``python -m landzoo ...``, the sources of ``--src`` first on the path),
``--repeat`` times; the JSON holds the median and the maximum wall time per command, the targets (1 s for help
and version, 3 s for ``landzoo models``), the hardware (CPU model and core count, no host name), the load average
before and after, and the library versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"help": 1.0, "models": 3.0}


def _time(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "landzoo", *argv], env=env, capture_output=True, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="source tree to time (default: this one)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (default: 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cli-vm.json")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(args.src))
    from landzoo.cli import build_parser
    from landzoo.files import atomic_write_text
    from landzoo.hardware import cpu_name

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(args.src), os.environ.get("PYTHONPATH", "")])}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    commands = [["--help"], ["--version"], *([c, "--help"] for c in sub.choices), ["models"]]
    load_before = os.getloadavg()
    results = []
    for cmd in commands:
        times = [_time(cmd, env) for _ in range(args.repeat)]
        target = TARGETS["models"] if cmd == ["models"] else TARGETS["help"]
        results.append(
            {
                "command": "landzoo " + " ".join(cmd),
                "median_s": round(statistics.median(times), 3),
                "max_s": round(max(times), 3),
                "target_s": target,
                "met": max(times) < target,
            }
        )
        print(f"{results[-1]['command']:<32} median {results[-1]['median_s']:.2f} s  max {results[-1]['max_s']:.2f} s")
    versions = {}
    for lib in ("torch", "timm", "lightning", "numpy"):
        try:
            from importlib.metadata import version

            versions[lib] = version(lib)
        except Exception:  # pragma: no cover - a library not installed
            versions[lib] = None
    doc = {
        "benchmark": "cli start-up (fresh interpreter per run)",
        "src": str(args.src),
        "repeat": args.repeat,
        "results": results,
        "all_met": all(r["met"] for r in results),
        "hardware": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
