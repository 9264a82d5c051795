"""The store's engine, its migrations, and an upsert that works on SQLite and PostgreSQL.

A store on a database server (PostgreSQL) may be briefly unreachable (a restart, a fail-over, a network blip):
opening a connection is retried with backoff for up to CONNECT_WAIT seconds, and pooled connections are checked
before use. A transaction that loses its connection is rolled back whole and raises; callers see
:class:`StoreUnavailable` (one line: which store, what the driver said; ``Store.unavailable()``), and an Airflow
task fails with it and is retried if it has retries left.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, Engine, Table, create_engine, event, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from flowlink import settings
from flowlink.errors import FlowlinkError
from flowlink.reach import db_unreachable as _unreachable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
CONNECT_WAIT = 30.0  # seconds: how long opening a connection to an unreachable store server is retried
log = logging.getLogger(__name__)


class StoreUnavailable(FlowlinkError):
    """The store's database server cannot be reached (down, restarting, network); a later try may work."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


# Alembic is imported only to migrate: every task opens the store, and importing Alembic costs a task more CPU
# than its idle run's own work. Opening a store at the newest revision takes the two reads below instead.
@functools.lru_cache(maxsize=1)
def _head() -> str:
    """The newest migration's revision. The migrations are one chain and each file is named after its revision
    (NNNN_what.py, revision "NNNN"); tests/test_idle_runs.py checks this against Alembic's own reading."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _revision(conn: Connection) -> str | None:
    """The store's revision, as Alembic's MigrationContext reads it (its one-row table); None before any migration."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def make_engine(url: str) -> Engine:
    """An engine for the store URL; a bad URL, a missing driver or an unusable folder is a FlowlinkError."""
    try:
        return _make_engine(url)
    except OSError as exc:
        raise FlowlinkError(
            f"cannot create the folder of the Flowlink store {url!r}: {exc.strerror}: {exc.filename}"
        ) from None
    except (ArgumentError, ImportError) as exc:
        raise FlowlinkError(f"cannot use the Flowlink store URL {_safe(url)!r}: {exc}") from None


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # concurrent tasks write the same file
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, _record, cargs, cparams):
        return _connect_patiently(dialect, cargs, cparams)

    return engine


def _connect_patiently(dialect, cargs, cparams):
    """Open a DBAPI connection, retrying while the server is unreachable: waits of 0.5, 1, 2, 4, then 5 s, for up
    to CONNECT_WAIT seconds in all."""
    deadline, wait = time.monotonic() + CONNECT_WAIT, 0.5
    while True:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            left = deadline - time.monotonic()
            if not _unreachable(exc) or left <= 0:
                raise
            log.warning(
                "the Flowlink store is unreachable (%s); trying again in %.1f s", _first_line(exc), min(wait, left)
            )
            time.sleep(min(wait, left))
            wait = min(wait * 2, 5.0)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


@contextlib.contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on <database file>.migrate-lock for a SQLite file store; nothing for other databases."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate-lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed
        yield


class Store:
    """A handle on the Flowlink store. ``Store.open()`` uses FLOWLINK_STORE_URL and migrates to the latest schema."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        url = url or settings.store_url()
        store = cls(make_engine(url))
        if migrate:
            try:
                store.upgrade()
            except BaseException:
                store.dispose()
                raise
        return store

    def unavailable(self, error: BaseException) -> StoreUnavailable | None:
        """A StoreUnavailable naming this store (password hidden) and the driver's first line, if ``error`` says the
        store's server is unreachable or dropped the connection; else None."""
        if not (
            isinstance(error, DBAPIError)
            and (error.connection_invalidated or (error.orig is not None and _unreachable(error.orig)))
        ):
            return None
        where = self.engine.url.render_as_string(hide_password=True)
        return StoreUnavailable(f"the Flowlink store {where} is unreachable: {_first_line(error)}")

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return _revision(conn)

    def upgrade(self) -> None:
        """Bring the schema to the latest Alembic revision (no-op when it is there).

        One migration at a time: the first opens of a new store (CLI, scheduler, workers) may come together. A SQLite
        file is opened under its lock: the first connection turns on WAL, which needs the file to itself."""
        try:
            with _sqlite_lock(self.engine):
                self._upgrade()
        except SQLAlchemyError as exc:
            raise self.unavailable(exc) or FlowlinkError(
                f"cannot migrate the Flowlink store at {self.engine.url!r}: {getattr(exc, 'orig', None) or exc}"
            ) from None

    def _upgrade(self) -> None:
        if self.revision() == _head():
            return
        from alembic import command

        cfg = _alembic_config()
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7318391)")  # held until this transaction ends
            if _revision(conn) == _head():
                return  # another process migrated while this one waited
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads (no transaction kept open)."""
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str], update: dict[str, Any]) -> None:
    """INSERT rows, or on a key conflict UPDATE with ``update`` (column -> value, expression, or a function of the
    row that was not inserted: ``lambda excluded: excluded.status``)."""
    if not rows:
        return
    name = conn.dialect.name
    stmt: sqlite.Insert | postgresql.Insert
    if name == "sqlite":
        stmt = sqlite.insert(table)
    elif name == "postgresql":
        stmt = postgresql.insert(table)
    else:
        raise FlowlinkError(f"the Flowlink store supports SQLite and PostgreSQL, not {name}")
    resolved = {k: (v(stmt.excluded) if callable(v) else v) for k, v in update.items()}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=resolved), rows)


def delete_batch(
    store: Store, table: Table, where: list[ColumnElement[bool]], after: int, limit: int
) -> tuple[int | None, dict[str | None, int]]:
    """Delete the first ``limit`` rows (by id, after ``after``) that match ``where``, in one transaction that
    re-checks ``where``. Returns (the last id looked at, None when no row matched; workflow -> rows deleted)."""
    with store.engine.begin() as conn:
        found = conn.execute(
            select(table.c.id, table.c.workflow).where(*where, table.c.id > after).order_by(table.c.id).limit(limit)
        ).all()
        if not found:
            return None, {}
        ids: dict[str | None, list[int]] = defaultdict(list)
        for id_, workflow in found:
            ids[workflow].append(id_)
        gone = {
            w: conn.execute(table.delete().where(table.c.id.in_(chunk), *where)).rowcount for w, chunk in ids.items()
        }
    return found[-1][0], gone
