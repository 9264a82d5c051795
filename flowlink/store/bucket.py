"""The resync bucket: one row per (workflow, touchpoint, source id) with its latest status."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypedDict

from sqlalchemy import Connection, RowMapping, Select, func, literal, select

from flowlink.states import RecordStatus, Step
from flowlink.store.db import Store, delete_batch, upsert, utcnow
from flowlink.store.tables import DateTime, bucket, data_log

STATUSES = tuple(RecordStatus)
CHUNK = 500


@dataclass(frozen=True)
class Outcome:
    """What one step did with one record."""

    source_id: str
    status: RecordStatus  # success | failed | skipped
    destination_id: str | None = None
    message: str | None = None


class BucketRecord(TypedDict):
    """A row of the bucket: a record's latest status, tries and the run that last handled it."""

    id: int
    workflow: str
    touchpoint: str
    source_id: str
    destination_id: str | None
    status: RecordStatus
    message: str | None
    tries: int
    last_run: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class FailedRow(TypedDict):
    """A Failed record, as the automatic retry reports the ones it gave up on."""

    workflow: str
    touchpoint: str
    source_id: str
    tries: int
    message: str | None
    updated_at: dt.datetime


def _record(row: RowMapping) -> BucketRecord:
    return BucketRecord(
        id=row["id"],
        workflow=row["workflow"],
        touchpoint=row["touchpoint"],
        source_id=row["source_id"],
        destination_id=row["destination_id"],
        status=RecordStatus(row["status"]),
        message=row["message"],
        tries=row["tries"],
        last_run=row["last_run"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def mark_unprocessed(
    store: Store, workflow: str, touchpoint: str, run_id: str, source_ids: list[str], *, resync: bool
) -> None:
    """Extracted records wait as Unprocessed. A normal sync starts their tries afresh; a resync keeps counting."""
    now = utcnow()
    rows: list[dict[str, Any]] = [
        dict(
            workflow=workflow,
            touchpoint=touchpoint,
            source_id=sid,
            status=RecordStatus.UNPROCESSED,
            message=None,
            tries=0,
            last_run=run_id,
            created_at=now,
            updated_at=now,
        )
        for sid in source_ids
    ]
    update: dict[str, Any] = {
        "status": RecordStatus.UNPROCESSED,
        "message": None,
        "last_run": run_id,
        "updated_at": now,
    }
    if not resync:
        update["tries"] = 0
    with store.engine.begin() as conn:
        upsert(conn, bucket, rows, ["workflow", "touchpoint", "source_id"], update)


def left_behind(conn: Connection, workflow: str, touchpoint: str, run_id: str, step: Step, message: str) -> int:
    """A step of a run failed as a whole: the touchpoint's records that run extracted and left Unprocessed get the
    reason as their message, in the bucket and in the run's data log (a row each, status unprocessed, under that
    step), in ``conn``'s transaction. Returns how many."""
    now = utcnow()
    mine = [
        bucket.c.workflow == workflow,
        bucket.c.touchpoint == touchpoint,
        bucket.c.status == RecordStatus.UNPROCESSED,
        bucket.c.last_run == run_id,
    ]
    done = conn.execute(bucket.update().where(*mine).values(message=message, updated_at=now)).rowcount
    if done:
        columns = [
            "workflow",
            "run_id",
            "touchpoint",
            "step",
            "source_id",
            "destination_id",
            "status",
            "message",
            "tries",
            "logged_at",
        ]
        rows = select(
            bucket.c.workflow,
            literal(run_id),
            bucket.c.touchpoint,
            literal(step),
            bucket.c.source_id,
            bucket.c.destination_id,
            bucket.c.status,
            bucket.c.message,
            bucket.c.tries,
            literal(now, DateTime()),
        )
        conn.execute(data_log.insert().from_select(columns, rows.where(*mine).order_by(bucket.c.id)))
    return done


def record(store: Store, workflow: str, touchpoint: str, run_id: str, step: Step, outcomes: list[Outcome]) -> None:
    """Write each record's outcome to the bucket (tries + 1) and the run's data log, in one transaction."""
    if not outcomes:
        return
    now = utcnow()
    rows = [
        dict(
            workflow=workflow,
            touchpoint=touchpoint,
            source_id=o.source_id,
            status=o.status,
            destination_id=o.destination_id,
            message=o.message,
            tries=1,
            last_run=run_id,
            created_at=now,
            updated_at=now,
        )
        for o in outcomes
    ]
    update = {
        "status": lambda ex: ex.status,
        "destination_id": lambda ex: func.coalesce(ex.destination_id, bucket.c.destination_id),
        "message": lambda ex: ex.message,
        "tries": bucket.c.tries + 1,
        "last_run": run_id,
        "updated_at": now,
    }
    with store.engine.begin() as conn:
        upsert(conn, bucket, rows, ["workflow", "touchpoint", "source_id"], update)
        tries: dict[str, int] = {}
        ids = [o.source_id for o in outcomes]
        for i in range(0, len(ids), CHUNK):
            q = select(bucket.c.source_id, bucket.c.tries).where(
                bucket.c.workflow == workflow,
                bucket.c.touchpoint == touchpoint,
                bucket.c.source_id.in_(ids[i : i + CHUNK]),
            )
            tries.update(conn.execute(q).all())
        conn.execute(
            data_log.insert(),
            [
                dict(
                    workflow=workflow,
                    run_id=run_id,
                    touchpoint=touchpoint,
                    step=step,
                    source_id=o.source_id,
                    destination_id=o.destination_id,
                    status=o.status,
                    message=o.message,
                    tries=tries.get(o.source_id, 1),
                    logged_at=now,
                )
                for o in outcomes
            ],
        )


def _filtered(
    query: Select[Any],
    workflow: str,
    touchpoint: str | None,
    status: RecordStatus | None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Select[Any]:
    """The bucket filters, most selective first: (workflow, touchpoint, status) is indexed; the updated_at range
    (since inclusive, until exclusive) narrows what the index found."""
    query = query.where(bucket.c.workflow == workflow)
    if touchpoint:
        query = query.where(bucket.c.touchpoint == touchpoint)
    if status:
        query = query.where(bucket.c.status == status)
    if since is not None:
        query = query.where(bucket.c.updated_at >= since)
    if until is not None:
        query = query.where(bucket.c.updated_at < until)
    return query


def rows(
    store: Store,
    workflow: str,
    *,
    touchpoint: str | None = None,
    status: RecordStatus | None = None,
    limit: int = 100,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[BucketRecord]:
    q = _filtered(select(bucket), workflow, touchpoint, status, since, until).order_by(bucket.c.touchpoint, bucket.c.id)
    with store.engine.connect() as conn:
        return [_record(r._mapping) for r in conn.execute(q.limit(limit).offset(offset))]


def count(
    store: Store,
    workflow: str,
    *,
    touchpoint: str | None = None,
    status: RecordStatus | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> int:
    q = _filtered(select(func.count()).select_from(bucket), workflow, touchpoint, status, since, until)
    with store.engine.connect() as conn:
        return conn.execute(q).scalar_one()


def counts(store: Store, workflow: str) -> dict[tuple[str, RecordStatus], int]:
    """(touchpoint, status) -> number of records."""
    q = (
        select(bucket.c.touchpoint, bucket.c.status, func.count())
        .where(bucket.c.workflow == workflow)
        .group_by(bucket.c.touchpoint, bucket.c.status)
    )
    with store.engine.connect() as conn:
        return {(tp, RecordStatus(st)): n for tp, st, n in conn.execute(q)}


def touchpoints(store: Store, workflow: str) -> list[str]:
    """The touchpoints that have records in the bucket (read from the index, not the rows)."""
    q = (
        select(bucket.c.touchpoint)
        .where(bucket.c.workflow == workflow)
        .group_by(bucket.c.touchpoint)
        .order_by(bucket.c.touchpoint)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(q).scalars())


def status_counts(store: Store, workflow: str, touchpoint: str, source_ids: list[str]) -> dict[RecordStatus, int]:
    """status -> how many of the given records have it (say, the records a resync chose)."""
    out: dict[RecordStatus, int] = {}
    base = (
        select(bucket.c.status, func.count())
        .where(bucket.c.workflow == workflow, bucket.c.touchpoint == touchpoint)
        .group_by(bucket.c.status)
    )
    with store.engine.connect() as conn:
        for i in range(0, len(source_ids), CHUNK):
            for st, n in conn.execute(base.where(bucket.c.source_id.in_(source_ids[i : i + CHUNK]))):
                out[RecordStatus(st)] = out.get(RecordStatus(st), 0) + n
    return out


def unprocessed_runs(store: Store, workflow: str, touchpoint: str) -> dict[str, int]:
    """The runs that left records of a touchpoint Unprocessed: last run -> how many."""
    q = _filtered(select(bucket.c.last_run, func.count()), workflow, touchpoint, RecordStatus.UNPROCESSED).group_by(
        bucket.c.last_run
    )
    with store.engine.connect() as conn:
        return {run: n for run, n in conn.execute(q) if run}


def source_ids(
    store: Store,
    workflow: str,
    touchpoint: str,
    *,
    status: RecordStatus | None = None,
    among: list[str] | None = None,
    runs: list[str] | None = None,
) -> list[str]:
    """Source ids in the bucket, optionally of one status, among the given ids and/or last handled by these runs."""
    q = _filtered(select(bucket.c.source_id), workflow, touchpoint, status).order_by(bucket.c.id)
    if runs is not None:
        q = q.where(bucket.c.last_run.in_(runs))
    with store.engine.connect() as conn:
        if among is None:
            return list(conn.execute(q).scalars())
        found: list[str] = []
        for i in range(0, len(among), CHUNK):
            found += conn.execute(q.where(bucket.c.source_id.in_(among[i : i + CHUNK]))).scalars()
        return found


def destination_ids(store: Store, workflow: str, touchpoint: str, source_ids: list[str]) -> dict[str, str]:
    """source id -> its id in the target, recorded by an earlier load, for those of the given records that have one."""
    found: dict[str, str] = {}
    q = select(bucket.c.source_id, bucket.c.destination_id).where(
        bucket.c.workflow == workflow, bucket.c.touchpoint == touchpoint, bucket.c.destination_id.is_not(None)
    )
    with store.engine.connect() as conn:
        for i in range(0, len(source_ids), CHUNK):
            found.update(conn.execute(q.where(bucket.c.source_id.in_(source_ids[i : i + CHUNK]))).all())
    return found


# ------------------------------------------------------------------ the automatic retry (flowlink/retry.py)


def failed_ready(
    store: Store, workflow: str, touchpoint: str, *, below_tries: int, tried_before: dt.datetime, limit: int
) -> list[str]:
    """Failed records with fewer than ``below_tries`` tries, last tried at or before ``tried_before``: their source
    ids, oldest failures first, at most ``limit``."""
    q = (
        _filtered(select(bucket.c.source_id), workflow, touchpoint, RecordStatus.FAILED)
        .where(bucket.c.tries < below_tries, bucket.c.updated_at <= tried_before)
        .order_by(bucket.c.updated_at, bucket.c.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(q).scalars())


def failed_at_tries(store: Store, workflow: str, tries: int) -> list[FailedRow]:
    """Failed records of a workflow with at least ``tries`` tries, by touchpoint, oldest first."""
    q = (
        select(
            bucket.c.workflow,
            bucket.c.touchpoint,
            bucket.c.source_id,
            bucket.c.tries,
            bucket.c.message,
            bucket.c.updated_at,
        )
        .where(bucket.c.workflow == workflow, bucket.c.status == RecordStatus.FAILED, bucket.c.tries >= tries)
        .order_by(bucket.c.touchpoint, bucket.c.updated_at, bucket.c.id)
    )
    with store.engine.connect() as conn:
        return [
            FailedRow(
                workflow=r.workflow,
                touchpoint=r.touchpoint,
                source_id=r.source_id,
                tries=r.tries,
                message=r.message,
                updated_at=r.updated_at,
            )
            for r in conn.execute(q)
        ]


def workflows_with(store: Store, status: RecordStatus) -> list[str]:
    """The workflows that have records of this status, by name."""
    q = select(bucket.c.workflow).where(bucket.c.status == status).group_by(bucket.c.workflow)
    with store.engine.connect() as conn:
        return sorted(conn.execute(q).scalars())


# ------------------------------------------------------------------ retention (flowlink/retention.py)


def _old_success(cut: dt.datetime) -> list[Any]:
    return [bucket.c.status == RecordStatus.SUCCESS, bucket.c.updated_at < cut]


def old_success_counts(store: Store, cut: dt.datetime) -> dict[str, int]:
    """workflow -> its Success rows last touched before ``cut``."""
    q = select(bucket.c.workflow, func.count()).where(*_old_success(cut)).group_by(bucket.c.workflow)
    with store.engine.connect() as conn:
        return {w: n for w, n in conn.execute(q)}


def delete_old_success(
    store: Store, cut: dt.datetime, *, after: int, limit: int
) -> tuple[int | None, dict[str | None, int]]:
    """Delete a batch of Success rows last touched before ``cut`` (db.delete_batch)."""
    return delete_batch(store, bucket, _old_success(cut), after, limit)
