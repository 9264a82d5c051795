"""The live workflow files (live/<workflow>.json, live/<environment>/<workflow>.json), each read as a plain graph:
what its DAG needs (flowlink_airflow.dag_factory renders it), nothing of Airflow.

Reading only the precompiled file keeps parse time low: no spec validation, no database, no network.

The workflows are spread over several DAG files (``shard``): each file lists the live folder and reads only the
live files of its shard, so no file's parse grows with the whole number of workflows.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from flowlink.assets import target_uri
from flowlink.publish import Artifact, read_artifact
from flowlink.spec import Schedule


@dataclass(frozen=True)
class TouchpointNode:
    name: str
    description: str
    depends_on: tuple[str, ...]
    extract: str = ""  # short summaries for the DAG docs
    load: str = ""
    rules: int = 0  # mapping rules; 0: the touchpoint brings its own XSLT
    asset: str = ""  # the asset URI of the target its load writes (flowlink.assets)


@dataclass(frozen=True)
class WorkflowGraph:
    dag_id: str
    version: int
    sha256: str
    published_at: str
    description: str
    source: str  # connector type
    target: str
    schedule: Schedule
    touchpoints: tuple[TouchpointNode, ...]
    source_connection: str = ""
    target_connection: str = ""
    environment: str | None = None  # the live folder it was installed in: its tasks use that worker queue
    after: tuple[str, ...] = ()  # sync: after: the asset URIs it waits for


def _where(part: dict) -> str:
    return next((f"{k} `{part[k]}`" for k in ("table", "query", "endpoint", "file") if part.get(k)), "")


def _node(tp: dict, target_connection: str) -> TouchpointNode:
    extract, load = tp["extract"], tp["load"]
    return TouchpointNode(
        tp["name"],
        tp.get("description", ""),
        tuple(tp.get("depends_on", ())),
        extract=f"{_where(extract)} by `{extract['key']}`",
        load=f"{load['method']} {_where(load)}",
        rules=len(tp.get("mapping") or ()),
        asset=target_uri(target_connection, load),
    )


def graph_of(artifact: Artifact, environment: str | None = None) -> WorkflowGraph:
    """Only what the DAG needs: the graph is kept for the life of the parsing process, the spec is not."""
    spec = artifact.spec
    return WorkflowGraph(
        dag_id=artifact.workflow,
        version=artifact.version,
        sha256=artifact.sha256,
        published_at=artifact.published_at,
        description=spec.get("description", ""),
        source=spec["source"]["type"],
        target=spec["target"]["type"],
        schedule=Schedule.model_validate(spec.get("schedule") or {}),
        touchpoints=tuple(_node(tp, spec["target"]["connection"]) for tp in spec["touchpoints"]),
        source_connection=spec["source"]["connection"],
        target_connection=spec["target"]["connection"],
        environment=environment,
        after=artifact.after,
    )


def shard(workflow: str, shards: int) -> int:
    """The DAG file (0 to shards - 1) that builds a workflow's DAG: the CRC-32 of its name modulo ``shards``.

    The same on every machine, process and Python version (unlike ``hash()``, salted per process), and it depends on
    nothing but the name: a workflow stays in its file while others are added, removed or moved between
    environments, so Airflow never sees its DAG move to another file."""
    return zlib.crc32(workflow.encode()) % shards


def _names(folder: Path) -> list[str]:
    """The ``*.json`` names in a folder, as ``glob`` finds them (hidden names left out: write_atomic's temp files)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.name.endswith(".json") and not e.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def live_files(folder: Path, only: str | None = None, part: tuple[int, int] | None = None) -> list[Path]:
    """live/<workflow>.json and live/<environment>/<workflow>.json: all of them, only those named <only>.json, or only
    those of one shard (``part`` = (shard, shards)), by the file's name. Only the files are listed, none is read."""
    if only:
        return sorted(folder.glob(f"{only}.json")) + sorted(folder.glob(f"*/{only}.json"))
    found: list[Path] = []
    try:
        with os.scandir(folder) as entries:
            subfolders = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    except FileNotFoundError:
        return []
    for sub in (folder, *(folder / name for name in subfolders)):
        names = _names(sub)
        if part is not None:
            names = [n for n in names if shard(n[:-5], part[1]) == part[0]]
        found.extend(sub / n for n in names)
    return found


def _graph(path: Path, environment: str | None, verify: bool = True) -> WorkflowGraph:
    """One live file as a graph, read afresh (the dag-processor parses each DAG file in a new process: a cache of
    graphs would only hold memory)."""
    artifact = read_artifact(path, verify=verify)
    if path.stem != artifact.workflow:
        raise ValueError(f"holds workflow {artifact.workflow!r}; the file must be named {artifact.workflow}.json")
    return graph_of(artifact, environment)


# Each live file's verdict in this process, by its stamp (path, inode, size, mtime): None when it makes a graph, else
# why not. A DagBag of the whole folder (bench/parse.py, `airflow dags list`) parses a shard's workflows file and its
# import-errors file in one process: whichever comes second does not verify a file again (the report does not even
# read it). The dag-processor parses each file in a process of its own, which reads its shard once.
_VERDICTS: dict[tuple[str, int, int, int], str | None] = {}
_MOST_VERDICTS = 200_000  # a long-lived process forgets them all past this (each file version has its own stamp)
_UNKNOWN = "unknown"


def _stamp(path: Path) -> tuple[str, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None  # read_artifact says why
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def read_graphs(
    folder: Path, only: str | None = None, part: tuple[int, int] | None = None, graphs: bool = True
) -> tuple[list[WorkflowGraph], list[tuple[Path, str]]]:
    """Every live file of the folder (or only <only>.json, or only one shard's: ``part`` = (shard, shards)) as a
    graph; broken files with their reasons. ``graphs=False``: only the broken files (the graphs list is empty)."""
    found: list[WorkflowGraph] = []
    broken: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}  # dag id (the file's name, once it is valid) -> the folder it is live in
    if len(_VERDICTS) > _MOST_VERDICTS:
        _VERDICTS.clear()
    for path in live_files(folder, only, part):
        environment = path.parent.name if path.parent != folder else None
        stamp = _stamp(path)
        verdict = _VERDICTS.get(stamp, _UNKNOWN) if stamp else _UNKNOWN
        if verdict is not None and verdict is not _UNKNOWN:
            broken.append((path, verdict))
            continue
        try:
            if graphs or verdict is _UNKNOWN:
                graph = _graph(path, environment, verify=verdict is _UNKNOWN)
                if graphs:
                    found.append(graph)
        except Exception as exc:  # one broken file must not hide the other workflows
            broken.append((path, str(exc)))
            if stamp:
                _VERDICTS[stamp] = str(exc)
            continue
        if stamp:
            _VERDICTS[stamp] = None
        if path.stem in seen:
            if graphs:
                found.pop()
            broken.append((path, f"{path.stem} is also live in {seen[path.stem]}: undeploy one of them"))
            continue
        seen[path.stem] = path.parent
    return found, broken
