"""The live workflows (their published graphs), for the alert DAG's checks and daily summaries."""

from __future__ import annotations


def _live_graphs():
    from flowlink_airflow.dag_factory.graph import read_graphs
    from flowlink import settings

    return read_graphs(settings.live_dir())[0]


def live_workflows() -> list[tuple[str, str | None]]:
    """(workflow, environment) of every live workflow."""
    return [(g.dag_id, g.environment) for g in _live_graphs()]


def scheduled_workflows() -> list[tuple[str, str | None, object]]:
    """(workflow, environment, schedule) of every live workflow with an automatic schedule."""
    return [(g.dag_id, g.environment, g.schedule) for g in _live_graphs() if g.schedule.sync == "auto"]
