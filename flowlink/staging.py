"""Batch files: records move between steps as record XML files (flowlink.recordxml) in a run-scoped folder,
never through XCom.

The folder is local (shared by the workers of an environment) or on object storage (an Airflow
ObjectStoragePath, see settings.staging_dir); XCom carries the files' names as text."""

from __future__ import annotations

import re
from pathlib import Path

from flowlink import settings
from flowlink.files import write_atomic


def run_folder(workflow: str, run_id: str):
    return settings.staging_dir() / workflow / re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def as_path(name: str | Path):
    """A batch file's name (from XCom or a snapshot) as a path: local, or on object storage for a URL."""
    if isinstance(name, str) and "://" in name:
        from flowlink.airflow_adapter import storage_path

        return storage_path(name)
    return Path(name)


def write_batch(path, document: bytes) -> None:
    """Write a batch file, never half: a local file with flowlink.files.write_atomic, an object in one upload
    (object stores show an object only once it is complete)."""
    if isinstance(path, Path):
        write_atomic(path, document)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(document)


def read_batch(name: str | Path) -> bytes:
    return as_path(name).read_bytes()
