"""SQL databases through SQLAlchemy 2: any URL to read, SQLite and PostgreSQL to upsert.

Reading (:class:`SqlSource`)
    ``extract.table`` (``name`` or ``schema.name``) or ``extract.query`` (wrapped as a
    subquery), plus the spec author's ``extract.filter`` condition (appended with AND),
    ``incremental > :since`` and ``CAST(key AS VARCHAR) IN (...)`` for ``ids`` (keys are
    compared as strings; the ids are sent in chunks). ``since`` (the saved watermark: a
    number, or the ISO text of a timestamp or a NUMERIC value) is bound as it is, and the
    database compares it with the column's type: integers and NUMERIC as numbers,
    timestamps as instants (PostgreSQL reads the ISO text with its offset); a text column
    compares as text, so keep text timestamps in one format and offset (SQLite has no
    timestamp type). A numeric watermark against a column that holds text (``"9"``,
    ``"10"``) is not compared by the database: every row is read and filtered by
    :mod:`flowlink.ordering`, as the watermark itself is. Results are streamed with a
    server-side cursor (``stream_results``) and fetched ``batch_size`` rows at a time.
    Values are passed through :func:`flowlink.connectors.base.json_safe`: datetimes ->
    ISO strings, ``Decimal`` -> ``str``, bytes refused. No column types are applied on
    the way out, so SQLite returns what it stores.

Writing (:class:`SqlTarget`)
    ``upsert``: ``INSERT .. ON CONFLICT (key) DO UPDATE`` of the columns the record
    carries (other columns keep their values). ``insert``: ``INSERT .. ON CONFLICT (key)
    DO NOTHING RETURNING key``; a record whose key already exists is reported as
    ``ok=False, exists=True, error="already exists"`` and the existing row is left unchanged (so a
    caller can tell new records from skipped ones). Both need a primary key or unique
    constraint on ``load.key``. Upsert is implemented for the ``sqlite`` and
    ``postgresql`` dialects; other dialects raise :class:`ConnectorError` for upsert and
    use a plain ``INSERT`` for insert (a duplicate then fails that record).

    Values are sent to the driver as they are (no column-type conversion): ISO strings
    for dates work on PostgreSQL and are stored as text on SQLite; dicts (and lists for
    JSON columns) are sent as JSON text.

    One transaction per ``write()`` call. If the batch fails (constraint, type error),
    it is rolled back and retried record by record, each in its own SAVEPOINT, so only
    the bad records fail; their error is the first line of the database's message
    (never the SQL parameters). A record field that is not a column of the table fails
    that record naming the column. The destination id is the key value as a string.

Reaching the database
    A PostgreSQL server that refuses connections, does not answer or is starting up is tried again for
    FLOWLINK_UNREACHABLE_AFTER seconds (default 30, :mod:`flowlink.reach`), then :class:`Unreachable` is raised
    (a wrong password or a missing database fails at once); with psycopg, connecting times out after 10 s unless
    the URL sets ``connect_timeout``.

Credentials
    Messages name the database by its URL with the password hidden, and every text a driver gives (its
    errors) has the URL's password replaced by ``***``, plain, URL-encoded or JSON-escaped. :func:`url_secrets`
    lists those forms (the Airflow hook hands them to Airflow's secrets masker).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from flowlink.connectors.base import Batch, ConnectorError, Unreachable, WriteResult, json_safe
from flowlink.errors import redact, secret_forms
from flowlink.ordering import newer, number
from flowlink.reach import Patience, db_unreachable
from flowlink.spec import Extract, Load

__all__ = ["SqlSource", "SqlTarget", "missing_sqlite_file", "sql_url_from_connection", "url_secrets"]

ID_CHUNK = 500
CONNECT_TIMEOUT = 10  # seconds: libpq's connect_timeout when the URL sets none
UPSERT_DIALECTS = ("sqlite", "postgresql")
# Airflow connection extras passed to libpq as URL query parameters.
_PG_EXTRAS = (
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslcrl",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
)
_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mssql": "mssql+pyodbc",
    "oracle": "oracle+oracledb",
}


def sql_url_from_connection(
    conn_type: str,
    host: str | None,
    login: str | None,
    password: str | None,
    port: int | None,
    schema: str | None,
    extra: dict | None,
) -> str:
    """A SQLAlchemy URL string from an Airflow connection's fields.

    ``extra["sqlalchemy_url"]`` wins if given. ``sqlite``: ``host`` is the database file
    path. ``postgres``/``postgresql`` -> ``postgresql+psycopg``, ``schema`` is the
    database name and libpq extras (sslmode, ...) become query parameters. ``generic`` is
    refused (it names no database); other types are used as the SQLAlchemy driver name. The
    password is escaped.
    """
    extra = extra or {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    kind = (conn_type or "").strip().lower()
    if not kind:
        raise ConnectorError("the connection has no type; set conn_type (sqlite, postgres, ...)")
    if kind == "generic":  # what `airflow connections add --conn-type postgres` stores without the postgres provider
        raise ConnectorError(
            "the connection's type is generic, which names no database: add it with --conn-uri "
            'postgresql://... or --conn-json \'{"conn_type": "postgres", ...}\' (airflow connections '
            "add --conn-type keeps only the types of installed providers)"
        )
    if kind == "sqlite":
        if not host:
            raise ConnectorError("a sqlite connection needs host = the path of the database file")
        return URL.create("sqlite", database=host).render_as_string(hide_password=False)
    drivername = _DRIVERS.get(kind, kind)
    try:
        URL.create(drivername).get_dialect()
    except (sa_exc.NoSuchModuleError, ValueError):
        raise ConnectorError(
            f"the connection's type {conn_type!r} is not a database type Flowlink can read: use sqlite "
            f"or postgres, or give a SQLAlchemy URL as extra sqlalchemy_url"
        ) from None
    query: dict[str, str] = {}
    if drivername.startswith("postgresql"):
        query = {k: str(extra[k]) for k in _PG_EXTRAS if extra.get(k) not in (None, "")}
    url = URL.create(
        drivername,
        username=login or None,
        password=password or None,
        host=host or None,
        port=int(port) if port else None,
        database=schema or None,
        query=query,
    )
    return url.render_as_string(hide_password=False)


def url_secrets(url: str) -> list[str]:
    """Every form of the password in a database URL (plain, URL-encoded, JSON-escaped), also of a URL SQLAlchemy
    cannot parse; longest first."""
    try:
        password = sa.engine.make_url(url).password
        found = [password] if password else []
    except (sa_exc.ArgumentError, ValueError):  # unparsable: everything between user: and the last @ counts
        authority = url.partition("://")[2].split("?", 1)[0]
        userinfo = authority.rpartition("@")[0]
        secret = userinfo.partition(":")[2]
        found = [secret, unquote(secret)] if secret else []
    return secret_forms(str(p) for p in found)


def missing_sqlite_file(url: str) -> str | None:
    """Why a SQLite URL cannot be read: its database file does not exist (connecting would create an empty one);
    None for any other URL."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return None if os.path.isfile(database) else f"no database file {database} (SQLite would create an empty one)"


