r"""Fill distributions: the "uninformative" values that replace removed positions.

A masked input keeps the top-:math:`k` positions of a saliency map and replaces every
other position by a fill :math:`g \sim G` (Gupta et al., 2022, section 2):

.. math::

    \tilde x(a, k, g) = x \odot T_k(M_a) + g \odot (1 - T_k(M_a)).

Every fill has the same interface, :meth:`Fill.sample`, which returns a tensor of shape
``(n_samples, *inputs.shape)`` on the inputs' device and in their dtype. Deterministic
fills (:class:`ConstantFill`, :class:`MeanFill`, :class:`BlurFill`) return a single sample
(leading dimension 1) that broadcasts against any number of requested samples; consumers
use :attr:`Fill.deterministic` to skip redundant draws.

Fills that are "neutral" in one sense are not neutral in another (Brunke et al., 2020):
black, mean, blurred and noise fills give different maps and different rankings of
methods. :class:`DatasetFill`, a random other image from a pool of training images, is
the fill the paper's own method trains with; it stays *intrinsic* (only the data and the
network are used, no separately trained in-painting model).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from numbers import Real
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_soundness._utils.rng import make_generator
from captum_soundness._utils.validation import (
    check_choice,
    check_inputs,
    check_positive_float,
    check_positive_int,
)

__all__ = [
    "BlurFill",
    "ConstantFill",
    "DatasetFill",
    "Fill",
    "FillLike",
    "MeanFill",
    "NoiseFill",
    "as_fill",
]


class Fill(ABC):
    """Base class of fill distributions.

    Subclasses implement :meth:`_sample`; :meth:`sample` validates its arguments and
    supplies a generator when none is given (seeded by one draw from PyTorch's global RNG,
    as a :class:`~torch.utils.data.DataLoader` seeds its workers).
    """

    #: ``True`` when every draw is identical, so a single sample represents the fill.
    deterministic: bool = False

    def sample(
        self, inputs: Tensor, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draws fill values for ``inputs``.

        Args:
            inputs: Tensor of shape ``(N, C, *spatial)`` (or ``(N, F)`` for the fills that
                need no spatial dimensions).
            n_samples: Number of independent draws per example.
            generator: Source of randomness for random fills; must live on the inputs'
                device. ``None`` creates a generator seeded with one draw from PyTorch's global RNG
                (so ``torch.manual_seed`` makes the draws repeatable).

        Returns:
            Tensor of shape ``(n_samples, *inputs.shape)`` (``(1, *inputs.shape)`` for
            deterministic fills, which broadcasts), same device and dtype as ``inputs``.

        Examples::

            >>> import torch
            >>> from captum_soundness.fills import NoiseFill
            >>> x = torch.zeros(2, 3, 8, 8)
            >>> NoiseFill("gaussian").sample(x, 4, torch.Generator().manual_seed(0)).shape
            torch.Size([4, 2, 3, 8, 8])
        """
        check_inputs(inputs, "inputs", min_dim=2)
        n_samples = check_positive_int(n_samples, "n_samples")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"`generator` must be a torch.Generator or None, got {type(generator).__name__}."
            )
        self.check_compatible(inputs)
        if generator is None and not self.deterministic:
            generator = make_generator(None, inputs.device, "generator")
        return self._sample(inputs, n_samples, generator)

    def check_compatible(self, inputs: Tensor, name: str = "fill") -> None:
        """Raises a :class:`ValueError` if this fill cannot fill ``inputs``.

        Called by every consumer before heavy work; the base implementation accepts any
        input.
        """
        return None

    @abstractmethod
    def _sample(self, inputs: Tensor, n_samples: int, generator: torch.Generator | None) -> Tensor:
        """Returns ``(n_samples or 1, *inputs.shape)`` fill values."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ConstantFill(Fill):
    r"""One value everywhere: :math:`g = c`.

    With normalized inputs, ``value=0`` is the dataset's mean colour, the reference
    evaluation fill of Gupta et al. (2022).

    Args:
        value: A number, or a tensor broadcastable to one example's shape ``(C, *spatial)``
            (e.g. a per-channel colour of shape ``(C, 1, 1)``).

    Examples::

        >>> import torch
        >>> from captum_soundness.fills import ConstantFill
        >>> ConstantFill(0.5).sample(torch.zeros(2, 1, 2, 2), 3).shape
        torch.Size([1, 2, 1, 2, 2])
    """

    deterministic = True

    def __init__(self, value: float | Tensor = 0.0) -> None:
        if isinstance(value, bool) or not isinstance(value, (Real, Tensor)):
            raise TypeError(f"`value` must be a number or a tensor, got {type(value).__name__}.")
        if isinstance(value, Tensor):
            if not bool(torch.isfinite(value).all()):
                raise ValueError("`value` contains NaN or infinite values.")
            self.value: float | Tensor = value.detach()
        else:
            if not math.isfinite(value):
                raise ValueError(f"`value` must be finite, got {value}.")
            self.value = float(value)

    def check_compatible(self, inputs: Tensor, name: str = "fill") -> None:
        if isinstance(self.value, Tensor):
            try:
                torch.broadcast_shapes(self.value.shape, inputs.shape[1:])
            except RuntimeError:
                raise ValueError(
                    f"`{name}`: constant fill of shape {tuple(self.value.shape)} does not "
                    f"broadcast to one example of shape {tuple(inputs.shape[1:])}."
                ) from None
            if torch.broadcast_shapes(self.value.shape, inputs.shape[1:]) != inputs.shape[1:]:
                raise ValueError(
                    f"`{name}`: constant fill of shape {tuple(self.value.shape)} does not "
                    f"broadcast to one example of shape {tuple(inputs.shape[1:])} (it has "
                    "more dimensions or a larger size)."
                )

    def _sample(self, inputs: Tensor, n_samples: int, generator: torch.Generator | None) -> Tensor:
        if isinstance(self.value, Tensor):
            value = self.value.to(device=inputs.device, dtype=inputs.dtype)
            return value.expand(inputs.shape[1:]).unsqueeze(0).expand(1, *inputs.shape)
        return inputs.new_full((1,) * (inputs.dim() + 1), self.value).expand(1, *inputs.shape)

    def __repr__(self) -> str:
        if isinstance(self.value, Tensor):
            return f"ConstantFill(value=<tensor {tuple(self.value.shape)}>)"
        return f"ConstantFill(value={self.value})"


class MeanFill(Fill):
    """Per-image, per-channel mean: each channel is filled with its own spatial mean.

    Examples::

        >>> import torch
        >>> from captum_soundness.fills import MeanFill
        >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> MeanFill().sample(x)[0, 0, 0]
        tensor([[1.5000, 1.5000],
                [1.5000, 1.5000]])
    """

    deterministic = True

    def check_compatible(self, inputs: Tensor, name: str = "fill") -> None:
        _needs_spatial(self, inputs, name)

    def _sample(self, inputs: Tensor, n_samples: int, generator: torch.Generator | None) -> Tensor:
        dims = tuple(range(2, inputs.dim()))
        mean = inputs.mean(dim=dims, keepdim=True)
        return mean.expand(inputs.shape).unsqueeze(0)


class BlurFill(Fill):
    r"""A Gaussian-blurred copy of the input (Fong & Vedaldi's "blur" perturbation).

    The blur is separable over all spatial dimensions, with a kernel of radius
    :math:`\lceil \mathrm{truncate} \cdot \sigma \rceil` and replicate padding at the
    borders.

    Args:
        sigma: Standard deviation of the Gaussian kernel, in positions (pixels). The
            default 5 suits 224x224 images; use about 2 for 28x28 digits.
        truncate: Kernel radius in units of ``sigma``.

    Examples::

        >>> import torch
        >>> from captum_soundness.fills import BlurFill
        >>> x = torch.zeros(1, 1, 9, 9); x[0, 0, 4, 4] = 1.0
        >>> g = BlurFill(sigma=1.0).sample(x)
        >>> bool(g[0, 0, 0, 4, 4] < 1.0), round(float(g.sum()), 4)
        (True, 1.0)
    """

    deterministic = True

    def __init__(self, sigma: float = 5.0, truncate: float = 3.0) -> None:
        self.sigma = check_positive_float(sigma, "sigma")
        self.truncate = check_positive_float(truncate, "truncate")

    def check_compatible(self, inputs: Tensor, name: str = "fill") -> None:
        _needs_spatial(self, inputs, name)

    def _kernel(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        radius = max(1, math.ceil(self.truncate * self.sigma))
        x = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (x / self.sigma) ** 2)
        return (kernel / kernel.sum()).to(dtype)

    def _sample(self, inputs: Tensor, n_samples: int, generator: torch.Generator | None) -> Tensor:
        work_dtype = torch.float32 if inputs.dtype in (torch.float16, torch.bfloat16) else None
        out = inputs.to(work_dtype) if work_dtype is not None else inputs
        kernel = self._kernel(out.device, out.dtype)
        radius = (kernel.numel() - 1) // 2
        weight = kernel.view(1, 1, -1)
        for dim in range(2, inputs.dim()):
            moved = out.movedim(dim, -1)
            shape = moved.shape
            flat = moved.reshape(-1, 1, shape[-1])
            flat = F.pad(flat, (radius, radius), mode="replicate")
            out = F.conv1d(flat, weight).reshape(shape).movedim(-1, dim)
        return out.to(inputs.dtype).unsqueeze(0)

    def __repr__(self) -> str:
        return f"BlurFill(sigma={self.sigma}, truncate={self.truncate})"


class NoiseFill(Fill):
    r"""Independent noise at every position: uniform on ``[low, high)`` or Gaussian.

    Args:
        kind: ``"uniform"`` or ``"gaussian"``.
        low: Lower bound of the uniform distribution.
        high: Upper bound of the uniform distribution.
        mean: Mean of the Gaussian distribution.
        std: Standard deviation of the Gaussian distribution.

    Examples::

        >>> import torch
        >>> from captum_soundness.fills import NoiseFill
        >>> g = NoiseFill("uniform", low=-1, high=1).sample(torch.zeros(1, 3, 4, 4), 2)
        >>> g.shape, bool(g.abs().max() <= 1)
        (torch.Size([2, 1, 3, 4, 4]), True)
    """

    def __init__(
        self,
        kind: str = "uniform",
        *,
        low: float = 0.0,
        high: float = 1.0,
        mean: float = 0.0,
        std: float = 1.0,
    ) -> None:
        self.kind = check_choice(kind, "kind", ("uniform", "gaussian"))
        for name, v in (("low", low), ("high", high), ("mean", mean)):
            if isinstance(v, bool) or not isinstance(v, Real):
                raise TypeError(f"`{name}` must be a finite number, got {v!r}.")
            if not math.isfinite(v):
                raise ValueError(f"`{name}` must be a finite number, got {v!r}.")
        if not high > low:
            raise ValueError(f"`high` must be greater than `low`, got low={low}, high={high}.")
        self.low, self.high, self.mean = float(low), float(high), float(mean)
        self.std = check_positive_float(std, "std")

    def _sample(self, inputs: Tensor, n_samples: int, generator: torch.Generator | None) -> Tensor:
        if generator is not None and generator.device.type != inputs.device.type:
            raise ValueError(
                f"`generator` lives on {generator.device} but the inputs are on "
                f"{inputs.device}: NoiseFill needs a generator on the inputs' device."
            )
        shape = (n_samples, *inputs.shape)
        low_precision = inputs.dtype in (torch.float16, torch.bfloat16)
        dtype = torch.float32 if low_precision else inputs.dtype
        if self.kind == "uniform":
            noise = torch.rand(shape, generator=generator, device=inputs.device, dtype=dtype)
            noise = noise.mul_(self.high - self.low).add_(self.low)
        else:
            noise = torch.randn(shape, generator=generator, device=inputs.device, dtype=dtype)
            noise = noise.mul_(self.std).add_(self.mean)
        return noise.to(inputs.dtype) if low_precision else noise

    def __repr__(self) -> str:
        if self.kind == "uniform":
            return f"NoiseFill('uniform', low={self.low}, high={self.high})"
        return f"NoiseFill('gaussian', mean={self.mean}, std={self.std})"


class DatasetFill(Fill):
    """Random images from a pool of (training) images: the paper's fill.

    Every example and every sample gets its own, independently drawn pool image
    (with replacement). Gupta et al. (2022) train their masks with a pool of 100 to 1000
    training images. The paper's fill is a random *other* image: build the pool from
    training images, not from the images being explained or evaluated (an image in the
    pool can be drawn as its own fill).

    Args:
        pool: Tensor of shape ``(P, C, *spatial)`` with ``P >= 1`` images, preprocessed
            exactly like the inputs. It is moved to the inputs' device and dtype on first
            use (and cached there).

    Examples::

        >>> import torch
        >>> from captum_soundness.fills import DatasetFill
        >>> pool = torch.rand(100, 3, 8, 8)
        >>> fill = DatasetFill(pool)
        >>> fill.sample(torch.zeros(4, 3, 8, 8), 10, torch.Generator().manual_seed(0)).shape
        torch.Size([10, 4, 3, 8, 8])
    """

    def __init__(self, pool: Tensor) -> None:
        if not isinstance(pool, Tensor):
            raise TypeError(
                f"`pool` must be a tensor of shape (P, C, *spatial), got {type(pool).__name__}."
            )
        if not pool.is_floating_point():
            raise TypeError(f"`pool` must be a floating point tensor, got dtype {pool.dtype}.")
        if pool.dim() < 2:
            raise ValueError(f"`pool` must have shape (P, C, *spatial), got {tuple(pool.shape)}.")
        if pool.shape[0] == 0:
            raise ValueError("`pool` is empty: it must hold at least one image.")
        if not bool(torch.isfinite(pool).all()):
            raise ValueError("`pool` contains NaN or infinite values.")
        self.pool = pool.detach()
        self._cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def check_compatible(self, inputs: Tensor, name: str = "fill") -> None:
        if tuple(self.pool.shape[1:]) != tuple(inputs.shape[1:]):
            raise ValueError(
                f"`{name}`: DatasetFill pool images have shape {tuple(self.pool.shape[1:])} "
                f"(channels, *spatial) but the inputs have {tuple(inputs.shape[1:])}."
            )

    def _pool_on(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        key = (device, dtype)
        if key not in self._cache:
            self._cache[key] = self.pool.to(device=device, dtype=dtype)
        return self._cache[key]

    def _sample(self, inputs: Tensor, n_samples: int, generator: torch.Generator | None) -> Tensor:
        pool = self._pool_on(inputs.device, inputs.dtype)
        gen_device = generator.device if generator is not None else inputs.device
        idx = torch.randint(
            pool.shape[0], (n_samples, inputs.shape[0]), generator=generator, device=gen_device
        )
        return pool[idx.to(inputs.device)]

    def __repr__(self) -> str:
        return f"DatasetFill(pool=<{self.pool.shape[0]} images of {tuple(self.pool.shape[1:])}>)"


def _needs_spatial(fill: Fill, inputs: Tensor, name: str) -> None:
    """Refuses inputs without spatial dimensions (``(N, F)``) for spatial fills: the
    mean or blur of a single position is the input itself, which would remove nothing."""
    if inputs.dim() < 3:
        raise ValueError(
            f"`{name}`: {type(fill).__name__} works over spatial dimensions (N, C, *spatial), "
            f"but the inputs have shape {tuple(inputs.shape)}: it would fill every feature "
            "with itself. For tabular inputs use a constant (e.g. the training mean as a "
            "tensor), NoiseFill or DatasetFill."
        )


#: Anything accepted where a fill is expected.
FillLike = Fill | float | int | Tensor | None


def as_fill(fill: Any, name: str = "fill") -> Fill:
    """Converts a fill-like object into a :class:`Fill`.

    Args:
        fill: A :class:`Fill`; ``None`` (the constant fill 0, the reference evaluation
            fill); a number or a tensor (a :class:`ConstantFill` with that value).
        name: Argument name used in error messages.

    Returns:
        The :class:`Fill`.

    Examples::

        >>> from captum_soundness.fills import as_fill
        >>> as_fill(None), as_fill(0.5)
        (ConstantFill(value=0.0), ConstantFill(value=0.5))
    """
    if fill is None:
        return ConstantFill(0.0)
    if isinstance(fill, Fill):
        return fill
    if isinstance(fill, (Real, Tensor)) and not isinstance(fill, bool):
        return ConstantFill(fill)
    raise TypeError(
        f"`{name}` must be a Fill (ConstantFill, MeanFill, BlurFill, NoiseFill, DatasetFill), "
        f"a number or a tensor, got {type(fill).__name__}."
    )
