"""Feeds: the log of non-data activity (publishes, schedule changes, resyncs, ...)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any, TypedDict

from sqlalchemy import Connection, Select, func, or_, select

from flowlink.store.db import Store, delete_batch, utcnow
from flowlink.store.tables import feeds


class FeedEntry(TypedDict):
    id: int
    at: dt.datetime
    tag: str  # publish | schedule | resync | retry | retention | ...
    workflow: str | None  # None: an entry of no workflow (environments, agent tokens, retention)
    message: str


def add(store: Store, tag: str, message: str, workflow: str | None = None, conn: Connection | None = None) -> int:
    """Add an entry (in ``conn``'s transaction, if given); returns its id."""
    insert = feeds.insert().values(at=utcnow(), tag=tag, workflow=workflow, message=message).returning(feeds.c.id)
    if conn is not None:
        return conn.execute(insert).scalar_one()
    with store.engine.begin() as c:
        return c.execute(insert).scalar_one()


def _filtered(query: Select[Any], workflow: str | None, tag: str | None, hidden: Collection[str]) -> Select[Any]:
    """Entries of one workflow, or (with ``hidden``) of every workflow but those, and those of no workflow."""
    if workflow:
        query = query.where(feeds.c.workflow == workflow)
    elif hidden:
        query = query.where(or_(feeds.c.workflow.is_(None), feeds.c.workflow.not_in(sorted(hidden))))
    if tag:
        query = query.where(feeds.c.tag == tag)
    return query


def entries(
    store: Store,
    *,
    workflow: str | None = None,
    tag: str | None = None,
    hidden: Collection[str] = (),
    limit: int = 50,
    offset: int = 0,
) -> list[FeedEntry]:
    """Newest first."""
    q = (
        _filtered(select(feeds), workflow, tag, hidden)
        .order_by(feeds.c.at.desc(), feeds.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    with store.engine.connect() as conn:
        return [FeedEntry(id=r.id, at=r.at, tag=r.tag, workflow=r.workflow, message=r.message) for r in conn.execute(q)]


def count(store: Store, *, workflow: str | None = None, tag: str | None = None, hidden: Collection[str] = ()) -> int:
    q = _filtered(select(func.count()).select_from(feeds), workflow, tag, hidden)
    with store.engine.connect() as conn:
        return conn.execute(q).scalar_one()


def tags(store: Store) -> list[str]:
    """The tags used so far, for a filter."""
    with store.engine.connect() as conn:
        return list(conn.execute(select(feeds.c.tag).group_by(feeds.c.tag).order_by(feeds.c.tag)).scalars())


def workflows(store: Store) -> set[str]:
    """The workflows that have entries."""
    q = select(feeds.c.workflow).where(feeds.c.workflow.is_not(None)).group_by(feeds.c.workflow)
    with store.engine.connect() as conn:
        return set(conn.execute(q).scalars())


# ------------------------------------------------------------------ retention (flowlink/retention.py)


def old_counts(store: Store, cut: dt.datetime) -> dict[str | None, int]:
    """workflow (None: no workflow) -> its entries from before ``cut``."""
    q = select(feeds.c.workflow, func.count()).where(feeds.c.at < cut).group_by(feeds.c.workflow)
    with store.engine.connect() as conn:
        return {w: n for w, n in conn.execute(q)}


def delete_old(
    store: Store, cut: dt.datetime, *, keep: int, after: int, limit: int
) -> tuple[int | None, dict[str | None, int]]:
    """Delete a batch of entries from before ``cut``, all but entry ``keep`` (db.delete_batch)."""
    return delete_batch(store, feeds, [feeds.c.at < cut, feeds.c.id != keep], after, limit)
