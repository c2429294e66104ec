"""Safe outputs of ``captum-soundness benchmark``: a staging folder beside ``--out``.

A run never writes into ``--out`` itself. It works in a hidden staging folder beside it,
``<parent>/.<name>.partial``, on the same file system:

1. Before any work, :func:`check_out` refuses an ``--out`` that is a file, that lies
   under a file, whose output names (``results.json``...) are folders, or that holds files
   the benchmark did not write (they would be lost), and creates the staging folder (the
   test that the place is writable).
2. Every finished method is recorded as ``records/<method>.json`` in the staging folder,
   written atomically (temporary file, ``fsync``, :func:`os.replace`), with the run's
   settings. ``--resume`` reads them back (the settings must match) and runs only the
   other methods, with the same numbers as an uninterrupted run.
3. At the end, the outputs are written into the staging folder, the records are removed
   and the folder is moved into place by :func:`publish`: a missing ``--out`` is created
   by one atomic rename; an existing one is renamed to ``.<name>.old-<pid>``, the staging
   folder renamed to ``--out`` and the old folder deleted. Each rename is atomic (same
   parent folder); SIGINT is blocked during the two renames, so Ctrl-C cannot fall
   between them. Only a crash of the machine (or SIGKILL) in that instant leaves
   ``--out`` missing, with the old results in ``.<name>.old-<pid>`` and the new ones in
   ``.<name>.partial`` (nothing lost).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from captum_soundness.benchmark._records import write_json_atomic
from captum_soundness.benchmark._results import MethodResult
from captum_soundness.benchmark._settings import BenchmarkSettings

__all__ = ["OUTPUT_NAMES", "Staging", "check_out"]

#: Every name the benchmark writes into ``--out``.
OUTPUT_NAMES = (
    "results.json",
    "results.csv",
    "report.md",
    "maps.png",
    "curves.png",
    "completeness_soundness.png",
)

#: Settings that do not change the numbers (a resumed run may differ in them).
_FREE_SETTINGS = ("methods", "show_progress")


def _check_existing_out(out: Path) -> None:
    """Refuses an existing ``out`` that is not a folder of earlier benchmark outputs."""
    if not out.is_dir():
        raise ValueError(f"`--out`: {out} exists and is not a folder.")
    for name in OUTPUT_NAMES:
        path = out / name
        if path.is_dir() or (path.exists() and not path.is_file()):
            raise ValueError(f"`--out`: {path} is in the way (not a file); remove it.")
    others = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_NAMES)
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise ValueError(
            f"`--out`: {out} holds files the benchmark did not write ({shown}); a run "
            "replaces the whole folder, so choose a new or empty folder."
        )


def _check_new_out(out: Path) -> None:
    """Refuses a missing ``out`` below a file; creates its parent folders."""
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"`--out`: cannot create {out}: {ancestor} is not a folder.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"`--out`: cannot create {out}: {error.strerror or error}.") from None


def check_out(out: str | Path, *, resume: bool = False) -> Staging:
    """Checks ``out`` before any work and prepares its staging folder.

    Args:
        out: The output folder (``--out``).
        resume: Keep the records of an interrupted run (``--resume``); without it, an
            interrupted run's records are refused rather than deleted.

    Returns:
        The :class:`Staging` of ``out``.

    Raises:
        ValueError: ``out`` cannot be written or replaced, or (without ``resume``) holds
            an interrupted run.
    """
    out = Path(out).resolve()
    if out.parent == out:
        raise ValueError(f"`--out`: {out} cannot be replaced; choose a folder below it.")
    if out.exists() or out.is_symlink():
        _check_existing_out(out)
    else:
        _check_new_out(out)
    staging = Staging(out)
    staging.prepare(resume)
    return staging


def _settings_key(settings: BenchmarkSettings | Mapping[str, Any]) -> dict[str, Any]:
    """The settings that the numbers depend on, as JSON."""
    data = settings.as_dict() if isinstance(settings, BenchmarkSettings) else dict(settings)
    return {k: v for k, v in data.items() if k not in _FREE_SETTINGS}


def _to_json(result: MethodResult, predicted: list[int]) -> dict[str, Any]:
    """A method's record: its :class:`MethodResult` (exact floats) and the predictions."""
    return {
        "name": result.name,
        "label": result.label,
        "metrics": result.metrics,
        "insertion_curve": result.insertion_curve,
        "deletion_curve": result.deletion_curve,
        "seconds": result.seconds,
        "num_maps": result.num_maps,
        "preview": result.preview.tolist(),
        "preview_dtype": str(result.preview.dtype).removeprefix("torch."),
        "per_image": result.per_image,
        "sanity": {k: None if math.isnan(v) else v for k, v in result.sanity.items()},
        "predicted": predicted,
    }


