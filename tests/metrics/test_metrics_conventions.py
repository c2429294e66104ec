"""The metrics under Captum's conventions (issue 11), on Captum's own test models.

Inputs as a tensor or a tuple of tensors of any rank >= 2, ``feature_mask`` groups,
``baselines`` in every form Captum accepts (and Fills), Captum's ``TargetType``, the
output heads, ``max_examples_per_batch`` as rows per forward pass, and seeding.
"""

import unittest

import pytest
import torch
from captum.testing.helpers.basic import assertTensorAlmostEqual
from captum.testing.helpers.basic_models import (
    BasicModel_ConvNet_One_Conv,
    BasicModel_MultiLayer,
    BasicModel_MultiLayer_MultiInput,
)
from helpers import (
    ImageMetaModel,
    assert_chunking_invariant,
    assert_global_rng_untouched,
    captum_model,
    init_params_,
    seeded_randn,
)
from torch import nn

from captum_soundness.fills import ConstantFill, MeanFill, NoiseFill
from captum_soundness.metrics import (
    completeness,
    deletion_curve,
    evaluate_all_labels,
    insertion_curve,
    soundness,
)

_TC = unittest.TestCase()  # for Captum's assertTensorAlmostEqual
METRICS = (insertion_curve, deletion_curve, completeness, soundness)


def _tabular(seed: int = 0, dtype=torch.float64) -> nn.Module:
    """Captum's BasicModel_MultiLayer (3 features, 2 labels) with random weights (its own
    fixed weights give the same probabilities for every input)."""
    return init_params_(captum_model(BasicModel_MultiLayer), seed=seed).to(dtype)


def _convnet(seed: int = 0) -> nn.Module:
    """Captum's BasicModel_ConvNet_One_Conv ((N, 1, 4, 4) -> 4 labels), random weights."""
    return init_params_(captum_model(BasicModel_ConvNet_One_Conv), seed=seed).double()


def _naive_curve(model, x, scores, target, counts, baseline=0.0, head=torch.softmax):
    """Reference: per example, keep the top-k positions of ``scores`` ((N, P), no ties)
    of a tensor ``x`` whose positions are its last ``P`` elements (channels shared)."""
    n = x.shape[0]
    out = torch.empty(n, len(counts), dtype=torch.float64)
    for i in range(n):
        order = torch.argsort(scores[i], descending=True)
        for j, k in enumerate(counts):
            keep = torch.zeros(scores.shape[1], dtype=torch.bool)
            keep[order[:k]] = True
            keep = keep.view(x.shape[2:] or x.shape[1:])  # broadcasts over channels
            masked = torch.where(keep, x[i : i + 1], torch.as_tensor(baseline, dtype=x.dtype))
            out[i, j] = head(model(masked).double(), dim=-1)[0, target]
    return out


# ---- inputs: tensor, 1-tuple, 2-tuple; tabular; sequences --------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_one_tuple_equals_tensor_exactly(metric):
    model = _convnet()
    x, attr = seeded_randn(3, 1, 4, 4, seed=1).double(), seeded_randn(3, 1, 4, 4, seed=2)
    ref = metric(model, x, attr, 1, fractions=4)
    assert torch.equal(metric(model, (x,), (attr,), 1, fractions=4), ref)
    assert torch.equal(metric(model, x, (attr,), 1, fractions=4), ref)  # Captum returns tuples


def test_tabular_matches_naive_reference():
    model = _tabular()
    x, attr = seeded_randn(4, 3, seed=1).double(), seeded_randn(4, 3, seed=2).double()
    for target in (0, 1):
        curve = insertion_curve(model, x, attr, target, fractions=3, baselines=0.5)
        ref = _naive_curve(model, x, attr, target, [1, 2, 3], baseline=0.5)
        assertTensorAlmostEqual(_TC, curve, ref, delta=1e-12, mode="max")
    for reduce in ("abs", "max"):  # tabular: no channels; "abs" ranks |attr|
        by = insertion_curve(model, x, attr, 0, fractions=3, reduce=reduce)
        expected = attr.abs() if reduce == "abs" else attr
        assert torch.equal(by, insertion_curve(model, x, expected, 0, fractions=3))


