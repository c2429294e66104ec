"""Random number generators, seeded the PyTorch way.

``seed=None`` draws one seed from PyTorch's global RNG (DataLoader's rule: one
``int64`` draw per call), so ``torch.manual_seed`` makes a run repeatable; an ``int`` seed
or a :class:`torch.Generator` leaves the global RNG untouched. All random numbers of a
call then come from the call's own generator.
"""

from __future__ import annotations

from numbers import Integral

import torch

__all__ = ["SEED_SPACE", "SeedType", "draw_seeds", "global_seed", "make_generator"]

SeedType = int | torch.Generator | None

#: Seeds drawn for sub-streams (per example, per layer) lie in ``[0, SEED_SPACE)``.
SEED_SPACE = 2**62


def make_generator(
    seed: SeedType, device: torch.device | str, name: str = "seed"
) -> torch.Generator:
    """Builds a :class:`torch.Generator` on ``device``.

    Args:
        seed: ``None`` (a seed drawn from PyTorch's global RNG with
            :func:`global_seed`: one draw, so ``torch.manual_seed`` makes the call
            repeatable), an ``int`` seed, or a ``torch.Generator`` (returned as is; it
            must live on ``device``). Call it before any block that restores the global
            RNG, so that the draw counts.
        device: Device the random numbers are drawn on.
        name: Argument name used in error messages.
    """
    device = torch.device(device)
    if isinstance(seed, torch.Generator):
        if seed.device.type != device.type:
            raise ValueError(
                f"`{name}` is a generator on {seed.device}, but the inputs are on {device}: "
                f"pass torch.Generator(device={str(device)!r}) or an int seed."
            )
        return seed
    generator = torch.Generator(device=device)
    if seed is None:
        generator.manual_seed(global_seed())
    elif isinstance(seed, Integral) and not isinstance(seed, bool):
        generator.manual_seed(int(seed))
    else:
        raise TypeError(f"`{name}` must be None, an int or a torch.Generator, got {seed!r}.")
    return generator


def draw_seeds(generator: torch.Generator, n: int) -> list[int]:
    """Draws ``n`` seeds in ``[0, SEED_SPACE)`` from ``generator`` (one per sub-stream)."""
    return torch.randint(
        0, SEED_SPACE, (n,), generator=generator, device=generator.device
    ).tolist()


def global_seed() -> int:
    """One seed drawn from PyTorch's global (CPU) RNG, as :class:`~torch.utils.data.DataLoader`
    draws its base seed: ``torch.empty((), dtype=torch.int64).random_()``."""
    return int(torch.empty((), dtype=torch.int64).random_().item())
