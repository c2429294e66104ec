"""Tests for captum_soundness.attr.SimpleMasking (tiny models, few steps)."""

import warnings

import pytest
import torch
from captum.attr import Attribution
from helpers import (
    PATCH,
    CountingModel,
    PatchModel,
    assert_chunking_invariant,
    assert_global_rng_untouched,
    assert_model_untouched,
    assert_seeded_determinism,
    bn_dropout_cnn,
    mark_model_state,
    patch_inputs,
    seeded_linear,
    seeded_randn,
)
from torch import nn

from captum_soundness._utils.baselines import UNSET
from captum_soundness.attr import SimpleMasking
from captum_soundness.fills import BlurFill, ConstantFill, DatasetFill, MeanFill, NoiseFill
from captum_soundness.masking import compose, fraction_counts, rank_positions, topk_masks

# ---------------------------------------------------------------------------------------
# data (toy models: helpers.models)


def _x(n=3, c=2, h=6, w=5, seed=1):
    return seeded_randn(n, c, h, w, seed=seed)


FAST = {"steps": 15, "n_fill_samples": 3}


def _insertion(model, x, maps, target, n_grid=9):
    """Mean over the grid of p_target(top-k of maps kept, constant fill 0)."""
    p = x[0, 0].numel()
    ranks = rank_positions(maps)
    counts = fraction_counts(torch.arange(1, n_grid + 1, dtype=torch.float64) / n_grid, p)
    keep = topk_masks(ranks, counts).view(x.shape[0], n_grid, 1, *x.shape[2:])
    masked = compose(x.unsqueeze(1), keep, torch.zeros(()))
    with torch.no_grad():
        probs = model(masked.flatten(0, 1)).softmax(dim=1).view(x.shape[0], n_grid, -1)
    return probs.gather(2, target.view(-1, 1, 1).expand(-1, n_grid, 1)).squeeze(2).mean(1)


def _tv(m):
    return ((m[:, :-1, :-1] - m[:, 1:, :-1]) ** 2 + (m[:, :-1, :-1] - m[:, :-1, 1:]) ** 2).sum(
        dim=(1, 2)
    )


# ---------------------------------------------------------------------------------------
# behaviour


def test_is_a_captum_attribution():
    sm = SimpleMasking(seeded_linear())
    assert isinstance(sm, Attribution)
    assert not sm.multiplies_by_inputs and not sm.has_convergence_delta()
    assert sm.get_name() == "Simple Masking"


@pytest.mark.parametrize("objective", ["reference", "log_prob"])
@pytest.mark.parametrize(
    "fill",
    [
        NoiseFill("gaussian"),
        DatasetFill(torch.randn(50, 1, 12, 12, generator=torch.Generator().manual_seed(2))),
        ConstantFill(0.0),
    ],
    ids=["noise", "dataset", "constant"],
)
def test_patch_model_mask_ranks_the_patch_first(objective, fill):
    model = PatchModel().eval()
    x = patch_inputs()
    target = torch.tensor([0, 1])  # different labels in one batch
    masks = SimpleMasking(model).attribute(
        x,
        target,
        baselines=fill,
        n_fill_samples=8,
        steps=100,
        downsample=1,
        l1=1e-3,
        tv=1e-3,
        objective=objective,
        seed=0,
    )
    maps = masks[:, 0]
    top = maps.flatten(1).topk(16, dim=1).indices
    overlap = PATCH.flatten()[top].float().mean(dim=1)
    assert bool((overlap >= 0.9).all()), overlap
    # insertion score (constant fill 0, 9 grid points): as high as the oracle's and
    # well above a random map's
    ours = _insertion(model, x, maps, target)
    oracle = _insertion(model, x, PATCH.float().expand(2, 12, 12), target)
    rand = _insertion(
        model, x, torch.rand(2, 12, 12, generator=torch.Generator().manual_seed(0)), target
    )
    assert bool((ours >= oracle - 0.02).all()), (ours, oracle)
    assert bool((ours > 0.9).all()) and bool((ours > rand + 0.1).all()), (ours, rand)


def test_mask_range_shape_dtype():
    x = _x()
    out = SimpleMasking(seeded_linear()).attribute(
        x, [0, 1, 2], baselines=NoiseFill(), seed=0, **FAST
    )
    assert out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous()
    assert bool((out >= 0).all() and (out <= 1).all())
    # one mask broadcast over channels
    assert torch.equal(out[:, 0], out[:, 1])