def test_sequences_match_naive_reference():
    model = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(18, 3))
    model = init_params_(model, seed=3).double().eval()
    x, attr = seeded_randn(2, 2, 6, seed=4).double(), seeded_randn(2, 2, 6, seed=5).double()
    curve = insertion_curve(model, x, attr, 2, fractions=3)
    ref = _naive_curve(model, x, attr.sum(dim=1), 2, [2, 4, 6])  # channels summed
    assertTensorAlmostEqual(_TC, curve, ref, delta=1e-12, mode="max")


class _Concat(nn.Module):
    """``f(x1, x2) = g(cat([x1, x2], dim))``: the two inputs as one explicit tensor."""

    def __init__(self, inner: nn.Module, dim: int) -> None:
        super().__init__()
        self.inner, self.dim = inner, dim
        self.eval()

    def forward(self, x1, x2):
        return self.inner(torch.cat([x1, x2], dim=self.dim))


@pytest.mark.parametrize("metric", METRICS)
def test_two_tuple_ranks_positions_of_both_inputs_together(metric):
    # Two (N, 1, 2, 4) halves of a (N, 1, 4, 4) image: the positions of both tensors are
    # ranked together, so the tuple curve is the curve of the whole image.
    model = _convnet()
    x, attr = seeded_randn(3, 1, 4, 4, seed=1).double(), seeded_randn(3, 1, 4, 4, seed=2)
    base = seeded_randn(3, 1, 4, 4, seed=3).double()
    split = _Concat(model, dim=2)
    kw = {"fractions": 5, "max_examples_per_batch": 7}
    ref = metric(model, x, attr, [0, 1, 3], baselines=base, **kw)
    halves = (x[:, :, :2], x[:, :, 2:]), (attr[:, :, :2], attr[:, :, 2:])
    got = metric(split, *halves, [0, 1, 3], baselines=(base[:, :, :2], base[:, :, 2:]), **kw)
    assert torch.equal(got, ref)


