"""Measure every model of the zoo once and write the catalogue that ``landzoo models`` lists.

    python scripts/make_model_catalogue.py           # rewrite src/landzoo/models/catalogue.json
    python scripts/make_model_catalogue.py --check   # exit 1 if the shipped file differs from the builders

Run it after adding or changing an architecture (tests/models/test_zoo_catalogue.py fails until then). Each
model is built on PyTorch's meta device: trainable parameters with 10 bands and 19 classes, MACs at its input
size (``landzoo.cli.models.zoo_rows``). About 20 s on a 2-core VM.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing it")
    args = parser.parse_args(argv)

    from landzoo.cli.models import CATALOGUE_FILE, catalogue_rows, read_catalogue
    from landzoo.files import atomic_write_text
    from landzoo.models import DEFAULT_BANDS, DEFAULT_CLASSES

    doc = {
        "about": "landzoo models: trainable parameters with the default bands and classes, MACs (millions) per "
        "image at the model's input size; written by scripts/make_model_catalogue.py",
        "bands": DEFAULT_BANDS,
        "classes": DEFAULT_CLASSES,
        "models": catalogue_rows(progress=sys.stderr.isatty()),
    }
    if args.check:
        shipped = read_catalogue()
        if shipped == doc:
            print(f"{CATALOGUE_FILE}: up to date ({len(doc['models'])} models)")
            return 0
        old = {r["name"]: r for r in shipped.get("models", [])}
        new = {r["name"]: r for r in doc["models"]}
        for name in sorted(old.keys() | new.keys()):
            if old.get(name) != new.get(name):
                print(f"{name}: shipped {old.get(name)} vs built {new.get(name)}", file=sys.stderr)
        print(f"{CATALOGUE_FILE} is out of date: run scripts/make_model_catalogue.py", file=sys.stderr)
        return 1
    atomic_write_text(CATALOGUE_FILE, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {CATALOGUE_FILE} ({len(doc['models'])} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
