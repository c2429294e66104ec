"""Tests for the generators of ``_utils.rng``: the global RNG is never touched."""

import pytest
import torch

from captum_soundness._utils.rng import SEED_SPACE, draw_seeds, make_generator


def test_make_generator_does_not_touch_global_rng():
    before = torch.random.get_rng_state()
    g1, g2 = make_generator(7, "cpu"), make_generator(7, "cpu")
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    make_generator(None, "cpu")
    assert torch.equal(before, torch.random.get_rng_state())
    g = torch.Generator()
    assert make_generator(g, "cpu") is g
    with pytest.raises(TypeError, match="seed"):
        make_generator("1", "cpu")


def test_draw_seeds_in_range_and_reproducible():
    seeds = draw_seeds(make_generator(3, "cpu"), 5)
    assert seeds == draw_seeds(make_generator(3, "cpu"), 5)
    assert len(seeds) == 5 and all(0 <= s < SEED_SPACE for s in seeds)


def test_generator_on_another_device_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        make_generator(torch.Generator(), "meta")
