"""Executes the tutorial notebooks in place (``make tutorials``).

Every ``tutorials/*.ipynb`` (or the notebooks given on the command line) is run from a
fresh kernel, in order, with its working directory set to ``tutorials/``; the outputs are
written back into the notebook, so that the documentation can render them without
executing anything. The script exits with status 1 when any cell of any notebook fails
(the failing notebook is left unchanged) and prints the time each notebook took.

The kernel is the Python interpreter running this script (``sys.executable``, normally
``.venv/bin/python``), whatever Jupyter kernels are installed elsewhere: a private kernel
spec (in a temporary directory put first on ``JUPYTER_PATH``) is used, while the notebooks
keep their standard ``python3`` metadata. Besides the wall time, the kernel's CPU time is
printed: on a busy machine it is the better measure of the notebooks' cost.

Usage::

    python scripts/run_tutorials.py                       # every notebook
    python scripts/run_tutorials.py tutorials/01_quickstart.ipynb
    python scripts/run_tutorials.py --timeout 300 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
KERNEL_NAME = "captum-soundness-tutorials"


def _write_kernel_spec(spec_dir: Path, threads: int | None) -> None:
    """Writes a kernel spec that runs ``sys.executable -m ipykernel_launcher``."""
    kernel_dir = spec_dir / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True, exist_ok=True)
    env = {}
    if threads is not None:
        env = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.executable})",
        "language": "python",
        "env": env,
        "metadata": {"debugger": False},
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")


def _cpu_seconds() -> float:
    """CPU time (user + system) of the terminated children of this process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_notebook(path: Path, *, timeout: int) -> tuple[float, float]:
    """Executes ``path`` in place; returns (wall, kernel CPU) seconds; raises on failure."""
    nb = nbformat.read(path, as_version=4)
    kernelspec = nb.metadata.get("kernelspec")
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=timeout,
        allow_errors=False,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start, cpu = time.perf_counter(), _cpu_seconds()
    client.execute()  # starts and shuts down its own kernel
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    if kernelspec is not None:  # keep the standard metadata, not the private kernel's
        nb.metadata["kernelspec"] = kernelspec
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to run (default: tutorials/*.ipynb)"
    )
    parser.add_argument(
        "--timeout", type=int, default=600, help="seconds allowed per cell (default 600)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="set OMP_NUM_THREADS/MKL_NUM_THREADS in the kernel (default: inherit)",
    )
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(TUTORIALS.glob("*.ipynb"))
    if not notebooks:
        print(f"no notebooks found in {TUTORIALS}", file=sys.stderr)
        return 1
    # Tutorials import the package from the checkout, installed or not.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    print(f"kernel: {sys.executable}")
    failures = []
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="captum-soundness-kernels-") as spec_dir:
        _write_kernel_spec(Path(spec_dir), args.threads)
        # The private kernel spec is found first; the notebooks' metadata is not changed.
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            p for p in (spec_dir, os.environ.get("JUPYTER_PATH", "")) if p
        )
        for path in notebooks:
            path = path.resolve()
            try:
                elapsed, cpu = run_notebook(path, timeout=args.timeout)
            except (CellExecutionError, CellTimeoutError) as error:
                print(f"FAILED  {path.name}\n{error}", file=sys.stderr)
                failures.append(path.name)
                continue
            print(f"ok      {path.name}  {elapsed:6.1f} s  (kernel CPU {cpu:6.1f} s)", flush=True)
    print(f"total   {time.perf_counter() - total:6.1f} s")
    if failures:
        print(f"{len(failures)} notebook(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
