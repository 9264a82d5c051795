"""Batch files: records move between steps as JSON Lines files in a run-scoped folder, never through XCom."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from flowlink import settings


def run_folder(workflow: str, run_id: str) -> Path:
    return settings.staging_dir() / workflow / re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def write_batch(path: Path, records: Iterable[dict]) -> int:
    """Write records as JSON Lines atomically (temp file + rename); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, default=str))
            f.write("\n")
            n += 1
    os.replace(tmp, path)
    return n


def read_batch(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
