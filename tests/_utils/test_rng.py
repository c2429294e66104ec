"""Tests of ``_utils.rng``: explicit seeds leave the global RNG alone; None draws once."""

import pytest
import torch

from captum_soundness._utils.rng import SEED_SPACE, draw_seeds, global_seed, make_generator


def test_make_generator_seeding_rule():
    """int seeds and generators leave the global RNG alone; None draws exactly one seed
    from it (DataLoader's rule), so torch.manual_seed makes it repeatable."""
    before = torch.random.get_rng_state()
    g1, g2 = make_generator(7, "cpu"), make_generator(7, "cpu")
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    g = torch.Generator()
    assert make_generator(g, "cpu") is g
    assert torch.equal(before, torch.random.get_rng_state())
    torch.manual_seed(11)
    a = torch.rand(3, generator=make_generator(None, "cpu"))
    after_one = torch.random.get_rng_state()
    torch.manual_seed(11)
    torch.empty((), dtype=torch.int64).random_()  # exactly one int64 draw
    assert torch.equal(after_one, torch.random.get_rng_state())
    torch.manual_seed(11)
    assert torch.equal(a, torch.rand(3, generator=make_generator(None, "cpu")))
    assert global_seed() != global_seed()
    with pytest.raises(TypeError, match="seed"):
        make_generator("1", "cpu")


def test_draw_seeds_in_range_and_reproducible():
    seeds = draw_seeds(make_generator(3, "cpu"), 5)
    assert seeds == draw_seeds(make_generator(3, "cpu"), 5)
    assert len(seeds) == 5 and all(0 <= s < SEED_SPACE for s in seeds)


def test_generator_on_another_device_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        make_generator(torch.Generator(), "meta")
