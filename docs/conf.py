"""Sphinx configuration of the captum-soundness documentation.

Build with ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``).
The tutorial notebooks live in ``tutorials/`` at the repository root; they are executed
by ``make tutorials`` (``scripts/run_tutorials.py``), which stores their outputs in
place, and copied here into ``docs/tutorials/`` (git-ignored) at build time. Sphinx never
executes them (``nb_execution_mode = "off"``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import shutil
import sys
import warnings
from datetime import date
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import captum_soundness  # noqa: E402

# -- copy the tutorial notebooks -----------------------------------------------------------


def _copy_tutorials() -> None:
    """Mirrors ``tutorials/*.ipynb`` into ``docs/tutorials/`` (only changed files)."""
    target = DOCS / "tutorials"
    target.mkdir(exist_ok=True)
    sources = sorted((ROOT / "tutorials").glob("*.ipynb"))
    names = {path.name for path in sources}
    for stale in target.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()
    for source in sources:
        copy = target / source.name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            shutil.copyfile(source, copy)


_copy_tutorials()

# -- project -------------------------------------------------------------------------------

project = "captum-soundness"
author = "captum-soundness developers"
copyright = f"{date.today().year}, {author}"
release = captum_soundness.__version__
version = ".".join(release.split(".")[:2])

# -- general -------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "myst_nb",
]

source_suffix = {
    ".rst": "restructuredtext",
    ".md": "myst-nb",
    ".ipynb": "myst-nb",
}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path: list[str] = []

# Object references that cannot be resolved are reported (warnings are errors).
nitpicky = False

# -- autodoc -------------------------------------------------------------------------------

autodoc_default_options = {
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_class_signature = "mixed"
autodoc_preserve_defaults = True
autoclass_content = "class"
add_module_names = False
python_use_unqualified_type_names = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_use_rtype = False
napoleon_preprocess_types = False

# -- MyST / notebooks ----------------------------------------------------------------------

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # executed by `make tutorials`, outputs stored in the notebooks
nb_merge_streams = True

# -- HTML ----------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"captum-soundness {release}"
html_static_path = ["_static"]
html_theme_options = {
    "source_repository": "https://github.com/captum-soundness/captum-soundness",
    "source_branch": "main",
    "source_directory": "docs/",
}

# -- the package layout: public modules over private ones -----------------------------------


def _package_modules() -> dict[str, object]:
    """Every module of the package, by name (deprecated aliases imported silently)."""
    modules: dict[str, object] = {"captum_soundness": captum_soundness}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for info in pkgutil.walk_packages(captum_soundness.__path__, "captum_soundness."):
            modules[info.name] = importlib.import_module(info.name)
    return modules


def _copy_reexported_attribute_docs(app: Sphinx) -> None:
    """Public packages (``captum_soundness.metrics``...) re-export constants documented by
    ``#:`` comments in their private modules. Autodoc reads such comments from the source
    of the documented module only, so they are copied to the public modules' analyzers."""
    modules = _package_modules()
    comments: dict[tuple[str, int], list[str]] = {}
    for name, module in modules.items():
        for (namespace, attr), lines in ModuleAnalyzer.for_module(name).find_attr_docs().items():
            if namespace == "" and hasattr(module, attr):
                comments[(attr, id(getattr(module, attr)))] = lines
    for name, module in modules.items():
        if any(part.startswith("_") for part in name.split(".")):
            continue
        attr_docs = ModuleAnalyzer.for_module(name).find_attr_docs()
        for attr in getattr(module, "__all__", ()):
            key = (attr, id(getattr(module, attr)))
            if ("", attr) not in attr_docs and key in comments:
                attr_docs[("", attr)] = comments[key]


class CommandHelp(SphinxDirective):
    """``.. command-help::`` (the ``captum-soundness`` help) or ``.. command-help:: NAME``
    (the help of its sub-command ``NAME``), as a literal block, 88 columns wide."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        from captum_soundness.benchmark import build_parser

        parser = build_parser()
        if self.arguments:
            (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            parser = sub.choices[self.arguments[0]]
        columns = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"
        try:
            text = parser.format_help()
        finally:
            if columns is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = columns
        return [nodes.literal_block(text, text, language="text")]


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _copy_reexported_attribute_docs)
    app.add_directive("command-help", CommandHelp)
