"""Fails when a public name of the package is missing from the built API reference.

Run after ``sphinx-build`` (``make docs`` does): every name in the ``__all__`` of every
public module of :mod:`captum_soundness` must appear in ``docs/_build/html/objects.inv``,
documented in that module or, for re-exports, under the same name in another module.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from sphinx.util.inventory import InventoryFile

import captum_soundness

INVENTORY = Path(__file__).resolve().parents[1] / "_build" / "html" / "objects.inv"


def main() -> int:
    with INVENTORY.open("rb") as handle:
        inventory = InventoryFile.load(handle, "", lambda base, uri: uri)
    documented = {name for entries in inventory.values() for name in entries}
    short = {
        name.rsplit(".", 1)[-1] for name in documented if name.startswith("captum_soundness.")
    }
    missing = []
    modules = pkgutil.walk_packages(captum_soundness.__path__, "captum_soundness.")
    for info in modules:
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            if f"{info.name}.{name}" not in documented and name not in short:
                missing.append(f"{info.name}.{name}")
    if missing:
        print("Public names missing from the API reference:", *missing, sep="\n  ")
        return 1
    print(f"API reference covers every public name ({len(documented)} objects).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
