r"""Similarity of saliency maps, batched over examples.

The measures of the sanity checks of Adebayo et al. (2018), each comparing two batches of
maps example by example and returning one value per example (``(N,)``):

- :func:`spearman`: Spearman rank correlation of the map values (ties get their average
  rank, as :func:`scipy.stats.spearmanr` does);
- :func:`spearman_abs`: the same on absolute values;
- :func:`ssim`: structural similarity (Wang et al., 2004) with a Gaussian window, on maps
  normalised with :func:`normalize_maps`;
- :func:`hog_pearson`: Pearson correlation of histogram-of-oriented-gradients features
  (needs scikit-image), on maps normalised with :func:`normalize_maps`;
- :func:`pearson`: Pearson correlation of the values.

:func:`map_similarity` picks a measure by name (:data:`SIMILARITIES`).

**Normalisation.** Rank correlations are invariant to monotone rescaling and use the maps
as they are (:func:`spearman`) or their absolute values (:func:`spearman_abs`). SSIM and
HOG compare *images*, so, as in Adebayo et al., each map is first brought to ``[0, 1]``:
:func:`normalize_maps` takes absolute values and then rescales every map by its own
minimum and maximum, :math:`(|M| - \min |M|) / (\max |M| - \min |M|)` (a constant map
becomes all zeros).

Every function accepts maps of shape ``(N, *spatial)`` (``(N, 1, *spatial)`` is treated
like ``(N, *spatial)`` for the image measures); both arguments must have the same shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_soundness._utils.validation import (
    check_choice,
    check_positive_float,
    check_positive_int,
)
from captum_soundness.sanity._rank import pearson_rows, rank_with_ties

__all__ = [
    "SIMILARITIES",
    "hog_pearson",
    "map_similarity",
    "normalize_maps",
    "pearson",
    "spearman",
    "spearman_abs",
    "ssim",
]

#: Names accepted by :func:`map_similarity` (and by the sanity checks).
SIMILARITIES = ("spearman", "spearman_abs", "ssim", "hog", "pearson")


def _check_pair(a: Tensor, b: Tensor, names: tuple[str, str] = ("a", "b")) -> None:
    for t, name in zip((a, b), names):
        if not isinstance(t, Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}.")
        if t.dim() < 2:
            raise ValueError(
                f"`{name}` must be a batch of maps (N, *spatial), got shape {tuple(t.shape)}."
            )
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"`{name}` must be real-valued, got dtype {t.dtype}.")
    if a.shape != b.shape:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must have the same shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}."
        )


def _flat(t: Tensor) -> Tensor:
    t = t.detach()
    if not t.is_floating_point():
        t = t.double()
    return t.reshape(t.shape[0], -1)


def normalize_maps(maps: Tensor) -> Tensor:
    r"""Brings every map to ``[0, 1]``: absolute value, then per-map min-max rescaling.

    .. math::

        \tilde M = \frac{|M| - \min |M|}{\max |M| - \min |M|}

    with minimum and maximum taken over each map (all positions of one example). A
    constant map becomes all zeros. This is the normalisation applied before
    :func:`ssim` and :func:`hog_pearson` in the sanity checks.

    Args:
        maps: Tensor of shape ``(N, *spatial)``.

    Returns:
        Tensor of the same shape with values in ``[0, 1]``.

    Examples::

        >>> import torch
        >>> from captum_soundness.sanity._similarity import normalize_maps
        >>> normalize_maps(torch.tensor([[-2.0, 1.0, 0.0]]))
        tensor([[1.0000, 0.5000, 0.0000]])
    """
    if not isinstance(maps, Tensor):
        raise TypeError(f"`maps` must be a torch.Tensor, got {type(maps).__name__}.")
    if maps.dim() < 2:
        raise ValueError(f"`maps` must have shape (N, *spatial), got shape {tuple(maps.shape)}.")
    flat = _flat(maps).abs()
    lo = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - lo
    out = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(flat.dtype).tiny), 0)
    return out.reshape(maps.shape)


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation between the maps of ``a`` and ``b``, per example.

    Args:
        a: Maps ``(N, *spatial)``.
        b: Maps of the same shape.

    Returns:
        Float64 tensor ``(N,)`` in ``[-1, 1]``; NaN where a map is constant (the
        correlation is undefined).

    Examples::

        >>> import torch
        >>> from captum_soundness.sanity._similarity import pearson
        >>> pearson(torch.tensor([[1.0, 2.0, 4.0]]), torch.tensor([[2.0, 4.0, 8.0]]))
        tensor([1.], dtype=torch.float64)
    """
    _check_pair(a, b)
    return pearson_rows(_flat(a), _flat(b))


