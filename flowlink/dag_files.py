"""The one-line files that bring Flowlink's DAGs into an Airflow DAGs folder (``flowlink dags write FOLDER``).

- ``flowlink_dags.py``: Flowlink's own DAGs (deployments, retry, alerts, maintenance, try);
- ``flowlink_workflows_00.py`` to ``_15.py``: the live workflows, each in the file of its shard (a CRC-32 of the
  workflow's name modulo the number of files, flowlink.live.shard): no file's parse grows with the whole number of
  workflows, and Airflow's dag-processor parses the files in parallel;
- ``flowlink_import_errors_00.py`` to ``_15.py``: each shard's live files that cannot become a DAG, as the import
  error of that file, while every DAG still loads.

The files name their shard and the number of files, and only import the installed package: adding workflows or
upgrading Flowlink never needs them written again. A workflow's file depends only on its name and that number, so
a DAG never moves between files unless the number changes. This repository's ``dags/`` holds the default files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from flowlink.files import write_atomic

SHARDS = 16  # bench/parse.py --workflows: at 30,000 workflows each file's parse stays far below 10 s
MAX_SHARDS = 100
OWN = "flowlink_dags.py"
IMPORT = "from flowlink_airflow.dag_factory import "  # how every file Flowlink writes begins
OURS = re.compile(r"^flowlink_(workflows|import_errors)_\d+\.py$")  # file names of some number of shards
OLD = ("flowlink_import_errors.py",)  # the two-file layout's report of every live file, now one per shard


class Action(StrEnum):
    CREATED = "created"
    REPLACED = "replaced"  # the file was there with other content
    UNCHANGED = "unchanged"
    REMOVED = "removed"  # a file of another number of shards, or of the two-file layout
    LEFT = "left"  # a Flowlink file name holding something Flowlink did not write: not touched


@dataclass(frozen=True)
class Outcome:
    path: Path
    action: Action


def workflows_file(shard: int) -> str:
    return f"flowlink_workflows_{shard:02d}.py"


def import_errors_file(shard: int) -> str:
    return f"flowlink_import_errors_{shard:02d}.py"


def files(shards: int = SHARDS) -> dict[str, str]:
    """File name -> text, in the order they are written: the workflows' files before ``flowlink_dags.py``, which
    built every workflow before they were spread (so a parse in between sees a workflow twice, never not at all)."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"the number of workflow DAG files must be from 1 to {MAX_SHARDS}, not {shards}")
    texts = {}
    for k in range(shards):
        texts[workflows_file(k)] = (
            f"{IMPORT}workflow_dags; globals().update(workflow_dags({k}, of={shards}))"
            f"  # Flowlink's live workflows, shard {k} of {shards}\n"
        )
    for k in range(shards):
        texts[import_errors_file(k)] = (
            f"{IMPORT}report_broken_files; report_broken_files({k}, of={shards})"
            f"  # live files of shard {k} of {shards} that cannot become a DAG (airflow dag)\n"
        )
    texts[OWN] = f"{IMPORT}own_dags; globals().update(own_dags())  # Flowlink's own DAGs\n"
    return texts


def write(folder: Path, shards: int = SHARDS) -> list[Outcome]:
    """Write the files into ``folder`` (created if missing), each atomically, and remove the files of Flowlink's
    earlier layouts that are not part of this one (those Flowlink wrote: they begin with its import)."""
    texts = files(shards)
    done = []
    for name, text in texts.items():
        path = folder / name
        before = path.read_text() if path.is_file() else None
        if before == text:
            done.append(Outcome(path, Action.UNCHANGED))
            continue
        write_atomic(path, text)
        done.append(Outcome(path, Action.CREATED if before is None else Action.REPLACED))
    for path in sorted(folder.iterdir()):
        if path.name in texts or not (OURS.match(path.name) or path.name in OLD) or not path.is_file():
            continue
        if path.read_text().startswith(IMPORT):
            path.unlink()
            done.append(Outcome(path, Action.REMOVED))
        else:
            done.append(Outcome(path, Action.LEFT))
    return done
