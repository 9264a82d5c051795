"""Feeds: the log of non-data activity (publishes, schedule changes, resyncs, ...)."""

from __future__ import annotations

from sqlalchemy import func, select

from flowlink.store.db import Store, utcnow
from flowlink.store.tables import feeds


def add(store: Store, tag: str, message: str, workflow: str | None = None, conn=None) -> int:
    """Add an entry (in ``conn``'s transaction, if given); returns its id."""
    row = dict(at=utcnow(), tag=tag, workflow=workflow, message=message)
    if conn is not None:
        return conn.execute(feeds.insert().values(**row)).inserted_primary_key[0]
    with store.engine.begin() as c:
        return c.execute(feeds.insert().values(**row)).inserted_primary_key[0]


def _filtered(query, workflow: str | None, tag: str | None):
    if workflow:
        query = query.where(feeds.c.workflow == workflow)
    if tag:
        query = query.where(feeds.c.tag == tag)
    return query


def entries(store: Store, *, workflow: str | None = None, tag: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
    """Newest first."""
    q = _filtered(select(feeds), workflow, tag).order_by(feeds.c.at.desc(), feeds.c.id.desc()).limit(limit).offset(offset)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def count(store: Store, *, workflow: str | None = None, tag: str | None = None) -> int:
    q = _filtered(select(func.count()).select_from(feeds), workflow, tag)
    with store.engine.connect() as conn:
        return conn.execute(q).scalar_one()


def tags(store: Store) -> list[str]:
    """The tags used so far, for a filter."""
    with store.engine.connect() as conn:
        return list(conn.execute(select(feeds.c.tag).group_by(feeds.c.tag).order_by(feeds.c.tag)).scalars())