@pytest.mark.parametrize(
    ("h", "w", "downsample"), [(6, 5, 4), (13, 10, 4), (12, 12, 4), (7, 9, 1), (5, 5, 100)]
)
def test_any_mask_size(h, w, downsample):
    x = _x(n=2, h=h, w=w)
    model = seeded_linear(h=h, w=w)
    out = SimpleMasking(model).attribute(x, 0, downsample=downsample, steps=5)
    assert out.shape == x.shape
    if downsample >= max(h, w):  # a single logit: a constant mask
        assert torch.allclose(out[0], out[0, 0, 0, 0].expand_as(out[0]))


def test_downsampled_mask_is_smooth_and_full_resolution_is_not():
    x = _x(n=1, h=16, w=16)
    model = seeded_linear(h=16, w=16)
    kw = {"baselines": NoiseFill(), "seed": 0, "steps": 30, "tv": 0.0, "n_fill_samples": 4}
    coarse = SimpleMasking(model).attribute(x, 0, downsample=8, **kw)[:, 0]
    fine = SimpleMasking(model).attribute(x, 0, downsample=1, **kw)[:, 0]
    assert _tv(coarse) < _tv(fine)


def test_tv_gives_a_smoother_mask():
    x = _x(n=2, h=12, w=12)
    model = seeded_linear(h=12, w=12, classes=5)
    kw = {"baselines": NoiseFill("gaussian"), "seed": 0, "steps": 60, "n_fill_samples": 4}
    kw["downsample"] = 1
    sharp = SimpleMasking(model).attribute(x, [0, 3], tv=0.0, **kw)[:, 0]
    smooth = SimpleMasking(model).attribute(x, [0, 3], tv=0.05, **kw)[:, 0]

    def roughness(m):  # scale free: TV relative to the mask's spatial variance
        return _tv(m) / (m - m.mean(dim=(1, 2), keepdim=True)).square().sum(dim=(1, 2))

    assert bool((_tv(smooth) < _tv(sharp)).all())
    assert bool((roughness(smooth) < roughness(sharp)).all())


@pytest.mark.parametrize(
    "fill",
    [
        NoiseFill("gaussian"),
        DatasetFill(torch.randn(9, 2, 6, 5, generator=torch.Generator().manual_seed(2))),
        MeanFill(),
    ],
    ids=repr,
)
@pytest.mark.parametrize("objective", ["reference", "log_prob"])
def test_chunked_equals_unchunked(fill, objective):
    x = _x(n=5)
    model = bn_dropout_cnn()
    target = [0, 1, 2, 0, 1]
    sm = SimpleMasking(model)
    kw = {"baselines": fill, "seed": 3, "steps": 20, "n_fill_samples": 3, "objective": objective}
    # max_examples_per_batch counts model inputs: B = 3 rows per example for random fills
    # (chunks of 1, 1, 2, 4 and all examples), 1 for MeanFill; identical up to float
    # rounding of the model's batched kernels
    assert_chunking_invariant(
        lambda m: sm.attribute(x, target, max_examples_per_batch=m, **kw),
        sizes=(1, 3, 6, 12, 100),
        atol=1e-6,
    )


def test_same_seed_same_masks_and_fresh_randomness_otherwise():
    x = _x()
    sm = SimpleMasking(bn_dropout_cnn())
    kw = {"baselines": NoiseFill(), **FAST}
    assert_seeded_determinism(lambda s: sm.attribute(x, 1, seed=s, **kw), seed=5, other_seed=6)
    assert not torch.equal(sm.attribute(x, 1, **kw), sm.attribute(x, 1, **kw))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(sm.attribute(x, 1, seed=g1, **kw), sm.attribute(x, 1, seed=g2, **kw))


def test_deterministic_fill_needs_no_seed():
    x = _x()
    sm = SimpleMasking(bn_dropout_cnn())
    for fill in (None, 0.5, ConstantFill(torch.tensor([0.0, 1.0]).view(2, 1, 1)), BlurFill(1.0)):
        a = sm.attribute(x, 1, baselines=fill, **FAST)
        assert torch.equal(a, sm.attribute(x, 1, baselines=fill, **FAST))


def test_model_and_global_rng_untouched():
    # training mode (warned about, left as it is), a frozen parameter, a stored gradient
    model = mark_model_state(bn_dropout_cnn()).train()
    sm = SimpleMasking(model)
    with pytest.warns(UserWarning, match="training mode"):
        out = assert_model_untouched(  # batch-norm statistics restored too
            model,
            lambda: assert_global_rng_untouched(  # dropout ran on a forked RNG
                lambda: sm.attribute(  # an int seed leaves the global RNG alone
                    _x(),
                    [0, 1, 2],
                    baselines=NoiseFill(),
                    seed=0,
                    max_examples_per_batch=6,
                    **FAST,
                )
            ),
        )
    assert bool(torch.isfinite(out).all())


