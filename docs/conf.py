"""Sphinx configuration of the captum-soundness documentation.

Build with ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``).
The tutorial notebooks live in ``tutorials/`` at the repository root; they are executed
by ``make tutorials`` (``scripts/run_tutorials.py``), which stores their outputs in
place, and copied here into ``docs/tutorials/`` (git-ignored) at build time. Sphinx never
executes them (``nb_execution_mode = "off"``).
"""

from __future__ import annotations

import shutil
import sys
from datetime import date
from pathlib import Path

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
