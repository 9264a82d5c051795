"""The DAG factory: every live workflow file becomes one Airflow DAG.

live/<workflow>.json --flowlink.live.read_graphs--> WorkflowGraph --render--> DAG
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

from flowlink import settings

log = logging.getLogger(__name__)


def build_dags(folder: Path | None = None) -> dict:
    """dag_id -> DAG for every valid live file. In a task's process only that task's DAG is built."""
    from airflow.sdk import get_parsing_context

    from flowlink.live import read_graphs
    from flowlink_airflow.dag_factory.render import render

    started = time.perf_counter()
    graphs, broken = read_graphs(folder or settings.live_dir(), only=get_parsing_context().dag_id)
    dags = {}
    # What survives here lives as long as the DagBag: the older generations' collections would scan the growing
    # heap again and again for nothing (a fifth of the build time at 1,000 DAGs). The youngest generation still
    # frees short-lived garbage; the usual thresholds come back once the DAGs are built.
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], 1_000_000, 1_000_000)
    try:
        for g in graphs:
            try:
                dags[g.dag_id] = render(g)
            except Exception as exc:
                broken.append((Path(g.dag_id), f"cannot build the DAG: {exc}"))
    finally:
        gc.set_threshold(*thresholds)
    for path, reason in broken:
        log.error("flowlink: skipped %s: %s", path, reason)
    log.info("flowlink: built %d DAGs in %.3f s", len(dags), time.perf_counter() - started)
    return dags


def broken_files(folder: Path | None = None) -> list[tuple[Path, str]]:
    """Live files that cannot become a DAG, each with its reason."""
    from flowlink.live import read_graphs

    return read_graphs(folder or settings.live_dir())[1]
