"""Batch files: records move between steps as JSON Lines files in a run-scoped folder, never through XCom.

The folder is local (shared by the workers of an environment) or on object storage (an Airflow
ObjectStoragePath, see settings.staging_dir); XCom carries the files' names as text."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from flowlink import settings


def run_folder(workflow: str, run_id: str):
    return settings.staging_dir() / workflow / re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def as_path(name: str | Path):
    """A batch file's name (from XCom or a snapshot) as a path: local, or on object storage for a URL."""
    if isinstance(name, str) and "://" in name:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(name)
    return Path(name)


def _lines(records: Iterable[dict], f) -> int:
    n = 0
    for record in records:
        line = json.dumps(record, ensure_ascii=False, default=str)
        if not line.isascii():
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:  # half a surrogate pair: kept as a \ud800 escape, the transform fails the record
                line = json.dumps(record, default=str)
        f.write(line)
        f.write("\n")
        n += 1
    return n


def write_batch(path, records: Iterable[dict]) -> int:
    """Write records as JSON Lines, never half: a local file through a temp file and a rename, an object in
    one upload (object stores show an object only once it is complete); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(path, Path):
        with path.open("w", encoding="utf-8") as f:
            return _lines(records, f)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        n = _lines(records, f)
    os.replace(tmp, path)
    return n


def read_batch(name: str | Path) -> list[dict]:
    with as_path(name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
