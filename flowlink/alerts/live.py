"""The live workflows (their published graphs), for the alert DAG's checks and daily summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowlink.live import WorkflowGraph
    from flowlink.spec import Schedule


def _live_graphs() -> list[WorkflowGraph]:
    from flowlink import settings
    from flowlink.live import read_graphs

    return read_graphs(settings.live_dir())[0]


def live_workflows() -> list[tuple[str, str | None]]:
    """(workflow, environment) of every live workflow."""
    return [(g.dag_id, g.environment) for g in _live_graphs()]


def scheduled_workflows() -> list[tuple[str, str | None, Schedule]]:
    """(workflow, environment, schedule) of every live workflow with an automatic schedule."""
    return [(g.dag_id, g.environment, g.schedule) for g in _live_graphs() if g.schedule.sync == "auto"]