def test_two_tuple_tabular_with_multi_input_model():
    # Captum's BasicModel_MultiLayer_MultiInput(x1, x2, x3, scale); positions: 3 + 3 + 3.
    model = captum_model(BasicModel_MultiLayer_MultiInput)
    init_params_(model, seed=0)
    xs = tuple(seeded_randn(4, 3, seed=s) for s in (1, 2, 3))
    attrs = tuple(seeded_randn(4, 3, seed=s) for s in (4, 5, 6))
    curve = insertion_curve(model, xs, attrs, 1, (2,), fractions=9)
    assert curve.shape == (4, 9)
    full = torch.softmax(model(*xs, 2), dim=1)[:, 1]
    torch.testing.assert_close(curve[:, -1], full)  # all 9 features kept: the clean input
    # one position kept: the best of all 9 attributions, whichever tensor holds it
    flat = torch.cat(attrs, dim=1)
    best = flat.argmax(dim=1)
    kept = tuple(torch.zeros(4, 3) for _ in xs)
    for i in range(4):
        kept[int(best[i]) // 3][i, int(best[i]) % 3] = xs[int(best[i]) // 3][i, int(best[i]) % 3]
    torch.testing.assert_close(curve[:, 0], torch.softmax(model(*kept, 2), dim=1)[:, 1])


def test_image_and_metadata_inputs_chunking_and_seed():
    model = ImageMetaModel().double()
    x = (seeded_randn(3, 2, 6, 6, seed=1).double(), seeded_randn(3, 4, seed=2).double())
    attr = (seeded_randn(3, 2, 6, 6, seed=3), seeded_randn(3, 4, seed=4))
    per_example = seeded_randn(3, 4, seed=5).double()
    kw = {"fractions": 4, "n_fill_samples": 2, "seed": 0}
    for baselines in ((NoiseFill("gaussian"), per_example), (MeanFill(), 0.5)):
        assert_chunking_invariant(
            lambda m, b=baselines: insertion_curve(
                model, x, attr, [0, 2, 1], baselines=b, max_examples_per_batch=m, **kw
            ),
            sizes=(1, 5, 100),
            atol=1e-13,
        )


def test_batch_of_one():
    model = _convnet()
    x, attr = seeded_randn(1, 1, 4, 4, seed=1).double(), seeded_randn(1, 1, 4, 4, seed=2)
    many = seeded_randn(3, 1, 4, 4, seed=1).double()
    many[0] = x[0]
    many_attr = torch.cat([attr, seeded_randn(2, 1, 4, 4, seed=3)])
    for metric in METRICS:
        one = metric(model, x, attr, 2, fractions=4, baselines=x * 0.5)
        assert one.shape[0] == 1
        ref = metric(model, many, many_attr, 2, fractions=4, baselines=many * 0.5)
        torch.testing.assert_close(one, ref[:1], rtol=0, atol=1e-12)


# ---- feature_mask ------------------------------------------------------------------------


class _Upsampled(nn.Module):
    """``g(y) = f(nearest_upsample_2x(y))``: the 2x2 block structure made explicit."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.eval()

    def forward(self, y):
        return self.inner(y.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))


BLOCKS = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]).view(1, 1, 4, 4)


@pytest.mark.parametrize("kind", ["insertion", "deletion"])
def test_groups_equal_the_explicit_group_structure(kind):
    fn = insertion_curve if kind == "insertion" else deletion_curve
    model = _convnet()
    y = seeded_randn(3, 1, 2, 2, seed=1).double()  # one value per 2x2 block
    x = y.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    attr = seeded_randn(3, 1, 4, 4, seed=2).double()
    block_means = nn.functional.avg_pool2d(attr, 2)  # a group's score: its mean
    got = fn(model, x, attr, 1, feature_mask=BLOCKS, fractions=[0.25, 0.5, 1.0])
    ref = fn(_Upsampled(model), y, block_means, 1, fractions=[0.25, 0.5, 1.0])
    assertTensorAlmostEqual(_TC, got, ref, delta=1e-12, mode="max")


def test_tabular_groups_and_per_example_masks():
    model = _tabular()
    x, attr = seeded_randn(3, 3, seed=1).double(), seeded_randn(3, 3, seed=2).double()
    masks = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 0, 1]])
    got = insertion_curve(model, x, attr, 0, feature_mask=masks, fractions=2)
    for i in range(3):
        one = insertion_curve(
            model, x[i : i + 1], attr[i : i + 1], 0, feature_mask=masks[i : i + 1], fractions=2
        )
        torch.testing.assert_close(got[i : i + 1], one, rtol=0, atol=1e-13)
    # two groups: fraction 1/2 keeps one group (the one of larger mean attribution)
    keep = torch.tensor([[1.0, 1.0, 0.0]])
    if float(attr[0, 2]) > float(attr[0, :2].mean()):
        keep = 1 - keep
    expected = torch.softmax(model(x[:1] * keep), dim=1)[0, 0].detach()
    assert float(got[0, 0]) == pytest.approx(float(expected), abs=1e-12)


def test_feature_mask_errors():
    model, x = _tabular(), seeded_randn(2, 3, seed=1).double()
    with pytest.raises(ValueError, match="feature_mask"):
        insertion_curve(model, x, x, 0, feature_mask=torch.tensor([[0, 1]]))
    with pytest.raises(TypeError, match="feature_mask"):
        insertion_curve(model, x, x, 0, feature_mask=torch.tensor([[0.0, 1.0, 1.0]]))


# ---- baselines ---------------------------------------------------------------------------


def test_every_baselines_form():
    model = _convnet()
    x, attr = seeded_randn(3, 1, 4, 4, seed=1).double(), seeded_randn(3, 1, 4, 4, seed=2)
    run = lambda b, **kw: insertion_curve(model, x, attr, 1, fractions=4, baselines=b, **kw)  # noqa: E731
    ref = run(ConstantFill(0.3))
    assert torch.equal(run(0.3), ref)
    assert torch.equal(run(torch.tensor(0.3, dtype=torch.float64)), ref)
    assert torch.equal(run(torch.full((1, 4, 4), 0.3, dtype=torch.float64)), ref)  # one example
    assert torch.equal(run(torch.full((1, 1, 4, 4), 0.3, dtype=torch.float64)), ref)  # one row
    assert torch.equal(run(torch.full((3, 1, 4, 4), 0.3, dtype=torch.float64)), ref)  # per example
    assert torch.equal(run(None), run(0.0))
    # per-example baselines: row i fills example i, chunked or not
    per = seeded_randn(3, 1, 4, 4, seed=5).double()
    got = run(per, max_examples_per_batch=2)
    for i in range(3):
        one = insertion_curve(
            model, x[i : i + 1], attr[i : i + 1], 1, fractions=4, baselines=per[i : i + 1]
        )
        torch.testing.assert_close(got[i : i + 1], one, rtol=0, atol=1e-13)
    assert not torch.allclose(got, ref)


def test_fill_alias_is_deprecated():
    model = _convnet()
    x, attr = seeded_randn(2, 1, 4, 4, seed=1).double(), seeded_randn(2, 1, 4, 4, seed=2)
    for metric in METRICS:
        ref = metric(model, x, attr, 0, fractions=4, baselines=MeanFill())
        with pytest.warns(DeprecationWarning, match="`fill` is deprecated"):
            assert torch.equal(metric(model, x, attr, 0, fractions=4, fill=MeanFill()), ref)
        with pytest.raises(TypeError, match="not both"):
            metric(model, x, attr, 0, baselines=0.0, fill=0.0)


def test_bad_baselines():
    model = ImageMetaModel()
    x = (seeded_randn(2, 2, 6, 6, seed=1), seeded_randn(2, 4, seed=2))
    with pytest.raises(ValueError, match="one baseline per input"):
        insertion_curve(model, x, x, 0, baselines=(0.0,))
    with pytest.raises(ValueError, match="single tensor"):
        insertion_curve(model, x, x, 0, baselines=torch.zeros(2, 2, 6, 6))
    with pytest.raises(ValueError, match=r"baselines\[1\]"):
        insertion_curve(model, x, x, 0, baselines=(0.0, torch.zeros(3, 4)))
    with pytest.raises(TypeError, match="baselines"):
        insertion_curve(model, x, x, 0, baselines="zero")


# ---- targets -----------------------------------------------------------------------------


def _multidim(seed: int = 0) -> nn.Module:
    """BasicModel_MultiLayer with its (N, 2, 2, 2) outputs."""
    inner = _tabular(seed)

    class MultiDim(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x, None, True)

    return MultiDim().eval()


def test_every_target_form():
    model = _tabular()
    x, attr = seeded_randn(3, 3, seed=1).double(), seeded_randn(3, 3, seed=2).double()
    run = lambda t: insertion_curve(model, x, attr, t, fractions=3)  # noqa: E731
    ones = run(1)
    assert torch.equal(run(torch.tensor(1)), ones)
    assert torch.equal(run(torch.tensor([1])), ones)  # one element: the same for all
    assert torch.equal(run((1,)), ones)  # a 1-tuple indexes the 1 non-batch dimension
    assert torch.equal(run(-1), ones)  # Python indexing, as in Captum
    mixed = run([0, 1, 0])
    assert torch.equal(mixed, run(torch.tensor([0, 1, 0])))
    assert torch.equal(mixed, run([(0,), (1,), (0,)]))
    assert torch.equal(mixed[1], ones[1]) and torch.equal(mixed[0], run(0)[0])
    pred = model(x).argmax(dim=1)
    assert torch.equal(run(None), run(pred.tolist()))


def test_tuple_targets_index_multidimensional_outputs():
    model = _multidim()
    x, attr = seeded_randn(3, 3, seed=1).double(), seeded_randn(3, 3, seed=2).double()
    # head="softmax": probabilities over the last dimension of (N, 2, 2, 2)
    got = insertion_curve(model, x, attr, (1, 0, 1), fractions=3)
    ref = insertion_curve(lambda t: model(t)[:, 1, 0, :], x, attr, 1, fractions=3)
    assert torch.equal(got, ref)
    per = insertion_curve(model, x, attr, [(1, 0, 1), (0, 1, 0), (1, 1, 1)], fractions=3)
    assert torch.equal(per[0], got[0])
    sound = soundness(model, x, attr, (0, 1, 0), fractions=3)
    assert torch.equal(sound, soundness(lambda t: model(t)[:, 0, 1, :], x, attr, 0, fractions=3))


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        ((1, 0), ValueError, "one index into a multi-dimensional output"),  # never per example
        ([0, 1, 1], ValueError, "3 entries"),
        (torch.tensor([0, 1, 1]), ValueError, "not valid for 2 examples"),
        (torch.tensor([[0], [1]]), ValueError, "not valid for 2 examples"),
        (torch.tensor([0.0, 1.0]), TypeError, "integer dtype"),
        (1.0, TypeError, "target"),
        ([0, (1,)], TypeError, "ints only or tuples"),
        (2, ValueError, "outside"),
        ([0, -1], ValueError, "outside"),
    ],
)
def test_targets_that_raise(target, error, match):
    model = _tabular()
    x = seeded_randn(2, 3, seed=1).double()
    for metric in METRICS:
        with pytest.raises(error, match=match):
            metric(model, x, x, target, fractions=3)


def test_multidimensional_outputs_need_full_targets():
    model = _multidim()
    x = seeded_randn(2, 3, seed=1).double()
    with pytest.raises(ValueError, match="required"):
        insertion_curve(model, x, x, None, fractions=3)
    with pytest.raises(ValueError, match="1 index"):
        insertion_curve(model, x, x, 1, fractions=3)
    with pytest.raises(ValueError, match="per-example labels"):
        insertion_curve(model, x, x, [0, 1], fractions=3)


# ---- heads -------------------------------------------------------------------------------


def _logits3(seed: int = 0) -> nn.Module:
    return init_params_(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), seed=seed).double().eval()


def test_sigmoid_labels_are_independent():
    model = _logits3()
    x, attr = seeded_randn(3, 1, 4, 4, seed=1).double(), seeded_randn(3, 1, 4, 4, seed=2)

    def other_heads(t):  # label 0 unchanged, labels 1 and 2 changed
        out = model(t)
        return torch.cat([out[:, :1], 5 * out[:, 1:] + 3], dim=1)

    for metric in METRICS:
        a = metric(model, x, attr, 0, fractions=4, head="sigmoid")
        assert torch.equal(a, metric(other_heads, x, attr, 0, fractions=4, head="sigmoid"))
        probs = lambda t: torch.sigmoid(model(t))  # noqa: E731
        assert torch.equal(a, metric(probs, x, attr, 0, fractions=4, head="probabilities"))
        soft = metric(model, x, attr, 0, fractions=4)
        assert not torch.equal(soft, metric(other_heads, x, attr, 0, fractions=4))


@pytest.mark.parametrize("shape", ["(N,)", "(N, 1)"])
def test_binary_head(shape):
    lin = init_params_(nn.Sequential(nn.Flatten(), nn.Linear(16, 1)), seed=1).double().eval()
    model = (lambda t: lin(t)[:, 0]) if shape == "(N,)" else lin
    two = lambda t: torch.cat([1 - torch.sigmoid(lin(t)), torch.sigmoid(lin(t))], 1)  # noqa: E731
    x, attr = seeded_randn(3, 1, 4, 4, seed=1).double(), seeded_randn(3, 1, 4, 4, seed=2)
    for metric in METRICS:
        for target in (0, 1, [1, 0, 1], None):
            got = metric(model, x, attr, target, fractions=4, head="binary")
            ref = metric(two, x, attr, target, fractions=4, head="probabilities")
            torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="outside"):
        insertion_curve(model, x, attr, 2, head="binary")
    with pytest.raises(ValueError, match="head='binary'"):
        insertion_curve(model, x, attr, 0)  # a softmax over one logit


def test_probabilities_head_checks_values_and_softmax_warns():
    model = _logits3()
    x, attr = seeded_randn(2, 1, 4, 4, seed=1).double(), seeded_randn(2, 1, 4, 4, seed=2)
    probs = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    ref = insertion_curve(model, x, attr, 1, fractions=4)
    got = insertion_curve(probs, x, attr, 1, fractions=4, head="probabilities")
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    with pytest.warns(UserWarning, match="look like probabilities"):
        insertion_curve(probs, x, attr, 1, fractions=4)
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*examples \[0, 1\]"):
        insertion_curve(model, x, attr, 1, fractions=4, head="probabilities")
    with pytest.raises(ValueError, match="head"):
        insertion_curve(model, x, attr, 1, head="logits")


def test_apply_softmax_alias_equals_head():
    model = _logits3()
    probs = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    x, attr = seeded_randn(2, 1, 4, 4, seed=1).double(), seeded_randn(2, 1, 4, 4, seed=2)
    for metric in METRICS:
        with pytest.warns(DeprecationWarning, match="head='softmax'"):
            a = metric(model, x, attr, 1, fractions=4, apply_softmax=True)
        assert torch.equal(a, metric(model, x, attr, 1, fractions=4, head="softmax"))
        with pytest.warns(DeprecationWarning, match="head='probabilities'"):
            b = metric(probs, x, attr, 1, fractions=4, apply_softmax=False)
        assert torch.equal(b, metric(probs, x, attr, 1, fractions=4, head="probabilities"))
        with pytest.raises(TypeError, match="not both"):
            metric(model, x, attr, 1, head="softmax", apply_softmax=True)


# ---- rows per forward pass, seeding, checks ----------------------------------------------


class _Rows(nn.Module):
    """Records the number of rows of every forward pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.rows = inner, []
        self.eval()

    def forward(self, *inputs):
        self.rows.append(inputs[0].shape[0])
        return self.inner(*inputs)


def test_max_examples_per_batch_bounds_the_rows_of_every_forward_pass():
    model = _Rows(ImageMetaModel())
    x = (seeded_randn(3, 2, 6, 6, seed=1), seeded_randn(3, 4, seed=2))
    attr = (seeded_randn(3, 2, 6, 6, seed=3), seeded_randn(3, 4, seed=4))
    completeness(model, x, attr, 0, fractions=4, n_fill_samples=3, baselines=NoiseFill(),
                 seed=0, max_examples_per_batch=5)  # fmt: skip
    assert max(model.rows) == 5
    assert sum(model.rows) == 3 + 3 * 4 * 3  # the clean pass, then N x F x samples


def test_seed_none_follows_torch_manual_seed():
    model = _convnet()
    x, attr = seeded_randn(2, 1, 4, 4, seed=1).double(), seeded_randn(2, 1, 4, 4, seed=2)
    kw = {"fractions": 4, "baselines": NoiseFill("gaussian"), "n_fill_samples": 2}
    torch.manual_seed(0)
    a = insertion_curve(model, x, attr, 1, **kw)
    after = torch.rand(1)
    torch.manual_seed(0)
    b = insertion_curve(model, x, attr, 1, **kw)
    assert torch.equal(a, b) and torch.equal(torch.rand(1), after)
    torch.manual_seed(0)
    torch.empty((), dtype=torch.int64).random_()  # one draw: the call's seed
    assert torch.equal(torch.rand(1), after)
    c = assert_global_rng_untouched(lambda: insertion_curve(model, x, attr, 1, seed=5, **kw))
    assert torch.equal(c, insertion_curve(model, x, attr, 1, seed=5, **kw))


def test_non_finite_values_name_the_input_and_examples():
    model = ImageMetaModel()
    x = (seeded_randn(3, 2, 6, 6, seed=1), seeded_randn(3, 4, seed=2))
    attr = (seeded_randn(3, 2, 6, 6, seed=3), seeded_randn(3, 4, seed=4))
    bad = x[1].clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"`inputs\[1\]`.*examples \[2\]"):
        insertion_curve(model, (x[0], bad), attr, 0)
    bad_attr = attr[1].clone()
    bad_attr[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"attributions`\[1\].*examples \[0\]"):
        soundness(model, x, (attr[0], bad_attr), 0)
    bad_base = torch.zeros(3, 4)
    bad_base[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"`baselines\[1\]`.*examples \[1\]"):
        completeness(model, x, attr, 0, baselines=(0.0, bad_base))
    with pytest.raises(TypeError, match="tuple of 2 tensors"):
        insertion_curve(model, x, attr[0], 0)
    with pytest.raises(ValueError, match="batch size 2"):
        insertion_curve(model, x, (attr[0], attr[1][:2]), 0)
    with pytest.raises(TypeError, match="tuple"):
        insertion_curve(model, list(x), attr, 0)


