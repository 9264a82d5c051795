"""The live workflow files (live/<workflow>.json, live/<environment>/<workflow>.json), each read as a plain graph:
what its DAG needs (flowlink_airflow.dag_factory renders it), nothing of Airflow.

Reading only the precompiled file keeps parse time low: no spec validation, no database, no network.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

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


def _where(part: dict) -> str:
    return next((f"{k} `{part[k]}`" for k in ("table", "query", "endpoint", "file") if part.get(k)), "")


def _node(tp: dict) -> TouchpointNode:
    extract, load = tp["extract"], tp["load"]
    return TouchpointNode(
        tp["name"],
        tp.get("description", ""),
        tuple(tp.get("depends_on", ())),
        extract=f"{_where(extract)} by `{extract['key']}`",
        load=f"{load['method']} {_where(load)}",
        rules=len(tp.get("mapping") or ()),
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
        touchpoints=tuple(_node(tp) for tp in spec["touchpoints"]),
        source_connection=spec["source"]["connection"],
        target_connection=spec["target"]["connection"],
        environment=environment,
    )


def live_files(folder: Path, only: str | None = None) -> list[Path]:
    """live/<workflow>.json and live/<environment>/<workflow>.json (or only those named <only>.json)."""
    name = f"{only}.json" if only else "*.json"
    return sorted(folder.glob(name)) + sorted(folder.glob(f"*/{name}"))


@functools.lru_cache(maxsize=4096)
def _read(path: Path, environment: str | None, _stat: tuple) -> WorkflowGraph:
    """One live file, read once per process while it is unchanged (both DAG files of a DagBag need it)."""
    artifact = read_artifact(path)
    if path.stem != artifact.workflow:
        raise ValueError(f"holds workflow {artifact.workflow!r}; the file must be named {artifact.workflow}.json")
    return graph_of(artifact, environment)


def _graph(path: Path, environment: str | None) -> WorkflowGraph:
    st = os.stat(path)  # live files are replaced by rename: a new file has a new inode
    return _read(path, environment, (st.st_ino, st.st_mtime_ns, st.st_size))


def read_graphs(folder: Path, only: str | None = None) -> tuple[list[WorkflowGraph], list[tuple[Path, str]]]:
    """Every live file of the folder (or only <only>.json) as a graph; broken files with their reasons."""
    graphs: list[WorkflowGraph] = []
    broken: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}  # dag id -> the folder it is live in
    for path in live_files(folder, only):
        environment = path.parent.name if path.parent != folder else None
        try:
            graph = _graph(path, environment)
            if graph.dag_id in seen:
                raise ValueError(f"{graph.dag_id} is also live in {seen[graph.dag_id]}: undeploy one of them")
            seen[graph.dag_id] = path.parent
            graphs.append(graph)
        except Exception as exc:  # one broken file must not hide the other workflows
            broken.append((path, str(exc)))
    return graphs, broken
