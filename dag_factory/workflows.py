"""The DAG factory: every live workflow file becomes one Airflow DAG, built in the DAG file of its shard.

live/<workflow>.json --flowlink.live.read_graphs--> WorkflowGraph --render--> DAG
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

from flowlink import settings

log = logging.getLogger(__name__)
FREEZE_FROM = 100  # DAGs built by one file (a task's process builds one; the tests' folders a few)


def build_dags(folder: Path | None = None, part: tuple[int, int] | None = None) -> dict:
    """dag_id -> DAG for every valid live file (of one shard: ``part`` = (shard, shards)). In a task's process only
    that task's DAG is built, and only its own live file is read."""
    from airflow.sdk import get_parsing_context

    from flowlink.live import read_graphs, shard
    from flowlink_airflow.dag_factory.render import render

    started = time.perf_counter()
    wanted = get_parsing_context().dag_id
    if wanted is not None and part is not None and shard(wanted, part[1]) != part[0]:
        return {}  # a task of another shard's DAG: nothing of this file is needed
    graphs, broken = read_graphs(folder or settings.live_dir(), only=wanted, part=part)
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
    if len(dags) >= FREEZE_FROM:
        # Many DAGs now make most of the heap and stay as long as it. Out of the collector's way (after freeing what
        # died young), so that later collections do not scan them again: in a process that parses several files
        # (a DagBag of the folder), each file would otherwise cost a full collection of all the DAGs before it.
        gc.collect(1)
        gc.freeze()
    for path, reason in broken:
        log.error("flowlink: skipped %s: %s", path, reason)
    where = f" (shard {part[0]} of {part[1]})" if part else ""
    log.info("flowlink: built %d DAGs%s in %.3f s", len(dags), where, time.perf_counter() - started)
    return dags


def broken_files(folder: Path | None = None, part: tuple[int, int] | None = None) -> list[tuple[Path, str]]:
    """Live files that cannot become a DAG (of one shard: ``part`` = (shard, shards)), each with its reason."""
    from flowlink.live import read_graphs

    return read_graphs(folder or settings.live_dir(), part=part, graphs=False)[1]
