"""Batch files: records move between steps as record XML files (flowlink.recordxml) in a run-scoped folder,
never through XCom.

The folder is local (shared by the workers of an environment) or on object storage (an Airflow
ObjectStoragePath, see settings.staging_dir); XCom carries the files' names as text."""

from __future__ import annotations

import os
import re
from pathlib import Path

from flowlink import settings
from flowlink.errors import FlowlinkError


def run_folder(workflow: str, run_id: str):
    return settings.staging_dir() / workflow / re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def as_path(name: str | Path):
    """A batch file's name (from XCom or a snapshot) as a path: local, or on object storage for a URL."""
    if isinstance(name, str) and "://" in name:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(name)
    return Path(name)


def write_batch(path, document: bytes) -> None:
    """Write a batch file, never half: a local file through a temp file and a rename, an object in one upload
    (object stores show an object only once it is complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(path, Path):
        path.write_bytes(document)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(document)
    os.replace(tmp, path)


def read_batch(name: str | Path) -> bytes:
    if str(name).endswith(".jsonl"):
        raise FlowlinkError(f"{name}: a batch file of an older Flowlink (JSON Lines); clear this touchpoint's extract "
                            "task in this run to stage its records again")
    return as_path(name).read_bytes()
