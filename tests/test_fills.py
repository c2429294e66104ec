"""Tests for the fill distributions of captum_soundness.fills."""

import numpy as np
import pytest
import torch

from captum_soundness.fills import (
    BlurFill,
    ConstantFill,
    DatasetFill,
    Fill,
    MeanFill,
    NoiseFill,
    as_fill,
)

SHAPE = (3, 2, 5, 6)  # (N, C, H, W)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _all_fills(shape=SHAPE):
    pool = torch.rand(7, *shape[1:], generator=_gen(1))
    return [
        ConstantFill(0.25),
        ConstantFill(torch.tensor([0.1, -0.2]).view(2, 1, 1)),
        MeanFill(),
        BlurFill(sigma=1.0),
        NoiseFill("uniform", low=-1.0, high=2.0),
        NoiseFill("gaussian", mean=1.0, std=0.5),
        DatasetFill(pool),
    ]


ALL_FILLS = _all_fills()


@pytest.mark.parametrize("fill", ALL_FILLS, ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_shape_dtype_device_follow_inputs(fill, dtype):
    x = torch.rand(SHAPE, generator=_gen()).to(dtype)
    out = fill.sample(x, 4, _gen())
    expected_lead = 1 if fill.deterministic else 4
    assert out.shape == (expected_lead, *SHAPE)
    assert out.dtype == dtype
    assert out.device == x.device
    assert bool(torch.isfinite(out.float()).all())
    # deterministic fills broadcast against any number of samples
    assert torch.broadcast_shapes(out.shape, (4, *SHAPE)) == (4, *SHAPE)


@pytest.mark.parametrize("spatial", [(9,), (4, 5), (3, 4, 2)])
def test_any_number_of_spatial_dims(spatial):
    shape = (2, 3, *spatial)
    x = torch.rand(shape, generator=_gen())
    for fill in [ConstantFill(1.0), MeanFill(), BlurFill(1.0), NoiseFill(), DatasetFill(x)]:
        out = fill.sample(x, 2, _gen())
        assert out.shape[1:] == shape


def test_constant_fill_values():
    x = torch.rand(SHAPE, generator=_gen())
    assert bool((ConstantFill(0.25).sample(x) == 0.25).all())
    colour = torch.tensor([0.1, -0.2]).view(2, 1, 1)
    out = ConstantFill(colour).sample(x)[0]
    assert torch.equal(out[:, 0], torch.full(SHAPE[2:], 0.1).expand(3, -1, -1))
    assert torch.equal(out[:, 1], torch.full(SHAPE[2:], -0.2).expand(3, -1, -1))
    assert as_fill(None).sample(x).abs().sum() == 0


def test_mean_fill_values():
    x = torch.rand(SHAPE, generator=_gen())
    out = MeanFill().sample(x)[0]
    expected = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    assert torch.allclose(out, expected)


def test_blur_fill_values():
    x = torch.rand(SHAPE, generator=_gen())
    out = BlurFill(sigma=1.0).sample(x)[0]
    # smoother than the input, same per-channel mean up to the replicate borders
    assert (out[..., 1:, :] - out[..., :-1, :]).abs().mean() < (
        x[..., 1:, :] - x[..., :-1, :]
    ).abs().mean()
    # a constant image is a fixed point, also when the kernel is wider than the image
    const = torch.full((1, 1, 2, 3), 0.7)
    assert torch.allclose(BlurFill(sigma=5.0).sample(const)[0], const)
    # a single bright pixel spreads, the total is kept away from the borders
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[0, 0, 7, 7] = 1.0
    blurred = BlurFill(sigma=1.0).sample(impulse)[0]
    assert blurred[0, 0, 7, 7] < 1 and abs(float(blurred.sum()) - 1.0) < 1e-5


def test_noise_fill_ranges_and_moments():
    x = torch.zeros(4, 1, 32, 32)
    u = NoiseFill("uniform", low=-1.0, high=2.0).sample(x, 8, _gen())
    assert u.min() >= -1.0 and u.max() < 2.0
    assert abs(float(u.mean()) - 0.5) < 0.05
    g = NoiseFill("gaussian", mean=1.0, std=0.5).sample(x, 8, _gen())
    assert abs(float(g.mean()) - 1.0) < 0.02 and abs(float(g.std()) - 0.5) < 0.02
    # independent across samples and examples
    assert not torch.equal(u[0], u[1]) and not torch.equal(u[0, 0], u[0, 1])


def test_dataset_fill_draws_pool_images_independently():
    pool = torch.arange(50.0).view(50, 1, 1, 1).expand(50, 1, 2, 2).contiguous()
    x = torch.zeros(6, 1, 2, 2)
    out = DatasetFill(pool).sample(x, 40, _gen())
    assert out.shape == (40, 6, 1, 2, 2)
    # every drawn fill is one whole pool image
    ids = out[..., 0, 0, 0]
    assert torch.equal(out, ids.view(40, 6, 1, 1, 1).expand_as(out))
    assert bool(((ids >= 0) & (ids < 50) & (ids == ids.round())).all())
    # independent draws per example (columns) and per sample (rows): many distinct images
    assert all(len(set(ids[:, i].tolist())) > 15 for i in range(6))
    assert all(len(set(ids[j].tolist())) > 1 for j in range(40))
    assert not torch.equal(ids[:, 0], ids[:, 1])
    # (nearly) the whole pool is used: 240 draws from 50 images hit ~49.6 on average
    assert len(set(ids.flatten().tolist())) >= 40


def test_dataset_fill_pool_dtype_is_converted_and_cached():
    pool = torch.rand(5, 2, 3, 3, dtype=torch.float64)
    fill = DatasetFill(pool)
    x = torch.zeros(2, 2, 3, 3, dtype=torch.float16)
    out = fill.sample(x, 3, _gen())
    assert out.dtype == torch.float16
    again = fill.sample(x, 3, _gen())
    assert torch.equal(out, again)
    assert len(fill._cache) == 1


@pytest.mark.parametrize("fill", [f for f in ALL_FILLS if not f.deterministic], ids=repr)
def test_generator_reproducibility(fill):
    x = torch.rand(SHAPE, generator=_gen())
    a = fill.sample(x, 5, _gen(3))
    b = fill.sample(x, 5, _gen(3))
    c = fill.sample(x, 5, _gen(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # generator=None gives fresh randomness
    assert not torch.equal(fill.sample(x, 5), fill.sample(x, 5))


@pytest.mark.parametrize("fill", ALL_FILLS, ids=repr)
def test_global_rng_rule(fill):
    """An explicit generator leaves PyTorch's global RNG alone; ``generator=None`` draws
    one seed from it (deterministic fills draw nothing), so torch.manual_seed repeats."""
    x = torch.rand(SHAPE, generator=_gen())
    before = torch.random.get_rng_state()
    fill.sample(x, 3, _gen())
    assert torch.equal(before, torch.random.get_rng_state())
    torch.manual_seed(5)
    seeded = torch.random.get_rng_state()
    a = fill.sample(x, 3)
    advanced = not torch.equal(torch.random.get_rng_state(), seeded)
    torch.manual_seed(5)
    assert torch.equal(a, fill.sample(x, 3))
    if fill.deterministic:
        torch.manual_seed(5)
        state = torch.random.get_rng_state()
        fill.sample(x, 3)
        assert torch.equal(state, torch.random.get_rng_state())
    else:
        assert advanced


def test_deterministic_flags():
    assert ConstantFill().deterministic and MeanFill().deterministic
    assert BlurFill().deterministic
    assert not NoiseFill().deterministic
    assert not DatasetFill(torch.zeros(1, 1, 2, 2)).deterministic


def test_as_fill():
    assert isinstance(as_fill(None), ConstantFill) and as_fill(None).value == 0.0
    assert as_fill(0.5).value == 0.5
    assert as_fill(np.float32(0.5)).value == 0.5
    assert as_fill(2).value == 2.0
    tensor_fill = as_fill(torch.tensor([1.0, 2.0]).view(2, 1, 1))
    assert isinstance(tensor_fill, ConstantFill)
    noise = NoiseFill()
    assert as_fill(noise) is noise
    for bad in ("zero", True, [0.0]):
        with pytest.raises(TypeError, match="fill"):
            as_fill(bad)
    assert "DatasetFill(pool=<3 images" in repr(DatasetFill(torch.zeros(3, 1, 2, 2)))


def test_sample_rejects_bad_arguments():
    x = torch.zeros(2, 1, 4, 4)
    fill = NoiseFill()
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n_samples"):
            fill.sample(x, bad)
    for bad in (1.0, True, "2"):
        with pytest.raises(TypeError, match="n_samples"):
            fill.sample(x, bad)
    assert fill.sample(x, np.int64(2)).shape[0] == 2  # numpy ints are ints
    with pytest.raises(TypeError, match="inputs"):
        fill.sample(x.numpy(), 1)
    with pytest.raises(TypeError, match="floating"):
        fill.sample(x.long(), 1)
    with pytest.raises(ValueError, match="empty"):
        fill.sample(torch.zeros(0, 1, 4, 4), 1)
    with pytest.raises(TypeError, match="generator"):
        fill.sample(x, 1, generator=0)


def test_sample_rejects_generator_on_other_device():
    # A CPU generator for inputs on another device ("meta" stands in for a GPU here).
    with pytest.raises(ValueError, match="generator"):
        NoiseFill().sample(torch.zeros(2, 1, 4, 4, device="meta"), 1, torch.Generator())


def test_constructors_reject_bad_arguments():
    with pytest.raises(TypeError, match="value"):
        ConstantFill("0")
    with pytest.raises(ValueError, match="value"):
        ConstantFill(float("nan"))
    with pytest.raises(ValueError, match="value"):
        ConstantFill(torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError, match="sigma"):
        BlurFill(sigma=0.0)
    with pytest.raises(ValueError, match="truncate"):
        BlurFill(truncate=-1.0)
    with pytest.raises(ValueError, match="kind"):
        NoiseFill("salt")
    with pytest.raises(ValueError, match="high"):
        NoiseFill(low=1.0, high=1.0)
    with pytest.raises(ValueError, match="std"):
        NoiseFill("gaussian", std=0.0)
    with pytest.raises(ValueError, match="low"):
        NoiseFill(low=float("-inf"))
    with pytest.raises(TypeError, match="mean"):
        NoiseFill(mean="0")
    with pytest.raises(TypeError, match="pool"):
        DatasetFill([[0.0]])
    with pytest.raises(TypeError, match="pool"):
        DatasetFill(torch.zeros(3, 1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        DatasetFill(torch.zeros(0, 1, 2, 2))
    with pytest.raises(ValueError, match="pool"):
        DatasetFill(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        DatasetFill(torch.full((2, 1, 2, 2), float("nan")))


def test_incompatible_fills_are_rejected():
    x = torch.zeros(2, 1, 8, 8)
    # pool images of the wrong size or number of channels
    for pool in (torch.zeros(4, 1, 7, 8), torch.zeros(4, 3, 8, 8)):
        with pytest.raises(ValueError, match="pool"):
            DatasetFill(pool).sample(x, 1)
        with pytest.raises(ValueError, match="fill"):
            DatasetFill(pool).check_compatible(x)
    # a colour with more channels than the inputs: rejected up front, not in expand
    for value in (torch.zeros(3, 1, 1), torch.zeros(1, 1, 1, 1), torch.zeros(5)):
        with pytest.raises(ValueError, match="constant fill"):
            ConstantFill(value).sample(x, 1)
    ConstantFill(torch.zeros(1, 8)).check_compatible(x)  # broadcasts: fine


def test_fill_is_abstract():
    with pytest.raises(TypeError):
        Fill()
