"""The 0.1 module paths keep working for one release, with a DeprecationWarning."""

import importlib
import sys

import pytest

ALIASES = {
    "captum_soundness.curves": "captum_soundness.metrics",
    "captum_soundness.evaluation": "captum_soundness.metrics",
    "captum_soundness.axioms": "captum_soundness.metrics",
    "captum_soundness.similarity": "captum_soundness.sanity",
    "captum_soundness.cli": "captum_soundness.benchmark",
    "captum_soundness.attr.simple_masking": "captum_soundness.attr",
    "captum_soundness.attr.gradcam_plus_plus": "captum_soundness.attr",
    "captum_soundness.attr.fullgrad": "captum_soundness.attr",
}


@pytest.mark.parametrize(("old", "new"), sorted(ALIASES.items()))
def test_old_module_path_warns_and_reexports(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    target = importlib.import_module(new)
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is getattr(target, name), name