def test_eval_model_no_warning_and_plain_callables_get_no_grads():
    model = bn_dropout_cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SimpleMasking(model).attribute(_x(), 0, **FAST)
    # a plain function around the model: nothing to freeze, still no parameter grads
    SimpleMasking(lambda inp: model(inp)).attribute(_x(), 0, baselines=NoiseFill(), **FAST)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert not model.training


def test_works_inside_no_grad():
    x = _x()
    sm = SimpleMasking(bn_dropout_cnn())
    kw = {"baselines": NoiseFill(), "seed": 0, **FAST}
    with torch.no_grad():
        inside = sm.attribute(x, 1, **kw)
    assert torch.equal(inside, sm.attribute(x, 1, **kw))
    assert not inside.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs():  # pragma: no cover - run where a GPU is available
    model = bn_dropout_cnn().cuda()
    x = _x().cuda()
    kw = {"baselines": DatasetFill(torch.randn(5, 2, 6, 5)), **FAST}
    out = SimpleMasking(model).attribute(x, [0, 1, 2], seed=0, **kw)
    assert out.device == x.device and out.shape == x.shape
    again = SimpleMasking(model).attribute(x, [0, 1, 2], seed=0, max_examples_per_batch=2, **kw)
    torch.testing.assert_close(out, again, atol=1e-5, rtol=0)


def test_target_forms():
    x = _x()
    sm = SimpleMasking(bn_dropout_cnn())
    kw = {"baselines": NoiseFill(), "seed": 0, **FAST}
    ref = sm.attribute(x, [2, 2, 2], **kw)
    for target in (
        2,
        -1,
        (2,),
        [(2,)] * 3,
        torch.tensor(2),
        torch.tensor([2]),
        torch.tensor([2, 2, 2]),
    ):
        assert torch.equal(sm.attribute(x, target, **kw), ref)
    # None: each example's predicted label
    with torch.no_grad():
        predicted = bn_dropout_cnn()(x).argmax(dim=1)
    assert torch.equal(sm.attribute(x, None, **kw), sm.attribute(x, predicted, **kw))
    assert torch.equal(sm.attribute(x, **kw), sm.attribute(x, predicted, **kw))


