"""Sync state: incremental watermarks and resync requests."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from flowlink.errors import FlowlinkError
from flowlink.store.db import Store, upsert, utcnow
from flowlink.store.tables import resyncs, watermarks


def watermark(store: Store, workflow: str, touchpoint: str) -> Any:
    """The last committed incremental value, or None before the first (full) sync."""
    q = select(watermarks.c.value).where(watermarks.c.workflow == workflow, watermarks.c.touchpoint == touchpoint)
    with store.engine.connect() as conn:
        value = conn.execute(q).scalar()
    return None if value is None else json.loads(value)


def save_watermark(store: Store, workflow: str, touchpoint: str, value: Any, run_id: str) -> None:
    row = dict(workflow=workflow, touchpoint=touchpoint, value=json.dumps(value), run_id=run_id, updated_at=utcnow())
    with store.engine.begin() as conn:
        upsert(conn, watermarks, [row], ["workflow", "touchpoint"], {"value": row["value"], "run_id": run_id, "updated_at": row["updated_at"]})


def create_resync(workflow: str, touchpoint: str, source_ids: list[str], conn, kind: str = "manual") -> int:
    """A resync request: by a user (manual) or by the automatic retry of failed records (retry)."""
    if kind not in ("manual", "retry"):
        raise FlowlinkError(f"resync kind must be manual or retry, got {kind!r}")
    result = conn.execute(resyncs.insert().values(workflow=workflow, touchpoint=touchpoint, kind=kind,
                                                  source_ids=json.dumps(source_ids), requested_at=utcnow()))
    return result.inserted_primary_key[0]


def resync(store: Store, resync_id: int) -> dict:
    with store.engine.connect() as conn:
        row = conn.execute(select(resyncs).where(resyncs.c.id == resync_id)).first()
    if row is None:
        raise FlowlinkError(f"no resync request {resync_id}")
    out = dict(row._mapping)
    out["source_ids"] = json.loads(out["source_ids"])
    return out


def attach_run(resync_id: int, run_id: str, conn) -> None:
    conn.execute(resyncs.update().where(resyncs.c.id == resync_id).values(run_id=run_id))


def delete_resync(store: Store, resync_id: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(resyncs.delete().where(resyncs.c.id == resync_id))


def resync_of_run(store: Store, workflow: str, run_id: str) -> dict | None:
    """The resync request a run was started for (its chosen source ids), or None for an ordinary run."""
    q = select(resyncs).where(resyncs.c.workflow == workflow, resyncs.c.run_id == run_id).order_by(resyncs.c.id.desc()).limit(1)
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        return None
    out = dict(row._mapping)
    out["source_ids"] = json.loads(out["source_ids"])
    return out
