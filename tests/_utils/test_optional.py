"""Tests for ``_utils.optional``: optional dependencies with an install hint."""

import math

import pytest

from captum_soundness._utils.optional import import_optional


def test_import_optional_returns_the_module():
    assert import_optional("math", "unused") is math


def test_import_optional_missing_module_says_how_to_install():
    with pytest.raises(ImportError, match="pip install nothing-here") as info:
        import_optional("captum_soundness_no_such_module", "needs it: pip install nothing-here")
    assert isinstance(info.value.__cause__, ImportError)
