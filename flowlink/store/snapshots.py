"""Process snapshots: per run, per step its times, counts, batch files and data log."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from sqlalchemy import Connection, RowMapping, Select, func, select

from flowlink.states import RecordStatus, ResyncKind, RunKind, Step, StepFailure, StepStatus
from flowlink.store.db import Store, upsert, utcnow
from flowlink.store.tables import data_log, resyncs, steps

KEYS = ["workflow", "run_id", "touchpoint", "step"]
CHUNK = 500


class StepRow(TypedDict):
    """One step of a run: when it ran, where, what came in and out, its batch files, and how it ended."""

    id: int
    workflow: str
    run_id: str
    version: int | None
    touchpoint: str
    step: Step
    status: StepStatus
    started_at: dt.datetime
    ended_at: dt.datetime | None
    count_in: int
    count_out: int
    count_failed: int
    files: list[str]
    message: str | None
    failure: StepFailure | None  # a failed step: records failed, or the step as a whole
    hostname: str | None
    queue: str | None


class DataLogRow(TypedDict):
    """What a step of a run did with one record."""

    id: int
    workflow: str
    run_id: str
    touchpoint: str
    step: Step
    source_id: str
    destination_id: str | None
    status: RecordStatus
    message: str | None
    tries: int
    logged_at: dt.datetime


class Snapshot(TypedDict):
    run_id: str
    steps: list[StepRow]
    data_log: list[DataLogRow]


class RunSummary(TypedDict):
    """A run as a list of runs shows it."""

    run_id: str
    version: int | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    failed_steps: int
    running_steps: int
    failed_records: int
    kind: RunKind
    steps: NotRequired[int]  # run_page: how many steps the run has started


@dataclass(frozen=True)
class PurgedRuns:
    """What snapshots.delete_old_runs removed: the runs, the batch files their steps listed, the rows."""

    run_ids: list[str]
    files: dict[str, set[str]]
    steps: int
    data_log: int


def _files(text: str | None) -> list[str]:
    return json.loads(text or "[]")


def _step(row: RowMapping) -> StepRow:
    return StepRow(
        id=row["id"],
        workflow=row["workflow"],
        run_id=row["run_id"],
        version=row["version"],
        touchpoint=row["touchpoint"],
        step=Step(row["step"]),
        status=StepStatus(row["status"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        count_in=row["count_in"],
        count_out=row["count_out"],
        count_failed=row["count_failed"],
        files=_files(row["files"]),
        message=row["message"],
        failure=StepFailure(row["failure"]) if row["failure"] else None,
        hostname=row["hostname"],
        queue=row["queue"],
    )


def _logged(row: RowMapping) -> DataLogRow:
    return DataLogRow(
        id=row["id"],
        workflow=row["workflow"],
        run_id=row["run_id"],
        touchpoint=row["touchpoint"],
        step=Step(row["step"]),
        source_id=row["source_id"],
        destination_id=row["destination_id"],
        status=RecordStatus(row["status"]),
        message=row["message"],
        tries=row["tries"],
        logged_at=row["logged_at"],
    )


def _run(row: RowMapping, kind: RunKind) -> RunSummary:
    run = RunSummary(
        run_id=row["run_id"],
        version=row["version"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        failed_steps=row["failed_steps"] or 0,
        running_steps=row["running_steps"] or 0,
        failed_records=row["failed_records"] or 0,
        kind=kind,
    )
    if "steps" in row:
        run["steps"] = row["steps"]
    return run


def _step_row(
    workflow: str, run_id: str, version: int, touchpoint: str, step: Step, status: StepStatus, **rest
) -> dict:
    """A step's row as it starts (or is skipped): no counts, no files, no failure; ``rest`` sets the other columns."""
    cols = dict(started_at=utcnow(), ended_at=None, message=None, hostname=None, queue=None) | rest
    return dict(
        workflow=workflow,
        run_id=run_id,
        version=version,
        touchpoint=touchpoint,
        step=step,
        status=status,
        count_in=0,
        count_out=0,
        count_failed=0,
        files="[]",
        failure=None,
        **cols,
    )


