"""Tests for the shared argument checks (``_utils.validation``)."""

import pytest
import torch

from captum_soundness._utils.validation import (
    check_choice,
    check_inputs,
    check_labels,
    check_max_examples_per_batch,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)


def test_check_inputs():
    x = torch.zeros(2, 1, 3, 3)
    assert check_inputs(x) is x
    with pytest.raises(TypeError, match="inputs"):
        check_inputs([x])
    with pytest.raises(TypeError, match="inputs"):
        check_inputs(x.numpy())
    with pytest.raises(TypeError, match="floating"):
        check_inputs(x.long())
    with pytest.raises(ValueError, match="at least 3"):
        check_inputs(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="empty"):
        check_inputs(torch.zeros(0, 1, 3, 3))


def test_check_labels():
    assert check_labels(None, 3) == [0, 1, 2]
    assert check_labels(torch.tensor([2, 0]), 3) == [2, 0]
    with pytest.raises(ValueError, match="duplicates"):
        check_labels([1, 1], 3)
    with pytest.raises(ValueError, match="outside"):
        check_labels([0, 3], 3)
    with pytest.raises(ValueError, match="at least 2"):
        check_labels([0], 3)
    with pytest.raises(TypeError, match="labels"):
        check_labels("01", 3)


def test_scalar_checks():
    assert check_positive_int(3, "steps") == 3
    for bad in (0, -1):
        with pytest.raises(ValueError, match="steps"):
            check_positive_int(bad, "steps")
    for bad in (1.0, True, "2"):
        with pytest.raises(TypeError, match="steps"):
            check_positive_int(bad, "steps")
    with pytest.raises(ValueError, match="lr"):
        check_positive_float(0.0, "lr")
    with pytest.raises(ValueError, match="lr"):
        check_positive_float(float("inf"), "lr")
    with pytest.raises(ValueError, match="tv"):
        check_nonnegative_float(-0.1, "tv")
    with pytest.raises(ValueError, match="l1"):
        check_nonnegative_float(float("nan"), "l1")
    with pytest.raises(ValueError, match="objective"):
        check_choice("foo", "objective", ("reference", "log_prob"))
    assert check_max_examples_per_batch(None) is None
    with pytest.raises(ValueError, match="max_examples_per_batch"):
        check_max_examples_per_batch(0)
