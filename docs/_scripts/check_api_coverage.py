"""Fails unless every public name of the package is documented exactly once in the built API
reference.

Usage: ``python docs/_scripts/check_api_coverage.py [BUILD_DIR]`` after ``sphinx-build``
(``make docs`` runs both; ``BUILD_DIR`` defaults to ``docs/_build/html``).

The public modules are the modules of :mod:`captum_soundness` without an underscore in their
path, less the deprecated aliases of 0.1 module paths (modules whose import raises a
``DeprecationWarning``). Every name in their ``__all__`` must be documented in the
inventory (``objects.inv``) exactly once: a name that several public modules export (a
re-export such as ``metrics.restrict_labels`` of ``labels.restrict_labels``) is documented
under one of them, and never again under another path (a private module included).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

from sphinx.util.inventory import InventoryFile

import captum_soundness

DEFAULT_BUILD = Path(__file__).resolve().parents[1] / "_build" / "html"
#: Inventory roles of module-level objects (class members are not counted).
MODULE_LEVEL_ROLES = ("py:function", "py:class", "py:data", "py:exception")


def _import(name: str) -> tuple[ModuleType, bool]:
    """The module, and whether importing it raised a ``DeprecationWarning``."""
    already = name in sys.modules
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(name)
    deprecated = any(issubclass(w.category, DeprecationWarning) for w in caught)
    return module, deprecated and not already


def public_modules() -> dict[str, ModuleType]:
    """Public, non-deprecated modules of the package, by name (the package itself first)."""
    modules = {"captum_soundness": captum_soundness}
    for info in pkgutil.walk_packages(captum_soundness.__path__, "captum_soundness."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module, deprecated = _import(info.name)
        if not deprecated:
            modules[info.name] = module
    return modules


def _resolve(qualified: str) -> Any:
    """The object a documented ``module.name`` refers to (``None`` if it does not import)."""
    module_name, _, name = qualified.rpartition(".")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, name, None)


def documented_objects(build: Path) -> dict[tuple[str, int], dict[str, str]]:
    """Documented module-level objects of the package: (name, id(object)) -> {place in the
    built pages: path documented there}. Sphinx also lists a class under its canonical
    (defining, private) path, at the same place: one place is one documentation."""
    with (build / "objects.inv").open("rb") as handle:
        inventory = InventoryFile.load(handle, "", lambda base, uri: uri)
    documented: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for role in MODULE_LEVEL_ROLES:
        for qualified, item in inventory.get(role, {}).items():
            obj = _resolve(qualified) if qualified.startswith("captum_soundness") else None
            if obj is not None:
                place = getattr(item, "uri", None) or item[2]  # the page and anchor
                paths = documented[(qualified.rpartition(".")[2], id(obj))]
                if place not in paths or "._" in paths[place]:  # name the public path
                    paths[place] = qualified
    return documented


def main(argv: list[str]) -> int:
    build = Path(argv[0]) if argv else DEFAULT_BUILD
    documented = documented_objects(build)
    exported: dict[tuple[str, int], list[str]] = defaultdict(list)
    for module_name, module in public_modules().items():
        for name in getattr(module, "__all__", []):
            exported[(name, id(getattr(module, name)))].append(f"{module_name}.{name}")
    problems = []
    for key, paths in exported.items():
        places = documented.get(key, {})
        if len(places) != 1:
            where = ", ".join(places.values()) if places else "nowhere"
            problems.append(f"{' = '.join(paths)}: documented {len(places)} times ({where})")
    if problems:
        print("Public names not documented exactly once:", *sorted(problems), sep="\n  ")
        return 1
    print(f"API reference documents each of the {len(exported)} public objects exactly once.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