def _from_json(data: Mapping[str, Any]) -> tuple[MethodResult, list[int]]:
    result = MethodResult(
        name=data["name"],
        label=data["label"],
        metrics=dict(data["metrics"]),
        insertion_curve=list(data["insertion_curve"]),
        deletion_curve=list(data["deletion_curve"]),
        seconds=data["seconds"],
        num_maps=data["num_maps"],
        preview=torch.tensor(data["preview"], dtype=getattr(torch, data["preview_dtype"])),
        per_image={k: list(v) for k, v in data["per_image"].items()},
        sanity={k: math.nan if v is None else v for k, v in data["sanity"].items()},
    )
    return result, list(data["predicted"])


class Staging:
    """The staging folder ``.<name>.partial`` beside the output folder ``out``.

    Args:
        out: The output folder (absolute).
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out.parent / f".{out.name}.partial"
        self.records = self.path / "records"
        self.published = False  # the outputs are in place (set by publish)
        self._lock_fd: int | None = None

    def has_records(self) -> bool:
        """Whether an interrupted run left method records."""
        return self.records.is_dir() and any(self.records.glob("*.json"))

    def prepare(self, resume: bool) -> None:
        """Creates and locks the staging folder; refuses an interrupted run's records
        unless ``resume``, and clears anything else left there."""
        try:
            self.records.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"`--out`: cannot write beside {self.out} ({self.path}): "
                f"{error.strerror or error}."
            ) from None
        self._lock()
        if self.has_records() and not resume:
            self.unlock()
            raise ValueError(
                f"`--out`: an interrupted run of {self.out} left its finished methods in "
                f"{self.path}; pass --resume to continue it, or delete that folder."
            )
        for entry in self.path.iterdir():
            if entry != self.records:
                _remove(entry)

    def _lock(self) -> None:
        """Holds an exclusive lock on the staging folder until the process ends (POSIX),
        so that two runs never write the same outputs."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        self._lock_fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.unlock()
            raise ValueError(
                f"`--out`: another run is writing {self.out} (it holds {self.path})."
            ) from None

    def save(self, result: MethodResult, predicted: list[int], settings: Any) -> None:
        """Records one finished method (atomically)."""
        data = {"settings": _settings_key(settings), "result": _to_json(result, predicted)}
        write_json_atomic(self.records / f"{result.name}.json", data)

    def load(self, settings: BenchmarkSettings) -> dict[str, tuple[MethodResult, list[int]]]:
        """The recorded methods of ``settings.methods``.

        Raises:
            ValueError: A record made with other settings.
        """
        found: dict[str, tuple[MethodResult, list[int]]] = {}
        for name in settings.methods:
            path = self.records / f"{name}.json"
            if not path.is_file():
                continue
            data = json.loads(path.read_text(encoding="utf-8"))
            wanted, recorded = _settings_key(settings), data["settings"]
            keys = wanted.keys() | recorded.keys()
            changed = sorted(k for k in keys if wanted.get(k) != recorded.get(k))
            if changed:
                raise ValueError(
                    f"`--resume`: the records in {self.path} were made with other settings "
                    f"({', '.join(changed)}); rerun with the same options, or delete that "
                    "folder to start afresh."
                )
            found[name] = _from_json(data["result"])
        return found

    def unlock(self) -> None:
        """Releases the lock of :meth:`prepare` (also released when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def discard(self) -> None:
        """Deletes the staging folder."""
        _remove(self.path)
        self.unlock()

    def publish(self) -> None:
        """Moves the staged outputs into place (see the module docstring).

        Ctrl-C is held back for the whole move (a held-back one arrives after it, with
        :attr:`published` set), so an interruption never loses the method records nor
        leaves ``out`` half replaced.
        """
        trash = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
        with _sigint_blocked():
            _remove(trash)  # left by a crash of an earlier process with this id
            _remove(self.records)
            if self.out.exists() or self.out.is_symlink():
                os.replace(self.out, trash)
                try:
                    os.replace(self.path, self.out)
                except BaseException:
                    os.replace(trash, self.out)
                    raise
            else:
                os.replace(self.path, self.out)
            self.published = True
            _remove(trash)
        self.unlock()


def _remove(path: Path) -> None:
    """Deletes a file, link or folder tree (nothing if missing)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held back inside (POSIX main thread; elsewhere nothing is blocked)."""
    can_block = hasattr(signal, "pthread_sigmask") and sys.platform != "win32"
    if can_block:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if can_block:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
