"""The tries of the Try page (flowlink.tries): a request, the flowlink_try run that fetches its samples, its result.

A row lives only as long as its page needs it: :func:`take` hands an ended try's result over once and deletes it,
and :func:`purge` deletes what no page came back for.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, TypedDict

from sqlalchemy import delete, insert, select, update

from flowlink.states import TryStatus
from flowlink.store.db import Store, utcnow
from flowlink.store.tables import tries


class Try(TypedDict):
    id: int
    workflow: str
    version: int | None  # None: a draft
    touchpoint: str
    requested_by: str
    environment: str | None  # whose queue fetches the samples; None: the default queue
    subject: dict[str, Any]  # {"spec", "stylesheets"}, as a published file's content
    limit: int
    ids: list[str] | None
    run_id: str | None
    status: TryStatus
    result: dict[str, Any] | None  # flowlink.trial.Trial.as_dict(), once it succeeded
    error: str | None
    created_at: dt.datetime
    ended_at: dt.datetime | None


def _try(row: Any) -> Try:
    return Try(
        id=row.id,
        workflow=row.workflow,
        version=row.version,
        touchpoint=row.touchpoint,
        requested_by=row.requested_by,
        environment=row.environment,
        subject=json.loads(row.subject),
        limit=row.sample_limit,
        ids=json.loads(row.ids) if row.ids is not None else None,
        run_id=row.run_id,
        status=TryStatus(row.status),
        result=json.loads(row.result) if row.result is not None else None,
        error=row.error,
        created_at=row.created_at,
        ended_at=row.ended_at,
    )


def create(
    store: Store,
    *,
    workflow: str,
    version: int | None,
    touchpoint: str,
    requested_by: str,
    environment: str | None,
    subject: dict[str, Any],
    limit: int,
    ids: list[str] | None,
) -> int:
    with store.transaction() as conn:
        return conn.execute(
            insert(tries)
            .values(
                workflow=workflow,
                version=version,
                touchpoint=touchpoint,
                requested_by=requested_by,
                environment=environment,
                subject=json.dumps(subject, ensure_ascii=False),
                sample_limit=limit,
                ids=json.dumps(ids) if ids is not None else None,
                status=TryStatus.QUEUED,
                created_at=utcnow(),
            )
            .returning(tries.c.id)
        ).scalar_one()


def get(store: Store, try_id: int) -> Try | None:
    with store.reading() as conn:
        row = conn.execute(select(tries).where(tries.c.id == try_id)).first()
    return _try(row) if row else None


def set_run(store: Store, try_id: int, run_id: str) -> None:
    with store.transaction() as conn:
        conn.execute(update(tries).where(tries.c.id == try_id).values(run_id=run_id))


def start(store: Store, try_id: int) -> bool:
    """The run's task starts fetching; False when the try is gone (taken, purged) or has ended already."""
    with store.transaction() as conn:
        done = conn.execute(
            update(tries)
            .where(tries.c.id == try_id, tries.c.status.in_((TryStatus.QUEUED, TryStatus.RUNNING)))
            .values(status=TryStatus.RUNNING)
        )
    return done.rowcount == 1


def finish(store: Store, try_id: int, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
    """The try ended: its result, or why it failed."""
    with store.transaction() as conn:
        conn.execute(
            update(tries)
            .where(tries.c.id == try_id)
            .values(
                status=TryStatus.FAILED if error is not None else TryStatus.SUCCESS,
                result=json.dumps(result, ensure_ascii=False) if result is not None else None,
                error=error,
                ended_at=utcnow(),
            )
        )


def take(store: Store, try_id: int) -> Try | None:
    """The try; an ended one is deleted as it is handed over (its page keeps the samples from then on)."""
    with store.transaction() as conn:
        row = conn.execute(select(tries).where(tries.c.id == try_id)).first()
        if row is not None and row.status in (TryStatus.SUCCESS, TryStatus.FAILED):
            conn.execute(delete(tries).where(tries.c.id == try_id))
    return _try(row) if row else None


def purge(store: Store, older_than: dt.timedelta) -> int:
    """Delete the tries created longer ago than ``older_than``: no page came back for them."""
    with store.transaction() as conn:
        return conn.execute(delete(tries).where(tries.c.created_at < utcnow() - older_than)).rowcount