def start_step(
    store: Store,
    workflow: str,
    run_id: str,
    version: int,
    touchpoint: str,
    step: Step,
    *,
    hostname: str | None = None,
    queue: str | None = None,
) -> None:
    """A step starts (again, on a task retry: the row is reset), on a worker (host name) and queue."""
    row = _step_row(workflow, run_id, version, touchpoint, step, StepStatus.RUNNING, hostname=hostname, queue=queue)
    with store.engine.begin() as conn:
        upsert(conn, steps, [row], KEYS, {k: v for k, v in row.items() if k not in KEYS})


def finish_step(
    store: Store,
    workflow: str,
    run_id: str,
    touchpoint: str,
    step: Step,
    *,
    status: StepStatus,
    count_in: int = 0,
    count_out: int = 0,
    count_failed: int = 0,
    files: Iterable[str] = (),
    message: str | None = None,
    failure: StepFailure | None = None,
    conn: Connection | None = None,
) -> None:
    """The step ended (in ``conn``'s transaction, if given). A failed step says why in ``failure``: RECORDS
    (records failed, the step ran to its end) or STEP (it failed as a whole)."""
    values = dict(
        status=status,
        ended_at=utcnow(),
        count_in=count_in,
        count_out=count_out,
        count_failed=count_failed,
        files=json.dumps(list(files)),
        message=message,
        failure=failure,
    )
    where = [steps.c[k] == v for k, v in zip(KEYS, (workflow, run_id, touchpoint, step), strict=True)]
    if conn is not None:
        conn.execute(steps.update().where(*where).values(**values))
        return
    with store.engine.begin() as c:
        c.execute(steps.update().where(*where).values(**values))


def skipped_steps(
    store: Store, workflow: str, run_id: str, version: int, touchpoint: str, skipped: Iterable[Step], message: str
) -> None:
    """Steps that do not run in this run (``message`` says why): status skipped, counts 0, no worker; one
    transaction."""
    now = utcnow()
    rows = [
        _step_row(
            workflow,
            run_id,
            version,
            touchpoint,
            step,
            StepStatus.SKIPPED,
            started_at=now,
            ended_at=now,
            message=message,
        )
        for step in skipped
    ]
    if not rows:
        return
    with store.engine.begin() as conn:  # every row the same but its step (a key)
        upsert(conn, steps, rows, KEYS, {k: v for k, v in rows[0].items() if k not in KEYS})


