"""Feeds: the log of non-data activity (publishes, schedule changes, resyncs, ...)."""

from __future__ import annotations

from sqlalchemy import select

from flowlink.store.db import Store, utcnow
from flowlink.store.tables import feeds


def add(store: Store, tag: str, message: str, workflow: str | None = None, conn=None) -> None:
    row = dict(at=utcnow(), tag=tag, workflow=workflow, message=message)
    if conn is not None:
        conn.execute(feeds.insert().values(**row))
        return
    with store.engine.begin() as c:
        c.execute(feeds.insert().values(**row))


def entries(store: Store, *, workflow: str | None = None, tag: str | None = None, limit: int = 50) -> list[dict]:
    q = select(feeds).order_by(feeds.c.at.desc(), feeds.c.id.desc()).limit(limit)
    if workflow:
        q = q.where(feeds.c.workflow == workflow)
    if tag:
        q = q.where(feeds.c.tag == tag)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]