def _first_line(error: BaseException) -> str:
    """The database's own message, first line only (no SQL, no parameters)."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    line = text.splitlines()[0].strip() if text else type(error).__name__
    return line or type(error).__name__


def _split_name(name: str) -> tuple[str | None, str]:
    schema, dot, table = name.strip().rpartition(".")
    return (schema or None) if dot else None, table


def _make_engine(url: str) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
        options: dict[str, Any] = {}
        if parsed.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in parsed.query:
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}  # libpq waits minutes by default
        engine = sa.create_engine(parsed, pool_pre_ping=True, **options)
    except (
        sa_exc.ArgumentError,
        sa_exc.NoSuchModuleError,
        ValueError,
    ) as exc:  # ValueError: e.g. a port that is no number
        raise ConnectorError(redact(f"invalid database URL: {exc}", url_secrets(url))) from None
    except ImportError as exc:
        raise ConnectorError(f"the database driver is not installed: {exc}") from None
    if engine.dialect.name == "sqlite" and engine.dialect.driver == "pysqlite":
        # pysqlite's own transaction handling breaks SAVEPOINTs; let SQLAlchemy emit BEGIN.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_transactions(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

    return engine


class _Sql:
    def __init__(self, url: str, *, unreachable_after: float | None = None):
        """``unreachable_after``: seconds to keep trying a server that cannot be reached (default
        FLOWLINK_UNREACHABLE_AFTER)."""
        self.engine = _make_engine(url)
        self._where = self.engine.url.render_as_string(hide_password=True)
        self._secrets = url_secrets(url)
        self._patience = Patience(unreachable_after)

    def _reason(self, error: BaseException) -> str:
        """The database's own message, first line, without the password."""
        return redact(_first_line(error), self._secrets)

    def _connect(self) -> Connection:
        """A connection; a server that cannot be reached is tried again for FLOWLINK_UNREACHABLE_AFTER seconds."""
        while True:
            started = time.monotonic()
            try:
                connection = self.engine.connect()
            except sa_exc.SQLAlchemyError as exc:
                problem = f"cannot connect to {self._where}: {self._reason(exc)}"
                if not db_unreachable(getattr(exc, "orig", None) or exc):
                    raise ConnectorError(problem) from None
                wait = self._patience.failed(started)
                if wait is None:
                    raise Unreachable(f"{problem}; {self._patience.gave_up()}") from None
                time.sleep(wait)
            else:
                self._patience.connected()
                return connection

    def _columns(self, conn: Connection, name: str) -> dict[str, Any]:
        """Column name -> SQLAlchemy type of a table; ConnectorError if it does not exist."""
        schema, table = _split_name(name)
        try:
            insp = sa.inspect(conn)
            if not insp.has_table(table, schema=schema):
                raise ConnectorError(f"no such table {name!r} in {self._where}")
            return {c["name"]: c["type"] for c in insp.get_columns(table, schema=schema)}
        except sa_exc.SQLAlchemyError as exc:
            raise ConnectorError(f"cannot inspect table {name!r}: {self._reason(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()


def _needed(name: str | None, what: str) -> str:
    """A part of the spec this read or write needs (the spec's checks make sure it is there)."""
    if not name:
        raise ConnectorError(f"{what} is needed here")
    return name


class SqlSource(_Sql):
    """Reads a table or query of any SQLAlchemy database (see the module docstring)."""

    def read(
        self,
        extract: Extract,
        *,
        since: Any = None,
        ids: list[str] | None = None,
        batch_size: int,
    ) -> Iterator[Batch]:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not (extract.table or extract.query):
            raise ConnectorError("a sql source reads extract.table or extract.query")
        if ids is not None and not ids:
            return
        with self._connect() as conn:
            what = f"table {extract.table!r}" if extract.table else "the query"
            if extract.table:
                columns = self._columns(conn, extract.table)
                for role, field in (("key", extract.key), ("incremental", extract.incremental)):
                    if field and field not in columns:
                        raise ConnectorError(f"extract.{role} {field!r} is not a column of table {extract.table!r}")
            batch: Batch = []
            try:
                by_rule = (
                    since is not None
                    and ids is None
                    and bool(extract.incremental)
                    and number(since) is not None
                    and self._holds_text(conn, extract)
                )
                for stmt, params in self._statements(extract, None if by_rule else since, ids):
                    result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt, params)
                    for rows in result.mappings().partitions(batch_size):
                        for row in rows:
                            record = {str(k): json_safe(v, str(k)) for k, v in row.items()}
                            if by_rule and not newer(record.get(extract.incremental or ""), since):
                                continue
                            batch.append(record)
                            if len(batch) == batch_size:
                                yield batch
                                batch = []
                    result.close()
            except sa_exc.SQLAlchemyError as exc:
                raise ConnectorError(f"cannot read {what}: {self._reason(exc)}") from None
            if batch:
                yield batch

    def newest(self, extract: Extract, limit: int) -> Batch:
        """Source.newest, asked of the database: ``ORDER BY incremental DESC, key DESC LIMIT n`` (rows without an
        incremental value last), else ``ORDER BY key LIMIT n``. The database orders by the column's type, as it
        compares a run's watermark."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not (extract.table or extract.query):
            raise ConnectorError("a sql source reads extract.table or extract.query")
        what = f"table {extract.table!r}" if extract.table else "the query"
        with self._connect() as conn:
            if extract.table:
                columns = self._columns(conn, extract.table)
                for role, field in (("key", extract.key), ("incremental", extract.incremental)):
                    if field and field not in columns:
                        raise ConnectorError(f"extract.{role} {field!r} is not a column of table {extract.table!r}")
            key: sa.ColumnClause[Any] = sa.column(extract.key)
            stmt: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(self._source(extract))
            if extract.filter:
                stmt = stmt.where(sa.text(f"({extract.filter})"))
            if extract.incremental:
                inc: sa.ColumnClause[Any] = sa.column(extract.incremental)
                stmt = stmt.order_by(inc.desc().nulls_last(), key.desc())
            else:
                stmt = stmt.order_by(key)
            try:
                rows = conn.execute(stmt.limit(limit)).mappings().all()
            except sa_exc.SQLAlchemyError as exc:
                raise ConnectorError(f"cannot read {what}: {self._reason(exc)}") from None
        return [{str(k): json_safe(v, str(k)) for k, v in row.items()} for row in rows]

    @staticmethod
    def _source(extract: Extract) -> Any:
        if extract.table:
            schema, name = _split_name(extract.table)
            return sa.table(name, schema=schema)
        query = _needed(extract.query, "extract.query").strip().rstrip(";").strip()
        return sa.text(query).columns().subquery("flowlink_src")

    def _holds_text(self, conn: Connection, extract: Extract) -> bool:
        """Whether the incremental column holds text (the driver hands back a str): the database would compare a
        numeric watermark with it as text ("10" < "9"), so such a read is filtered by flowlink.ordering instead."""
        inc: sa.ColumnClause[Any] = sa.column(_needed(extract.incremental, "extract.incremental"))
        first = sa.select(inc).select_from(self._source(extract)).where(inc.is_not(None)).limit(1)
        return isinstance(conn.execute(first).scalar(), str)

    def _statements(self, extract: Extract, since: Any, ids: list[str] | None) -> Iterator[tuple[sa.Select, dict]]:
        key: sa.ColumnClause[Any] = sa.column(extract.key)
        stmt: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(self._source(extract))
        if extract.filter:
            stmt = stmt.where(sa.text(f"({extract.filter})"))
        order = [key]
        if extract.incremental:
            inc: sa.ColumnClause[Any] = sa.column(extract.incremental)
            order = [inc, key]
            if since is not None and ids is None:
                stmt = stmt.where(inc > sa.bindparam("since"))
        stmt = stmt.order_by(*order)
        params = {"since": since} if since is not None and ids is None and extract.incremental else {}
        if ids is None:
            yield stmt, params
            return
        wanted = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(wanted), ID_CHUNK):
            chunk = wanted[start : start + ID_CHUNK]
            yield stmt.where(sa.cast(key, sa.String).in_(chunk)), params


class SqlTarget(_Sql):
    """Upserts or inserts records into a table (see the module docstring)."""

    def __init__(self, url: str, *, unreachable_after: float | None = None):
        super().__init__(url, unreachable_after=unreachable_after)
        self._tables: dict[tuple[str, str], dict[str, Any]] = {}  # (table, key) -> columns

    def _table_columns(self, conn: Connection, load: Load) -> dict[str, Any]:
        cache_key = (_needed(load.table, "load.table"), load.key)
        if cache_key not in self._tables:
            columns = self._columns(conn, cache_key[0])
            if load.key not in columns:
                raise ConnectorError(f"load.key {load.key!r} is not a column of table {load.table!r}")
            if self.engine.dialect.name in UPSERT_DIALECTS and not self._key_is_unique(conn, load):
                raise ConnectorError(
                    f"load.key {load.key!r} of table {load.table!r} needs a primary key or unique constraint "
                    "to be written by key"
                )
            self._tables[cache_key] = columns
        return self._tables[cache_key]

    def _key_is_unique(self, conn: Connection, load: Load) -> bool:
        schema, table = _split_name(_needed(load.table, "load.table"))
        insp = sa.inspect(conn)
        sets: list[list[str | None]] = [
            list(insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or [])
        ]
        sets += [list(u["column_names"]) for u in insp.get_unique_constraints(table, schema=schema)]
        sets += [list(i["column_names"]) for i in insp.get_indexes(table, schema=schema) if i.get("unique")]
        return [load.key] in sets

    def write(
        self, load: Load, records: list[dict], destination_ids: list[str | None] | None = None
    ) -> list[WriteResult]:
        """Write by ``load.key`` (see the module docstring); ``destination_ids`` are not needed."""
        if not load.table:
            raise ConnectorError("a sql target writes load.table")
        dialect = self.engine.dialect.name
        if load.method == "upsert" and dialect not in UPSERT_DIALECTS:
            raise ConnectorError(
                f"upsert is not supported for {dialect} databases (only {', '.join(UPSERT_DIALECTS)}); use method: insert"
            )
        results: list[WriteResult | None] = [None] * len(records)
        if not records:
            return []
        with self._connect() as conn:
            columns = self._table_columns(conn, load)
            conn.rollback()  # end the transaction the inspection began
            good: list[tuple[int, dict]] = []
            for i, record in enumerate(records):
                problem, row = self._check(load, columns, record)
                if problem:
                    results[i] = WriteResult(key=_key_of(record, load.key), ok=False, error=problem)
                else:
                    good.append((i, row))
            if good:
                try:
                    with conn.begin():
                        for i, result in self._write_rows(conn, load, columns, good):
                            results[i] = result
                except sa_exc.SQLAlchemyError as exc:
                    self._fail_if_disconnected(exc)
                    with conn.begin():
                        for i, row in good:
                            results[i] = self._write_one(conn, load, columns, row)
        return [r for r in results if r is not None]

    def _check(self, load: Load, columns: dict[str, Any], record: Any) -> tuple[str | None, dict]:
        if not isinstance(record, dict):
            return f"a record must be a mapping of fields, got {type(record).__name__}", {}
        if record.get(load.key) is None:
            return f"the record has no value for the key field {load.key!r}", {}
        unknown = [f for f in record if f not in columns]
        if unknown:
            names = ", ".join(repr(f) for f in unknown)
            return f"table {load.table!r} has no column {names}", {}
        return None, {k: _to_db(v, columns[k]) for k, v in record.items()}

    def _statement(self, load: Load, fields: tuple[str, ...]) -> Any:
        schema, name = _split_name(_needed(load.table, "load.table"))
        table = sa.table(name, *[sa.column(f) for f in fields], schema=schema)
        dialect = self.engine.dialect.name
        stmt: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            stmt = postgresql.insert(table)
        elif dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            stmt = sqlite.insert(table)
        else:
            return sa.insert(table)
        if load.method == "insert":
            return stmt.on_conflict_do_nothing(index_elements=[load.key]).returning(table.c[load.key])
        updates = {f: stmt.excluded[f] for f in fields if f != load.key}
        if not updates:
            return stmt.on_conflict_do_nothing(index_elements=[load.key])
        return stmt.on_conflict_do_update(index_elements=[load.key], set_=updates)

    def _returns_keys(self, load: Load) -> bool:
        return load.method == "insert" and self.engine.dialect.name in UPSERT_DIALECTS

    def _write_rows(
        self, conn: Connection, load: Load, columns: dict[str, Any], rows: list[tuple[int, dict]]
    ) -> Iterator[tuple[int, WriteResult]]:
        """The whole batch, one statement per group of records with the same fields."""
        groups: dict[tuple[str, ...], list[tuple[int, dict]]] = {}
        for i, row in rows:
            groups.setdefault(tuple(row), []).append((i, row))
        out: list[tuple[int, WriteResult]] = []
        for fields, group in groups.items():
            result = conn.execute(self._statement(load, fields), [row for _, row in group])
            inserted = {str(json_safe(k)) for k in result.scalars().all()} if self._returns_keys(load) else None
            for i, row in group:
                key = _key_of(row, load.key)
                if inserted is None or key in inserted:
                    out.append((i, WriteResult(key=key, ok=True, destination_id=key)))
                    if inserted is not None:
                        inserted.discard(key)  # a second record with the same key in this batch already exists
                else:
                    out.append((i, WriteResult(key=key, ok=False, error="already exists", exists=True)))
        return iter(out)

    def _write_one(self, conn: Connection, load: Load, columns: dict[str, Any], row: dict) -> WriteResult:
        key = _key_of(row, load.key)
        savepoint = conn.begin_nested()
        try:
            result = conn.execute(self._statement(load, tuple(row)), row)
            if self._returns_keys(load) and result.first() is None:
                savepoint.commit()
                return WriteResult(key=key, ok=False, error="already exists", exists=True)
            savepoint.commit()
        except sa_exc.SQLAlchemyError as exc:
            self._fail_if_disconnected(exc)
            savepoint.rollback()
            return WriteResult(key=key, ok=False, error=self._reason(exc))
        return WriteResult(key=key, ok=True, destination_id=key)

    def _fail_if_disconnected(self, exc: sa_exc.SQLAlchemyError) -> None:
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            raise ConnectorError(f"lost the connection to {self._where}: {self._reason(exc)}") from None


def _key_of(record: Any, key: str) -> str:
    value = record.get(key) if isinstance(record, dict) else None
    return "" if value is None else str(json_safe(value))


def _to_db(value: Any, column_type: Any) -> Any:
    """A JSON value as the driver should receive it for this column."""
    if isinstance(value, dict) or (isinstance(value, list) and isinstance(column_type, sa.JSON)):
        return json.dumps(value)
    return value
