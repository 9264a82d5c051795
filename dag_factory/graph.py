"""A live workflow file as a plain graph: what the DAG needs, nothing of Airflow.

Reading only the precompiled file keeps parse time low: no spec validation, no database, no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flowlink.publish import Artifact, read_artifact
from flowlink.spec import Schedule


@dataclass(frozen=True)
class TouchpointNode:
    name: str
    description: str
    depends_on: tuple[str, ...]


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
    spec: dict
    environment: str | None = None  # the live folder it was installed in: its tasks use that worker queue


def graph_of(artifact: Artifact, environment: str | None = None) -> WorkflowGraph:
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
        touchpoints=tuple(
            TouchpointNode(tp["name"], tp.get("description", ""), tuple(tp.get("depends_on", ())))
            for tp in spec["touchpoints"]
        ),
        spec=spec,
        environment=environment,
    )


def live_files(folder: Path, only: str | None = None) -> list[Path]:
    """live/<workflow>.json and live/<environment>/<workflow>.json (or only those named <only>.json)."""
    name = f"{only}.json" if only else "*.json"
    return sorted(folder.glob(name)) + sorted(folder.glob(f"*/{name}"))


def read_graphs(folder: Path, only: str | None = None) -> tuple[list[WorkflowGraph], list[tuple[Path, str]]]:
    """Every live file of the folder (or only <only>.json) as a graph; broken files with their reasons."""
    graphs, broken, seen = [], [], {}
    for path in live_files(folder, only):
        environment = path.parent.name if path.parent != folder else None
        try:
            artifact = read_artifact(path)
            if path.stem != artifact.workflow:
                raise ValueError(f"holds workflow {artifact.workflow!r}; the file must be named {artifact.workflow}.json")
            if artifact.workflow in seen:
                raise ValueError(f"{artifact.workflow} is also live in {seen[artifact.workflow]}: undeploy one of them")
            seen[artifact.workflow] = path.parent
            graphs.append(graph_of(artifact, environment))
        except Exception as exc:  # one broken file must not hide the other workflows
            broken.append((path, str(exc)))
    return graphs, broken
