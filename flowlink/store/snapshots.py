"""Process snapshots: per run, per step its times, counts, batch files and data log."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from flowlink.store.db import Store, upsert, utcnow
from flowlink.store.tables import data_log, resyncs, steps

KEYS = ["workflow", "run_id", "touchpoint", "step"]


def start_step(store: Store, workflow: str, run_id: str, version: int, touchpoint: str, step: str, *,
               hostname: str | None = None, queue: str | None = None) -> None:
    """A step starts (again, on a task retry: the row is reset), on a worker (host name) and queue."""
    now = utcnow()
    row = dict(workflow=workflow, run_id=run_id, version=version, touchpoint=touchpoint, step=step, status="running",
               started_at=now, ended_at=None, count_in=0, count_out=0, count_failed=0, files="[]", message=None,
               failure=None, hostname=hostname, queue=queue)
    with store.engine.begin() as conn:
        upsert(conn, steps, [row], KEYS, {k: v for k, v in row.items() if k not in KEYS})


def finish_step(store: Store, workflow: str, run_id: str, touchpoint: str, step: str, *, status: str,
                count_in: int = 0, count_out: int = 0, count_failed: int = 0, files: list[str] = (),
                message: str | None = None, failure: str | None = None, conn=None) -> None:
    """The step ended (in ``conn``'s transaction, if given). A failed step says why in ``failure``: "records"
    (records failed, the step ran to its end) or "step" (it failed as a whole)."""
    values = dict(status=status, ended_at=utcnow(), count_in=count_in, count_out=count_out,
                  count_failed=count_failed, files=json.dumps(list(files)), message=message, failure=failure)
    where = [steps.c[k] == v for k, v in zip(KEYS, (workflow, run_id, touchpoint, step))]
    if conn is not None:
        conn.execute(steps.update().where(*where).values(**values))
        return
    with store.engine.begin() as c:
        c.execute(steps.update().where(*where).values(**values))


def runs(store: Store, workflow: str, limit: int = 50) -> list[dict]:
    """The runs of a workflow, newest first: run id, version, start, end, steps failed and still running."""
    failed = func.sum(func.cast(steps.c.status == "failed", steps.c.count_in.type))
    running = func.sum(func.cast(steps.c.status == "running", steps.c.count_in.type))
    q = (select(steps.c.run_id, func.max(steps.c.version).label("version"), func.min(steps.c.started_at).label("started_at"),
                func.max(steps.c.ended_at).label("ended_at"), failed.label("failed_steps"), running.label("running_steps"),
                func.sum(steps.c.count_failed).label("failed_records"))
         .where(steps.c.workflow == workflow).group_by(steps.c.run_id).order_by(func.min(steps.c.started_at).desc()).limit(limit))
    with store.engine.connect() as conn:
        return _with_kind(conn, workflow, [dict(r._mapping) for r in conn.execute(q)])


def _with_kind(conn, workflow: str, rows: list[dict]) -> list[dict]:
    """Each run's kind: "retry" (the automatic retry of failed records), "resync" (records a user chose) or
    "sync" (a scheduled or manual run of the whole workflow); from the resync request the run was started for."""
    ids = [r["run_id"] for r in rows]
    kinds: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        q = select(resyncs.c.run_id, resyncs.c.kind).where(resyncs.c.workflow == workflow, resyncs.c.run_id.in_(ids[i:i + 500]))
        kinds.update({run_id: "retry" if kind == "retry" else "resync" for run_id, kind in conn.execute(q)})
    for r in rows:
        r["kind"] = kinds.get(r["run_id"], "sync")
    return rows


def run_kind(store: Store, workflow: str, run_id: str) -> str:
    """"retry", "resync" or "sync" (see _with_kind)."""
    with store.engine.connect() as conn:
        return _with_kind(conn, workflow, [{"run_id": run_id}])[0]["kind"]


def snapshot(store: Store, run_id: str, workflow: str | None = None) -> dict:
    """Everything recorded for one run: its steps (in order) and its data log."""
    q = select(steps).where(steps.c.run_id == run_id).order_by(steps.c.started_at, steps.c.id)
    log_q = select(data_log).where(data_log.c.run_id == run_id).order_by(data_log.c.id)
    if workflow:
        q, log_q = q.where(steps.c.workflow == workflow), log_q.where(data_log.c.workflow == workflow)
    with store.engine.connect() as conn:
        step_rows = [dict(r._mapping) for r in conn.execute(q)]
        log_rows = [dict(r._mapping) for r in conn.execute(log_q)]
    for row in step_rows:
        row["files"] = json.loads(row["files"])
    return {"run_id": run_id, "steps": step_rows, "data_log": log_rows}


def run_version(store: Store, workflow: str, run_id: str) -> int | None:
    """The workflow version a run started with: every later step of the run uses the same one."""
    q = select(func.min(steps.c.version)).where(steps.c.workflow == workflow, steps.c.run_id == run_id)
    with store.engine.connect() as conn:
        return conn.execute(q).scalar()


# ------------------------------------------------------------------ reads for the pages (paged)

def run_page(store: Store, workflow: str, *, limit: int = 50, offset: int = 0) -> list[dict]:
    """A page of the workflow's runs, newest first, with what a list shows: times, steps failed or still running."""
    as_int = steps.c.count_in.type
    q = (select(steps.c.run_id, func.max(steps.c.version).label("version"), func.min(steps.c.started_at).label("started_at"),
                func.max(steps.c.ended_at).label("ended_at"),
                func.sum(func.cast(steps.c.status == "failed", as_int)).label("failed_steps"),
                func.sum(func.cast(steps.c.status == "running", as_int)).label("running_steps"),
                func.count().label("steps"), func.sum(steps.c.count_failed).label("failed_records"))
         .where(steps.c.workflow == workflow).group_by(steps.c.run_id)
         .order_by(func.min(steps.c.started_at).desc(), steps.c.run_id.desc()).limit(limit).offset(offset))
    with store.engine.connect() as conn:
        return _with_kind(conn, workflow, [dict(r._mapping) for r in conn.execute(q)])


def failure_reasons(store: Store, workflow: str, run_ids: list[str]) -> dict[str, str]:
    """run id -> "touchpoint.step: message" of the first step of the run that failed (for a page of runs)."""
    q = (select(steps.c.run_id, steps.c.touchpoint, steps.c.step, steps.c.message)
         .where(steps.c.workflow == workflow, steps.c.run_id.in_(run_ids), steps.c.status == "failed")
         .order_by(steps.c.started_at.desc(), steps.c.id.desc()))
    with store.engine.connect() as conn:
        return {run: f"{tp}.{step}: {message or 'no reason recorded'}" for run, tp, step, message in conn.execute(q)}


def run_count(store: Store, workflow: str) -> int:
    q = select(func.count(func.distinct(steps.c.run_id))).where(steps.c.workflow == workflow)
    with store.engine.connect() as conn:
        return conn.execute(q).scalar_one()


def run_steps(store: Store, workflow: str, run_id: str) -> list[dict]:
    """The steps of one run in the order they started (files as a list); [] when the run left no snapshot."""
    q = (select(steps).where(steps.c.run_id == run_id, steps.c.workflow == workflow)
         .order_by(steps.c.started_at, steps.c.id))
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    for row in rows:
        row["files"] = json.loads(row["files"])
    return rows


def _log_filtered(query, workflow: str, run_id: str, touchpoint: str | None, step: str | None, status: str | None):
    query = query.where(data_log.c.run_id == run_id, data_log.c.workflow == workflow)  # ix_data_log_run
    if touchpoint:
        query = query.where(data_log.c.touchpoint == touchpoint)
    if step:
        query = query.where(data_log.c.step == step)
    if status:
        query = query.where(data_log.c.status == status)
    return query


def data_log_page(store: Store, workflow: str, run_id: str, *, touchpoint: str | None = None, step: str | None = None,
                  status: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
    """A page of one run's data log (optionally of one step and/or status), in the order it was written."""
    q = _log_filtered(select(data_log), workflow, run_id, touchpoint, step, status).order_by(data_log.c.id)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.limit(limit).offset(offset))]


def data_log_count(store: Store, workflow: str, run_id: str, *, touchpoint: str | None = None, step: str | None = None,
                   status: str | None = None) -> int:
    q = _log_filtered(select(func.count()).select_from(data_log), workflow, run_id, touchpoint, step, status)
    with store.engine.connect() as conn:
        return conn.execute(q).scalar_one()