def spearman(a: Tensor, b: Tensor) -> Tensor:
    r"""Spearman rank correlation between the maps of ``a`` and ``b``, per example.

    The Pearson correlation of the ranks of the values, :math:`\rho = \operatorname{corr}(
    \operatorname{rank}(a), \operatorname{rank}(b))`, with tied values sharing their
    average rank (as :func:`scipy.stats.spearmanr`). Ranks come from one batched sort.

    Args:
        a: Maps ``(N, *spatial)``.
        b: Maps of the same shape.

    Returns:
        Float64 tensor ``(N,)`` in ``[-1, 1]``: 1 for maps ranking the positions
        identically, -1 for reversed rankings; NaN where a map is constant.

    Examples::

        >>> import torch
        >>> from captum_soundness.sanity._similarity import spearman
        >>> a = torch.tensor([[0.1, 0.5, 0.2, 0.9]])
        >>> spearman(a, a), spearman(a, -a)
        (tensor([1.], dtype=torch.float64), tensor([-1.], dtype=torch.float64))
    """
    _check_pair(a, b)
    return pearson_rows(rank_with_ties(_flat(a)), rank_with_ties(_flat(b)))


def spearman_abs(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of the absolute values of the maps, per example.

    Adebayo et al. (2018) report both :func:`spearman` and this variant: gradient-type
    maps often flip sign under randomisation while keeping their magnitude pattern.

    Args:
        a: Maps ``(N, *spatial)``.
        b: Maps of the same shape.

    Returns:
        Float64 tensor ``(N,)`` in ``[-1, 1]``; NaN where ``|map|`` is constant.

    Examples::

        >>> import torch
        >>> from captum_soundness.sanity._similarity import spearman_abs
        >>> a = torch.tensor([[0.1, -0.5, 0.2, 0.9]])
        >>> spearman_abs(a, -a)
        tensor([1.], dtype=torch.float64)
    """
    _check_pair(a, b)
    return spearman(a.abs(), b.abs())


def _image_maps(t: Tensor, name: str) -> Tensor:
    """``(N, H, W)`` or ``(N, 1, H, W)`` -> ``(N, H, W)``, detached."""
    t = _flat(t).reshape(t.shape)
    if t.dim() == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 3:
        raise ValueError(
            f"`{name}` must hold 2-D maps of shape (N, H, W) or (N, 1, H, W), got shape "
            f"{tuple(t.shape)}."
        )
    return t


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g.to(dtype)


def ssim(
    a: Tensor,
    b: Tensor,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    r"""Structural similarity (SSIM) between 2-D maps, per example.

    With Gaussian-weighted local means :math:`\mu`, variances :math:`\sigma^2` and
    covariance :math:`\sigma_{ab}` (window ``window_size``, standard deviation ``sigma``,
    "valid" positions only, i.e. without padding), and
    :math:`C_1 = (k_1 L)^2`, :math:`C_2 = (k_2 L)^2` for the data range :math:`L`:

    .. math::

        \mathrm{SSIM}(a, b) = \operatorname{mean}_{\text{windows}}
            \frac{(2 \mu_a \mu_b + C_1)(2 \sigma_{ab} + C_2)}
                 {(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)}.

    Matches :func:`skimage.metrics.structural_similarity` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False`` (whose window is
    11 wide) for the defaults. The maps
    are used as given: the sanity checks first apply :func:`normalize_maps`, so that
    ``data_range=1`` is right. For maps smaller than the window (e.g. a 7 x 7 GradCAM
    layer map with an 11 window), the window shrinks to the largest odd size that fits.

    Args:
        a: Maps ``(N, H, W)`` or ``(N, 1, H, W)``.
        b: Maps of the same shape.
        window_size: Odd window size (11, the choice of Wang et al., by default).
        sigma: Standard deviation of the Gaussian window.
        data_range: :math:`L`, the range of the values (1 for normalised maps).
        k1: :math:`k_1`.
        k2: :math:`k_2`.

    Returns:
        Float64 tensor ``(N,)``, 1 for identical maps.

    Examples::

        >>> import torch
        >>> from captum_soundness.sanity._similarity import ssim
        >>> a = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> ssim(a, a)
        tensor([1., 1.], dtype=torch.float64)
    """
    _check_pair(a, b)
    window_size = check_positive_int(window_size, "window_size")
    if window_size % 2 == 0:
        raise ValueError(f"`window_size` must be odd, got {window_size}.")
    sigma = check_positive_float(sigma, "sigma")
    data_range = check_positive_float(data_range, "data_range")
    x = _image_maps(a, "a").double().unsqueeze(1)
    y = _image_maps(b, "b").double().unsqueeze(1)
    h, w = x.shape[-2:]
    size = min(window_size, h if h % 2 else h - 1, w if w % 2 else w - 1)
    size = max(size, 1)
    g = _gaussian_window(size, sigma, x.dtype, x.device)

    def blur(t: Tensor) -> Tensor:
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    # One batched pass over the five local statistics.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5, H, W)
    n = stack.shape[0]
    stats = blur(stack.reshape(n * 5, 1, h, w)).reshape(n, 5, h - size + 1, w - size + 1)
    mu_x, mu_y, xx, yy, xy = stats.unbind(1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return s.flatten(1).mean(dim=1)


def _hog_module() -> Callable[..., object]:
    try:
        from skimage.feature import hog
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The 'hog' similarity needs scikit-image: pip install scikit-image "
            "(or captum-soundness[sanity])."
        ) from err
    return hog


def hog_pearson(
    a: Tensor,
    b: Tensor,
    *,
    orientations: int = 9,
    pixels_per_cell: int = 8,
    cells_per_block: int = 2,
) -> Tensor:
    """Pearson correlation of HOG features of 2-D maps, per example (needs scikit-image).

    Histograms of oriented gradients (:func:`skimage.feature.hog`, L2-Hys block
    normalisation) of each map, compared with the Pearson correlation, as in Adebayo et
    al. (2018). The maps are used as given (the sanity checks first apply
    :func:`normalize_maps`). Cells shrink for small maps so that every map holds at
    least ``cells_per_block`` cells per side. HOG runs in NumPy on the CPU, one map at a
    time; it is meant for the (infrequent) sanity checks, not for hot paths.

    Args:
        a: Maps ``(N, H, W)`` or ``(N, 1, H, W)``.
        b: Maps of the same shape.
        orientations: Number of orientation bins.
        pixels_per_cell: Cell size in pixels (both directions).
        cells_per_block: Block size in cells (both directions).

    Returns:
        Float64 tensor ``(N,)``; NaN where a feature vector is constant (e.g. an all-zero
        map).

    Raises:
        ImportError: scikit-image is not installed.

    Examples::

        >>> import torch
        >>> from captum_soundness.sanity._similarity import hog_pearson
        >>> a = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> hog_pearson(a, a)
        tensor([1.], dtype=torch.float64)
    """
    _check_pair(a, b)
    hog = _hog_module()
    orientations = check_positive_int(orientations, "orientations")
    pixels_per_cell = check_positive_int(pixels_per_cell, "pixels_per_cell")
    cells_per_block = check_positive_int(cells_per_block, "cells_per_block")
    x = _image_maps(a, "a")
    y = _image_maps(b, "b")
    h, w = x.shape[-2:]
    ppc = max(1, min(pixels_per_cell, h // cells_per_block, w // cells_per_block))
    cpb = max(1, min(cells_per_block, h // ppc, w // ppc))
    kwargs = {
        "orientations": orientations,
        "pixels_per_cell": (ppc, ppc),
        "cells_per_block": (cpb, cpb),
        "feature_vector": True,
    }
    xs = x.double().cpu().numpy()
    ys = y.double().cpu().numpy()
    fx = torch.stack([torch.as_tensor(hog(m, **kwargs)) for m in xs])
    fy = torch.stack([torch.as_tensor(hog(m, **kwargs)) for m in ys])
    return pearson_rows(fx, fy).to(a.device)


def _ssim_normalized(a: Tensor, b: Tensor) -> Tensor:
    return ssim(normalize_maps(a), normalize_maps(b))


def _hog_normalized(a: Tensor, b: Tensor) -> Tensor:
    return hog_pearson(normalize_maps(a), normalize_maps(b))


_MEASURES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "spearman": spearman,
    "spearman_abs": spearman_abs,
    "ssim": _ssim_normalized,
    "hog": _hog_normalized,
    "pearson": pearson,
}


def map_similarity(a: Tensor, b: Tensor, measure: str = "spearman") -> Tensor:
    """Similarity of two batches of maps by name, with the sanity checks' normalisation.

    ``"spearman"`` (:func:`spearman` of the values), ``"spearman_abs"``
    (:func:`spearman_abs`), ``"ssim"`` (:func:`ssim` of :func:`normalize_maps`),
    ``"hog"`` (:func:`hog_pearson` of :func:`normalize_maps`; needs scikit-image) or
    ``"pearson"`` (:func:`pearson` of the values).

    Args:
        a: Maps ``(N, *spatial)`` (2-D spatial for ``"ssim"`` and ``"hog"``).
        b: Maps of the same shape.
        measure: One of :data:`SIMILARITIES`.

    Returns:
        Float64 tensor ``(N,)``.

    Examples::

        >>> import torch
        >>> from captum_soundness.sanity._similarity import map_similarity
        >>> a = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> map_similarity(a, a, "ssim").shape
        torch.Size([3])
    """
    check_choice(measure, "measure", SIMILARITIES)
    return _MEASURES[measure](a, b)


def check_similarity(similarity: object, name: str = "similarity") -> tuple[str, ...]:
    """Validates one measure name or a sequence of them; returns a tuple of names.

    Raises an :class:`ImportError` up front when ``"hog"`` is asked for without
    scikit-image.
    """
    if isinstance(similarity, str):
        measures: tuple[str, ...] = (similarity,)
    elif isinstance(similarity, (list, tuple)) and similarity:
        measures = tuple(similarity)
    else:
        raise TypeError(
            f"`{name}` must be a measure name or a non-empty sequence of them, from "
            f"{SIMILARITIES}; got {similarity!r}."
        )
    for m in measures:
        check_choice(m, name, SIMILARITIES)
    if len(set(measures)) != len(measures):
        raise ValueError(f"`{name}` names a measure twice: {measures}.")
    if "hog" in measures:
        _hog_module()
    return measures