def test_per_example_targets_are_independent():
    x = _x(n=2)
    sm = SimpleMasking(bn_dropout_cnn())
    kw = {"baselines": NoiseFill(), "seed": 0, **FAST}
    mixed = sm.attribute(x, [0, 2], **kw)
    torch.testing.assert_close(mixed[0], sm.attribute(x, 0, **kw)[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(mixed[1], sm.attribute(x, 2, **kw)[1], atol=1e-6, rtol=0)
    assert not torch.allclose(mixed[1], sm.attribute(x, 0, **kw)[1])


def test_additional_forward_args_follow_the_examples():
    base = seeded_linear()

    def forward(inp, sign, offset):
        return base(inp) * sign.view(-1, 1) + offset

    x = _x(n=2)
    sign = torch.tensor([1.0, -1.0])
    kw = {"baselines": NoiseFill(), "seed": 0, **FAST}
    out = SimpleMasking(forward).attribute(x, [0, 1], (sign, 0.5), **kw)
    # flipping the logits of example 1 swaps it to the model's behaviour under -logits
    plain = SimpleMasking(base).attribute(x, [0, 1], **kw)
    torch.testing.assert_close(out[0], plain[0], atol=1e-6, rtol=0)
    assert not torch.allclose(out[1], plain[1])
    with pytest.raises(ValueError, match="additional_forward_args"):
        SimpleMasking(forward).attribute(x, 0, (torch.ones(3), 0.0), **kw)


def test_one_and_three_spatial_dims():
    torch.manual_seed(0)
    model1d = nn.Sequential(nn.Flatten(), nn.Linear(2 * 11, 3)).eval()
    x1 = torch.randn(2, 2, 11)
    out = SimpleMasking(model1d).attribute(x1, [0, 1], baselines=NoiseFill(), downsample=3, **FAST)
    assert out.shape == x1.shape and bool((out >= 0).all() and (out <= 1).all())
    model3d = nn.Sequential(nn.Flatten(), nn.Linear(1 * 4 * 5 * 3, 3)).eval()
    x3 = torch.randn(2, 1, 4, 5, 3)
    out = SimpleMasking(model3d).attribute(x3, 2, baselines=NoiseFill(), downsample=2, **FAST)
    assert out.shape == x3.shape


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_dtypes_follow_inputs(dtype):
    model = seeded_linear().to(dtype)
    x = _x().to(dtype)
    try:
        model(x)
    except RuntimeError:  # pragma: no cover - kernels missing on this CPU build
        pytest.skip(f"no CPU kernels for {dtype}")
    out = SimpleMasking(model).attribute(x, [0, 1, 2], baselines=NoiseFill(), seed=0, **FAST)
    assert out.dtype == dtype and out.shape == x.shape
    assert bool(torch.isfinite(out.float()).all())
    assert bool((out >= 0).all() and (out <= 1).all())


def test_show_progress(capsys):
    # 3 examples, 3 fill samples each, 6 model inputs per pass: chunks of 2 and 1 examples
    SimpleMasking(seeded_linear()).attribute(
        _x(), 0, baselines=NoiseFill(), show_progress=True, max_examples_per_batch=6, **FAST
    )
    err = capsys.readouterr().err
    assert "SimpleMasking" in err and "loss=" in err and "30/30" in err


def test_loss_decreases_with_more_steps():
    """The objective is optimised: longer runs reach lower losses on the same problem."""
    model = PatchModel().eval()
    x = patch_inputs()
    fill = ConstantFill(0.0)

    def loss(m):
        q = model(compose(x, m, torch.zeros(()))).softmax(dim=1)
        obj = -torch.log(q.gather(1, torch.tensor([[0], [1]]))).squeeze(1)
        return obj + 1e-3 * m[:, 0].sum(dim=(1, 2))

    kw = {"baselines": fill, "downsample": 1, "l1": 1e-3, "tv": 0.0, "objective": "log_prob"}
    with torch.no_grad():
        start = loss(torch.full_like(x, 0.5))
        short = loss(SimpleMasking(model).attribute(x, [0, 1], steps=5, **kw))
        long = loss(SimpleMasking(model).attribute(x, [0, 1], steps=200, **kw))
    assert bool((long < short).all() and (short < start).all())


def test_adam_matches_torch_optim():
    from captum_soundness.attr._common import Adam

    gen = torch.Generator().manual_seed(0)
    ours = torch.randn(3, 1, 4, 4, generator=gen)
    ref = ours.clone().requires_grad_(True)
    adam, torch_adam = Adam(ours, 0.05), torch.optim.Adam([ref], lr=0.05)
    for i in range(30):
        grad = torch.randn(3, 1, 4, 4, generator=gen) * 10.0 ** -(i % 7)
        adam.step(grad)
        ref.grad = grad.clone()
        torch_adam.step()
    assert torch.equal(ours, ref.detach())


def test_defaults_match_the_paper():
    import inspect

    params = inspect.signature(SimpleMasking.attribute).parameters
    assert list(params)[:4] == ["self", "inputs", "target", "additional_forward_args"]
    defaults = {k: v.default for k, v in params.items()}
    assert defaults["preset"] == "paper" and defaults["baselines"] is None  # test_recipes
    assert defaults["feature_mask"] is None and defaults["head"] == "softmax"
    assert defaults["fill"] is UNSET  # the deprecated alias
    assert all(
        params[k].kind is inspect.Parameter.KEYWORD_ONLY
        for k in ("baselines", "feature_mask", "fill", "steps", "head", "seed")
    )
    assert list(params)[-1] == "fill" and "max_examples_per_batch" in params


def test_first_adam_step():
    """Adam's first step moves every logit by about lr against its gradient's sign: the
    patch (the objective wants it) goes up, the rest (only l1 acting) goes down."""
    model = PatchModel().eval()
    x = patch_inputs()[:1]
    for objective in ("reference", "log_prob"):
        m = SimpleMasking(model).attribute(
            x, 0, steps=1, downsample=1, tv=0.0, lr=0.1, objective=objective
        )[0, 0]
        up, down = torch.sigmoid(torch.tensor(0.1)), torch.sigmoid(torch.tensor(-0.1))
        torch.testing.assert_close(m[PATCH], up.expand(16), atol=1e-4, rtol=0)
        torch.testing.assert_close(m[~PATCH], down.expand(128), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------
# bad input


X = _x()


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"inputs": [X]}, TypeError, "inputs"),
        ({"inputs": X.numpy()}, TypeError, "inputs"),
        ({"inputs": X.long()}, TypeError, "inputs"),
        ({"inputs": X[:, 0, 0, 0]}, ValueError, "inputs"),
        ({"inputs": (X, X[:2])}, ValueError, "inputs"),
        ({"inputs": X[:0]}, ValueError, "inputs"),
        ({"inputs": X.view(3, 2, 3, 2, 5, 1)}, ValueError, "spatial"),
        ({"inputs": X, "feature_mask": torch.zeros(3, 2, 6, 5)}, TypeError, "feature_mask"),
        ({"feature_mask": torch.zeros(2, 1, 6, 5, dtype=torch.long)}, ValueError, "feature_mask"),
        ({"inputs": torch.full_like(X, float("nan"))}, ValueError, "inputs"),
        ({"target": [0, 1]}, ValueError, "target"),
        ({"target": 1.0}, TypeError, "target"),
        ({"target": torch.zeros(3, 1, dtype=torch.long)}, ValueError, "target"),
        ({"target": torch.tensor([0.0, 1.0, 2.0])}, TypeError, "target"),
        ({"target": [0, (1,), 2]}, TypeError, "target"),
        ({"head": "logits"}, ValueError, "head"),
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 2.5}, TypeError, "steps"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr": float("inf")}, ValueError, "lr"),
        ({"n_fill_samples": 0}, ValueError, "n_fill_samples"),
        ({"downsample": 0}, ValueError, "downsample"),
        ({"downsample": 2.0}, TypeError, "downsample"),
        ({"l1": -1e-5}, ValueError, "l1"),
        ({"l1": float("nan")}, ValueError, "l1"),
        ({"tv": -0.1}, ValueError, "tv"),
        ({"tv": float("inf")}, ValueError, "tv"),
        ({"objective": "cross_entropy"}, ValueError, "objective"),
        ({"preset": "slow"}, ValueError, "preset"),
        ({"preset": None}, ValueError, "preset"),
        ({"lr_schedule": "exponential"}, ValueError, "lr_schedule"),
        ({"lr_schedule": 1}, ValueError, "lr_schedule"),
        ({"area": 0.0}, ValueError, "area"),
        ({"area": 1.0}, ValueError, "area"),
        ({"area": -0.1}, ValueError, "area"),
        ({"area": float("nan")}, ValueError, "area"),
        ({"area": "0.1"}, TypeError, "area"),
        ({"area_weight": -1.0}, ValueError, "area_weight"),
        ({"area_weight": float("inf")}, ValueError, "area_weight"),
        ({"area_weight": "1"}, TypeError, "area_weight"),
        ({"baselines": "black"}, TypeError, "baselines"),
        ({"baselines": DatasetFill(torch.zeros(4, 3, 6, 5))}, ValueError, "baselines"),
        ({"baselines": DatasetFill(torch.zeros(4, 2, 5, 5))}, ValueError, "baselines"),
        ({"baselines": torch.zeros(3, 1, 1)}, ValueError, "baselines"),
        ({"baselines": torch.zeros(2, 2, 6, 5)}, ValueError, "baselines"),
        ({"baselines": torch.full((3, 2, 6, 5), float("nan"))}, ValueError, "baselines"),
        ({"baselines": 0.0, "fill": 0.0}, TypeError, "fill"),
        ({"fill": "black"}, TypeError, "fill"),
        ({"seed": "0"}, TypeError, "seed"),
        ({"show_progress": "yes"}, TypeError, "show_progress"),
        ({"max_examples_per_batch": 0}, ValueError, "max_examples_per_batch"),
        ({"additional_forward_args": torch.zeros(2)}, ValueError, "additional_forward_args"),
    ],
)
def test_bad_arguments_rejected_before_any_work(kwargs, err, match):
    model = CountingModel()
    call = {"inputs": X, "target": 0, "steps": 3, **kwargs}
    with pytest.raises(err, match=match):
        SimpleMasking(model).attribute(**call)
    assert model.calls == 0


@pytest.mark.parametrize(
    "target", [3, -4, [0, 1, 7], [0, -1, 1], torch.tensor([0, 0, 3]), (1, 0), [(0, 1)] * 3]
)
def test_target_out_of_range(target):
    model = CountingModel()
    with pytest.raises(ValueError, match="target"):
        SimpleMasking(model).attribute(X, target, steps=3)
    assert model.calls == 1  # one forward pass on the clean inputs, no optimisation


def test_empty_dataset_pool_rejected():
    with pytest.raises(ValueError, match="empty"):
        DatasetFill(torch.zeros(0, 2, 6, 5))


@pytest.mark.parametrize(
    ("forward", "err", "match"),
    [
        (lambda x: x.flatten(1)[:, :1], ValueError, "one class"),
        (lambda x: x.sum(dim=(1, 2, 3)), ValueError, "num_classes"),
        (lambda x: (x.flatten(1)[:, :3],), TypeError, "tensor"),
    ],
)
def test_bad_model_outputs(forward, err, match):
    for target in (0, None):
        with pytest.raises(err, match=match):
            SimpleMasking(forward).attribute(X, target, steps=3)
