"""The store's engine, its migrations, and an upsert that works on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from flowlink import settings
from flowlink.errors import FlowlinkError

MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.lru_cache(maxsize=1)
def _head() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def make_engine(url: str) -> Engine:
    """An engine for the store URL; a bad URL, a missing driver or an unusable folder is a FlowlinkError."""
    try:
        return _make_engine(url)
    except OSError as exc:
        raise FlowlinkError(f"cannot create the folder of the Flowlink store {url!r}: {exc.strerror}: {exc.filename}") from None
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
    return create_engine(url, pool_pre_ping=True)


class Store:
    """A handle on the Flowlink store. ``Store.open()`` uses FLOWLINK_STORE_URL and migrates to the latest schema."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        url = url or settings.store_url()
        store = cls(make_engine(url))
        if migrate:
            store.upgrade()
        return store

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self) -> None:
        """Bring the schema to the latest Alembic revision (no-op when it is there)."""
        try:
            if self.revision() == _head():
                return
            cfg = _alembic_config()
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise FlowlinkError(f"cannot migrate the Flowlink store at {self.engine.url!r}: {exc.orig or exc}") from None

    def dispose(self) -> None:
        self.engine.dispose()


def upsert(conn, table, rows: list[dict], keys: list[str], update: dict) -> None:
    """INSERT rows, or on a key conflict UPDATE with ``update`` (column -> value or expression)."""
    if not rows:
        return
    name = conn.dialect.name
    if name == "sqlite":
        stmt = sqlite.insert(table)
    elif name == "postgresql":
        stmt = postgresql.insert(table)
    else:
        raise FlowlinkError(f"the Flowlink store supports SQLite and PostgreSQL, not {name}")
    resolved = {k: (v(stmt.excluded) if callable(v) else v) for k, v in update.items()}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=resolved), rows)
