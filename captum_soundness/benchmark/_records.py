"""Per-(image, method) records of an evaluation: atomic files, resume, merge.

Every finished batch of a method is one JSON file ``records/<method>/<first index>.json``
holding one record per image (its index, label, prediction, the per-label completeness,
soundness and insertion scores, the headline metrics, the curves at the prediction and
the method's seconds). A file is written to a temporary name and renamed with
:func:`os.replace`, so a run killed at any moment leaves only whole files: ``--resume``
reads them and recomputes the rest. Records are plain JSON numbers, which round-trip
floats exactly: merged results do not depend on whether a record was read back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from captum_soundness.benchmark._registry import METHODS
from captum_soundness.benchmark._results import EXTRA_METRICS, METRICS, MethodResult
from captum_soundness.metrics import SUMMARY_RENAMES

__all__ = ["RecordStore", "merge_records", "write_json_atomic"]

Record = dict[str, Any]


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes ``data`` as JSON to ``path`` atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # left only when the write failed


class RecordStore:
    """The records of one output folder (``<out>/records``).

    Args:
        out: The output folder of the evaluation.
    """

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out) / "records"

    def exists(self) -> bool:
        """Whether any record was written."""
        return self.root.is_dir() and any(self.root.rglob("*.json"))

    def write(self, method: str, records: Sequence[Record]) -> None:
        """Writes the records of one batch of ``method`` (one atomic file)."""
        first = min(record["index"] for record in records)
        write_json_atomic(self.root / method / f"{first:09d}.json", list(records))

    def read(self, method: str, indices: Iterable[int] | None = None) -> dict[int, Record]:
        """The complete records of ``method`` by image index (only ``indices``, if given);
        temporary files of an interrupted write are ignored."""
        wanted = None if indices is None else set(indices)
        found: dict[int, Record] = {}
        for path in sorted((self.root / method).glob("[0-9]*.json")):
            for record in json.loads(path.read_text(encoding="utf-8")):
                if wanted is None or record["index"] in wanted:
                    found[record["index"]] = record
        return found


def _mean(values: Sequence[Any]) -> list[float] | float:
    """The mean over images (float64, in the given order) of numbers or equal-length lists."""
    return torch.tensor(values, dtype=torch.float64).mean(0).tolist()


def merge_records(
    method: str, records: Mapping[int, Record], preview_shape: Sequence[int]
) -> MethodResult:
    """One method's :class:`MethodResult` from its records (means in image-index order).

    Args:
        method: The registered method name.
        records: Image index -> record, for every evaluated image.
        preview_shape: ``(H, W)`` of the maps kept for the figures.
    """
    ordered = [records[index] for index in sorted(records)]
    per_image = {key: [r["metrics"][key] for r in ordered] for key in ordered[0]["metrics"]}
    num_maps = sum(len(r["labels"]) for r in ordered)
    seconds = sum(r["seconds"] for r in ordered)
    means = {SUMMARY_RENAMES.get(key, key): _mean(values) for key, values in per_image.items()}
    means["seconds_per_map"] = seconds / num_maps
    previews = [r["preview"] for r in ordered if r.get("preview") is not None]
    preview = torch.tensor(previews, dtype=torch.float32).view(-1, *preview_shape)
    return MethodResult(
        name=method,
        label=METHODS[method].label,
        metrics={key: means[key] for key in (*METRICS, *EXTRA_METRICS)},
        insertion_curve=_mean([r["insertion_curve"] for r in ordered]),
        deletion_curve=_mean([r["deletion_curve"] for r in ordered]),
        seconds=seconds,
        num_maps=num_maps,
        preview=preview,
        per_image=per_image,
    )