def runs(store: Store, workflow: str, limit: int = 50) -> list[RunSummary]:
    """The runs of a workflow, newest first: run id, version, start, end, steps failed and still running."""
    failed = func.sum(func.cast(steps.c.status == StepStatus.FAILED, steps.c.count_in.type))
    running = func.sum(func.cast(steps.c.status == StepStatus.RUNNING, steps.c.count_in.type))
    q = (
        select(
            steps.c.run_id,
            func.max(steps.c.version).label("version"),
            func.min(steps.c.started_at).label("started_at"),
            func.max(steps.c.ended_at).label("ended_at"),
            failed.label("failed_steps"),
            running.label("running_steps"),
            func.sum(steps.c.count_failed).label("failed_records"),
        )
        .where(steps.c.workflow == workflow)
        .group_by(steps.c.run_id)
        .order_by(func.min(steps.c.started_at).desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return _with_kind(conn, workflow, [r._mapping for r in conn.execute(q)])


def _kinds(conn: Connection, workflow: str, run_ids: list[str]) -> dict[str, RunKind]:
    """Each run's kind: RETRY (the automatic retry of failed records), RESYNC (records a user chose) or SYNC (a
    scheduled or manual run of the whole workflow); from the resync request the run was started for."""
    kinds: dict[str, RunKind] = {}
    for i in range(0, len(run_ids), CHUNK):
        q = select(resyncs.c.run_id, resyncs.c.kind).where(
            resyncs.c.workflow == workflow, resyncs.c.run_id.in_(run_ids[i : i + CHUNK])
        )
        kinds.update(
            {run_id: RunKind.RETRY if kind == ResyncKind.RETRY else RunKind.RESYNC for run_id, kind in conn.execute(q)}
        )
    return kinds


def _with_kind(conn: Connection, workflow: str, rows: list[RowMapping]) -> list[RunSummary]:
    kinds = _kinds(conn, workflow, [r["run_id"] for r in rows])
    return [_run(r, kinds.get(r["run_id"], RunKind.SYNC)) for r in rows]


def run_kind(store: Store, workflow: str, run_id: str) -> RunKind:
    """RETRY, RESYNC or SYNC (see _kinds)."""
    with store.engine.connect() as conn:
        return _kinds(conn, workflow, [run_id]).get(run_id, RunKind.SYNC)


def snapshot(store: Store, run_id: str, workflow: str | None = None) -> Snapshot:
    """Everything recorded for one run: its steps (in order) and its data log."""
    q = select(steps).where(steps.c.run_id == run_id).order_by(steps.c.started_at, steps.c.id)
    log_q = select(data_log).where(data_log.c.run_id == run_id).order_by(data_log.c.id)
    if workflow:
        q, log_q = q.where(steps.c.workflow == workflow), log_q.where(data_log.c.workflow == workflow)
    with store.engine.connect() as conn:
        step_rows = [_step(r._mapping) for r in conn.execute(q)]
        log_rows = [_logged(r._mapping) for r in conn.execute(log_q)]
    return Snapshot(run_id=run_id, steps=step_rows, data_log=log_rows)


def run_version(store: Store, workflow: str, run_id: str) -> int | None:
    """The workflow version a run started with: every later step of the run uses the same one."""
    q = select(func.min(steps.c.version)).where(steps.c.workflow == workflow, steps.c.run_id == run_id)
    with store.engine.connect() as conn:
        return conn.execute(q).scalar()


# ------------------------------------------------------------------ reads for the pages (paged)


def run_page(store: Store, workflow: str, *, limit: int = 50, offset: int = 0) -> list[RunSummary]:
    """A page of the workflow's runs, newest first, with what a list shows: times, steps failed or still running."""
    as_int = steps.c.count_in.type
    q = (
        select(
            steps.c.run_id,
            func.max(steps.c.version).label("version"),
            func.min(steps.c.started_at).label("started_at"),
            func.max(steps.c.ended_at).label("ended_at"),
            func.sum(func.cast(steps.c.status == StepStatus.FAILED, as_int)).label("failed_steps"),
            func.sum(func.cast(steps.c.status == StepStatus.RUNNING, as_int)).label("running_steps"),
            func.count().label("steps"),
            func.sum(steps.c.count_failed).label("failed_records"),
        )
        .where(steps.c.workflow == workflow)
        .group_by(steps.c.run_id)
        .order_by(func.min(steps.c.started_at).desc(), steps.c.run_id.desc())
        .limit(limit)
        .offset(offset)
    )
    with store.engine.connect() as conn:
        return _with_kind(conn, workflow, [r._mapping for r in conn.execute(q)])


def failure_reasons(store: Store, workflow: str, run_ids: list[str]) -> dict[str, str]:
    """run id -> "touchpoint.step: message" of the first step of the run that failed (for a page of runs)."""
    q = (
        select(steps.c.run_id, steps.c.touchpoint, steps.c.step, steps.c.message)
        .where(steps.c.workflow == workflow, steps.c.run_id.in_(run_ids), steps.c.status == StepStatus.FAILED)
        .order_by(steps.c.started_at.desc(), steps.c.id.desc())
    )
    with store.engine.connect() as conn:
        return {run: f"{tp}.{step}: {message or 'no reason recorded'}" for run, tp, step, message in conn.execute(q)}


def run_count(store: Store, workflow: str) -> int:
    q = select(func.count(func.distinct(steps.c.run_id))).where(steps.c.workflow == workflow)
    with store.engine.connect() as conn:
        return conn.execute(q).scalar_one()


def run_steps(store: Store, workflow: str, run_id: str, touchpoint: str | None = None) -> list[StepRow]:
    """The steps of one run (of one touchpoint, if given) in the order they started; [] when the run left no
    snapshot."""
    q = (
        select(steps)
        .where(steps.c.run_id == run_id, steps.c.workflow == workflow)
        .order_by(steps.c.started_at, steps.c.id)
    )
    if touchpoint is not None:
        q = q.where(steps.c.touchpoint == touchpoint)
    with store.engine.connect() as conn:
        return [_step(r._mapping) for r in conn.execute(q)]


def _log_filtered(
    query: Select[Any],
    workflow: str,
    run_id: str,
    touchpoint: str | None,
    step: Step | None,
    status: RecordStatus | None,
) -> Select[Any]:
    query = query.where(data_log.c.run_id == run_id, data_log.c.workflow == workflow)  # ix_data_log_run
    if touchpoint:
        query = query.where(data_log.c.touchpoint == touchpoint)
    if step:
        query = query.where(data_log.c.step == step)
    if status:
        query = query.where(data_log.c.status == status)
    return query


def data_log_page(
    store: Store,
    workflow: str,
    run_id: str,
    *,
    touchpoint: str | None = None,
    step: Step | None = None,
    status: RecordStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[DataLogRow]:
    """A page of one run's data log (optionally of one step and/or status), in the order it was written."""
    q = _log_filtered(select(data_log), workflow, run_id, touchpoint, step, status).order_by(data_log.c.id)
    with store.engine.connect() as conn:
        return [_logged(r._mapping) for r in conn.execute(q.limit(limit).offset(offset))]


def data_log_count(
    store: Store,
    workflow: str,
    run_id: str,
    *,
    touchpoint: str | None = None,
    step: Step | None = None,
    status: RecordStatus | None = None,
) -> int:
    q = _log_filtered(select(func.count()).select_from(data_log), workflow, run_id, touchpoint, step, status)
    with store.engine.connect() as conn:
        return conn.execute(q).scalar_one()


# ------------------------------------------------------------------ retention (flowlink/retention.py)


def _last_moment() -> Any:
    """A snapshot's age: its last step end (a step that never ended counts with its start)."""
    return func.max(func.coalesce(steps.c.ended_at, steps.c.started_at))


def old_runs(store: Store, cut: dt.datetime) -> dict[tuple[str, str], tuple[int, int]]:
    """(workflow, run id) -> (steps, data-log rows) of every snapshot older than ``cut``."""
    old = (
        select(steps.c.workflow, steps.c.run_id, func.count().label("steps"))
        .group_by(steps.c.workflow, steps.c.run_id)
        .having(_last_moment() < cut)
    ).subquery()
    logged = (
        select(data_log.c.workflow, data_log.c.run_id, func.count())
        .join(old, (data_log.c.workflow == old.c.workflow) & (data_log.c.run_id == old.c.run_id))
        .group_by(data_log.c.workflow, data_log.c.run_id)
    )
    with store.engine.connect() as conn:
        found = {(w, r): n for w, r, n in conn.execute(select(old))}
        rows = {(w, r): n for w, r, n in conn.execute(logged)}
    return {key: (n, rows.get(key, 0)) for key, n in found.items()}


def _listed_files(conn: Connection, workflow: str, run_ids: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for i in range(0, len(run_ids), CHUNK):
        q = select(steps.c.run_id, steps.c.files).where(
            steps.c.workflow == workflow, steps.c.run_id.in_(run_ids[i : i + CHUNK])
        )
        for run_id, files in conn.execute(q):
            try:
                out[run_id].update(n for n in _files(files) if isinstance(n, str))
            except ValueError:  # a damaged list: the run folder still goes
                pass
    return dict(out)


def listed_files(store: Store, workflow: str, run_ids: list[str]) -> dict[str, set[str]]:
    """run id -> the batch files its steps list."""
    with store.engine.connect() as conn:
        return _listed_files(conn, workflow, run_ids)


def delete_old_runs(store: Store, workflow: str, run_ids: list[str], cut: dt.datetime) -> PurgedRuns:
    """Delete the snapshots (steps and data log) of those of these runs that are still older than ``cut``, whole,
    in one transaction."""
    with store.engine.begin() as conn:
        still_old = list(
            conn.execute(
                select(steps.c.run_id)
                .where(steps.c.workflow == workflow, steps.c.run_id.in_(run_ids))
                .group_by(steps.c.run_id)
                .having(_last_moment() < cut)
            ).scalars()
        )
        if not still_old:
            return PurgedRuns([], {}, 0, 0)
        listed = _listed_files(conn, workflow, still_old)
        logged = conn.execute(
            data_log.delete().where(data_log.c.workflow == workflow, data_log.c.run_id.in_(still_old))
        ).rowcount
        gone = conn.execute(steps.delete().where(steps.c.workflow == workflow, steps.c.run_id.in_(still_old))).rowcount
    return PurgedRuns(still_old, listed, gone, logged)
