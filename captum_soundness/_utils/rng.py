"""Random number generators that never touch PyTorch's global RNG."""

from __future__ import annotations

from numbers import Integral

import torch

__all__ = ["SEED_SPACE", "SeedType", "draw_seeds", "make_generator"]

SeedType = int | torch.Generator | None

#: Seeds drawn for sub-streams (per example, per layer) lie in ``[0, SEED_SPACE)``.
SEED_SPACE = 2**62


def make_generator(
    seed: SeedType, device: torch.device | str, name: str = "seed"
) -> torch.Generator:
    """Builds a :class:`torch.Generator` on ``device``.

    Args:
        seed: ``None`` (a fresh, non-deterministically seeded generator; the global RNG
            is neither read nor advanced), an ``int`` seed, or a ``torch.Generator``
            (returned as is; it must live on ``device``).
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
        generator.seed()
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
