"""Tests for the map similarity measures."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

from captum_soundness.sanity import (
    SIMILARITIES,
    hog_pearson,
    map_similarity,
    normalize_maps,
    pearson,
    rank_with_ties,
    spearman,
    spearman_abs,
    ssim,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_spearman_identical_and_reversed():
    a = torch.rand(4, 6, 5, generator=_gen())
    assert torch.allclose(spearman(a, a), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(spearman(a, -a), -torch.ones(4, dtype=torch.float64))
    # Invariant to monotone transforms.
    assert torch.allclose(spearman(a, torch.exp(3 * a)), torch.ones(4, dtype=torch.float64))


def test_spearman_matches_scipy_with_ties():
    g = _gen(1)
    a = torch.randint(0, 4, (5, 30), generator=g).double()
    b = torch.randint(0, 4, (5, 30), generator=g).double()
    ours = spearman(a, b)
    ref = [spearmanr(a[i].numpy(), b[i].numpy())[0] for i in range(5)]
    assert torch.allclose(ours, torch.tensor(ref, dtype=torch.float64), atol=1e-12)


def test_rank_with_ties_average_ranks():
    r = rank_with_ties(torch.tensor([[3.0, 1.0, 3.0, 2.0], [0.0, 0.0, 0.0, 1.0]]))
    assert torch.equal(r[0], torch.tensor([2.5, 0.0, 2.5, 1.0], dtype=torch.float64))
    assert torch.equal(r[1], torch.tensor([1.0, 1.0, 1.0, 3.0], dtype=torch.float64))


def test_spearman_abs_ignores_sign():
    a = torch.randn(3, 8, 8, generator=_gen(2))
    assert torch.allclose(spearman_abs(a, -a), torch.ones(3, dtype=torch.float64))
    assert bool((spearman(a, -a) < 0).all())


def test_constant_map_gives_nan():
    a = torch.rand(2, 4, 4, generator=_gen(3))
    b = a.clone()
    b[1] = 0.5
    out = spearman(a, b)
    assert out[0] == pytest.approx(1.0)
    assert math.isnan(float(out[1]))


def test_pearson_scale_invariant():
    a = torch.randn(3, 10, generator=_gen(4))
    assert torch.allclose(pearson(a, 2 * a + 1), torch.ones(3, dtype=torch.float64))


def test_normalize_maps_range_and_constant():
    a = torch.randn(3, 5, 5, generator=_gen(5))
    a[2] = -1.5
    out = normalize_maps(a)
    assert out.shape == a.shape
    assert float(out[:2].amin(dim=(1, 2)).max()) == 0.0
    assert torch.allclose(out[:2].amax(dim=(1, 2)), torch.ones(2, dtype=out.dtype))
    assert bool((out[2] == 0).all())
    # Absolute value first: a sign flip does not change the normalised map.
    assert torch.allclose(normalize_maps(-a), out)


def test_ssim_identical_is_one_and_matches_skimage():
    g = _gen(6)
    a = torch.rand(3, 20, 24, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(3, 20, 24, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert torch.allclose(ssim(a, a), torch.ones(3, dtype=torch.float64))
    ours = ssim(a, b)
    ref = [
        structural_similarity(
            a[i].numpy(),
            b[i].numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        for i in range(3)
    ]
    assert torch.allclose(ours, torch.tensor(ref, dtype=torch.float64), atol=1e-10)
    assert bool((ours < 1).all())


def test_ssim_small_maps_and_channel_dim():
    a = torch.rand(2, 1, 5, 5, generator=_gen(7))
    b = torch.rand(2, 1, 5, 5, generator=_gen(8))
    out = ssim(a, b)
    assert out.shape == (2,)
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(ssim(a, b), ssim(a[:, 0], b[:, 0]))


def test_hog_pearson_identical_and_reference():
    a = torch.rand(2, 16, 16, generator=_gen(9), dtype=torch.float64)
    b = torch.rand(2, 16, 16, generator=_gen(10), dtype=torch.float64)
    assert torch.allclose(hog_pearson(a, a), torch.ones(2, dtype=torch.float64))
    kw = {"orientations": 9, "pixels_per_cell": (8, 8), "cells_per_block": (2, 2)}
    ref = [np.corrcoef(hog(a[i].numpy(), **kw), hog(b[i].numpy(), **kw))[0, 1] for i in range(2)]
    assert torch.allclose(hog_pearson(a, b), torch.tensor(ref, dtype=torch.float64))


def test_map_similarity_dispatch_normalises_for_ssim():
    a = torch.randn(2, 12, 12, generator=_gen(11))
    # SSIM through map_similarity compares |maps|, min-max normalised: sign flip -> 1.
    assert torch.allclose(map_similarity(a, -a, "ssim"), torch.ones(2, dtype=torch.float64))
    for measure in SIMILARITIES:
        assert map_similarity(a, a, measure).shape == (2,)


def test_bad_inputs():
    a = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="measure"):
        map_similarity(a, a, "kendall")
    with pytest.raises(ValueError, match="same shape"):
        spearman(a, torch.rand(2, 4, 5))
    with pytest.raises(TypeError, match="`a`"):
        spearman(a.numpy(), a)
    with pytest.raises(ValueError, match="window_size"):
        ssim(a, a, window_size=4)
    with pytest.raises(ValueError, match="2-D maps"):
        ssim(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4))
