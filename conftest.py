"""Repository-wide pytest configuration: the docstring examples run as doctests."""

import os

import pytest
import torch

# One thread per process: `pytest -n 2` runs two workers on CI's two cores, and the
# subprocesses some tests start (the CLI, torchrun) inherit OMP_NUM_THREADS. More threads
# than free cores make PyTorch's parallel kernels wait on descheduled threads, tens of
# times slower on a busy machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_doctests(request: pytest.FixtureRequest) -> None:
    """Docstring examples draw random data from torch's global RNG, as users do: seed it
    before each example so that the examples are deterministic (test modules never use
    the global RNG)."""
    if isinstance(request.node, pytest.DoctestItem):
        torch.manual_seed(0)


# Deprecated 0.1 module paths: thin aliases that warn on import; their names are tested
# through their new homes, and tests/test_deprecations.py checks the aliases themselves.
collect_ignore = [
    f"captum_soundness/{name}.py"
    for name in (
        "curves",
        "evaluation",
        "axioms",
        "similarity",
        "cli",
        "attr/simple_masking",
        "attr/gradcam_plus_plus",
        "attr/fullgrad",
    )
]
