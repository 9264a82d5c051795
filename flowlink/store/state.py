"""Sync state: incremental watermarks, resync requests, and the environments' automatic retry settings."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, TypedDict

from sqlalchemy import Connection, RowMapping, select

from flowlink.errors import FlowlinkError
from flowlink.states import ResyncKind
from flowlink.store.db import Store, upsert, utcnow
from flowlink.store.tables import environments, resyncs, watermarks


class Resync(TypedDict):
    """A resync request: the records of one touchpoint a run must send again, and the run started for it."""

    id: int
    workflow: str
    touchpoint: str
    source_ids: list[str]
    requested_at: dt.datetime
    run_id: str | None
    kind: ResyncKind


class RetrySettings(TypedDict):
    """An environment's settings for the automatic retry of Failed records, and its last retry pass."""

    environment: str
    max_tries: int
    wait_minutes: int
    batch_size: int
    every: str  # hourly | daily
    last_retry_at: dt.datetime | None


def watermark(store: Store, workflow: str, touchpoint: str) -> Any:
    """The last committed incremental value, or None before the first (full) sync."""
    q = select(watermarks.c.value).where(watermarks.c.workflow == workflow, watermarks.c.touchpoint == touchpoint)
    with store.engine.connect() as conn:
        value = conn.execute(q).scalar()
    return None if value is None else json.loads(value)


def save_watermark(store: Store, workflow: str, touchpoint: str, value: Any, run_id: str) -> None:
    row = dict(workflow=workflow, touchpoint=touchpoint, value=json.dumps(value), run_id=run_id, updated_at=utcnow())
    with store.engine.begin() as conn:
        upsert(
            conn,
            watermarks,
            [row],
            ["workflow", "touchpoint"],
            {"value": row["value"], "run_id": run_id, "updated_at": row["updated_at"]},
        )


def _resync(row: RowMapping) -> Resync:
    return Resync(
        id=row["id"],
        workflow=row["workflow"],
        touchpoint=row["touchpoint"],
        source_ids=json.loads(row["source_ids"]),
        requested_at=row["requested_at"],
        run_id=row["run_id"],
        kind=ResyncKind(row["kind"]),
    )


def create_resync(
    workflow: str, touchpoint: str, source_ids: list[str], conn: Connection, kind: ResyncKind = ResyncKind.MANUAL
) -> int:
    """A resync request: by a user (MANUAL) or by the automatic retry of failed records (RETRY)."""
    try:
        kind = ResyncKind(kind)
    except ValueError:
        raise FlowlinkError(f"resync kind must be manual or retry, got {kind!r}") from None
    insert = resyncs.insert().values(
        workflow=workflow, touchpoint=touchpoint, kind=kind, source_ids=json.dumps(source_ids), requested_at=utcnow()
    )
    return conn.execute(insert.returning(resyncs.c.id)).scalar_one()


def resync(store: Store, resync_id: int) -> Resync:
    with store.engine.connect() as conn:
        row = conn.execute(select(resyncs).where(resyncs.c.id == resync_id)).first()
    if row is None:
        raise FlowlinkError(f"no resync request {resync_id}")
    return _resync(row._mapping)


def attach_run(resync_id: int, run_id: str, conn: Connection) -> None:
    conn.execute(resyncs.update().where(resyncs.c.id == resync_id).values(run_id=run_id))


def delete_resync(store: Store, resync_id: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(resyncs.delete().where(resyncs.c.id == resync_id))


def resync_of_run(store: Store, workflow: str, run_id: str) -> Resync | None:
    """The resync request a run was started for (its chosen source ids), or None for an ordinary run."""
    q = (
        select(resyncs)
        .where(resyncs.c.workflow == workflow, resyncs.c.run_id == run_id)
        .order_by(resyncs.c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    return None if row is None else _resync(row._mapping)


def resyncs_since(store: Store, workflow: str, touchpoint: str, since: dt.datetime) -> list[Resync]:
    """The touchpoint's resync requests (of either kind) made since then, newest first."""
    q = (
        select(resyncs)
        .where(resyncs.c.workflow == workflow, resyncs.c.touchpoint == touchpoint, resyncs.c.requested_at >= since)
        .order_by(resyncs.c.id.desc())
    )
    with store.engine.connect() as conn:
        return [_resync(r._mapping) for r in conn.execute(q)]


def last_request(store: Store, workflow: str, kind: ResyncKind) -> dt.datetime | None:
    """When the workflow's last resync request of this kind was made; None if never."""
    q = select(resyncs.c.requested_at).where(resyncs.c.workflow == workflow, resyncs.c.kind == kind)
    with store.engine.connect() as conn:
        return conn.execute(q.order_by(resyncs.c.requested_at.desc()).limit(1)).scalar()


# ------------------------------------------------------------------ the environments' retry settings


def retry_settings(store: Store, environment: str | None) -> RetrySettings | None:
    """The retry settings of an environment (None: of the primary one); None when there is no such environment."""
    q = select(environments)
    q = q.where(environments.c.name == environment) if environment else q.where(environments.c.is_primary.is_(True))
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        return None
    return RetrySettings(
        environment=row.name,
        max_tries=row.retry_max_tries,
        wait_minutes=row.retry_wait_minutes,
        batch_size=row.retry_batch_size,
        every=row.retry_every,
        last_retry_at=row.last_retry_at,
    )


def retry_passed(store: Store, environments_passed: list[str], at: dt.datetime) -> None:
    """These environments had their retry pass at ``at``."""
    if not environments_passed:
        return
    with store.engine.begin() as conn:
        conn.execute(
            environments.update().where(environments.c.name.in_(sorted(environments_passed))).values(last_retry_at=at)
        )