def test_per_example_feature_masks_count_each_examples_groups():
    """Per-example feature masks with different numbers of groups (per-image segments):
    each example's fractions count its own groups, so a batch gives the numbers of each
    example evaluated alone (the batch-wide count kept all groups of small examples)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3),
    ).eval()
    x, a, t = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2])
    base = torch.arange(64).view(1, 1, 8, 8)
    masks = torch.cat([base // 16, base // 32 + 10, base // 8])  # 4, 2 and 8 groups
    for curve in (insertion_curve, deletion_curve):
        batch = curve(model, x, a, target=t, feature_mask=masks, fractions=7)
        alone = torch.cat(
            [
                curve(
                    model,
                    x[i : i + 1],
                    a[i : i + 1],
                    target=t[i : i + 1],
                    feature_mask=masks[i : i + 1],
                    fractions=7,
                )
                for i in range(3)
            ]
        )
        assertTensorAlmostEqual(_TC, batch, alone, delta=0.0, mode="max")

    def explain(inputs, target, feature_mask):
        return inputs * (feature_mask.float() + 1)

    def report(rows):
        return evaluate_all_labels(
            explain,
            model,
            x[rows],
            explain_kwargs={"feature_mask": masks[rows]},
            feature_mask=masks[rows],
            fractions=7,
        )

    batch = report(slice(None))
    for i in range(3):
        alone = report(slice(i, i + 1))
        assert torch.equal(batch.completeness[i], alone.completeness[0])
        assert torch.equal(batch.soundness[i], alone.soundness[0])


@pytest.mark.parametrize("key", ["baselines", "feature_mask"])
def test_explain_kwargs_rows_checked_before_any_work(key):
    """A per-example tensor of `explain_kwargs` with neither 1 nor N rows is named in a
    ValueError before the explanation runs (it used to reach Captum's assertions)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.rand(3, 1, 4, 4)
    value = torch.zeros(2, 1, 4, 4, dtype=torch.long if key == "feature_mask" else x.dtype)
    calls = []

    def explain(inputs, target, **kwargs):
        calls.append(1)
        return inputs

    with pytest.raises(ValueError, match=rf"explain_kwargs\['{key}'\]` has 2 rows"):
        evaluate_all_labels(explain, model, x, explain_kwargs={key: value})
    with pytest.raises(ValueError, match=rf"explain_kwargs\['{key}'\]\[0\]` has 2 rows"):
        evaluate_all_labels(explain, model, (x,), explain_kwargs={key: (value,)})
    assert not calls
