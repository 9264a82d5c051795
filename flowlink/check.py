"""`flowlink check`: will a workflow's applications work, before it runs?

For the source and the target: the Airflow connection exists and its type fits the application type, the
application answers (SQL ``SELECT 1``, a GET of the REST base URL, the folder), each touchpoint's table, endpoint or
file pattern exists, and the fields the mapping, ``extract.key`` and ``extract.incremental`` name are in a sample
record read with the real source connector (a SQL table's columns). Each finding is a :class:`Check` row; none
carries a credential (connectors redact their messages; URLs are shown without passwords).

Connections are read as Airflow's own server processes read them (flowlink.airflow_adapter.connection).
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from flowlink.airflow_adapter import ConnectionFields, connection
from flowlink.errors import FlowlinkError, plural, redact
from flowlink.spec import Application, Touchpoint, Workflow

if TYPE_CHECKING:
    from flowlink.connectors.file import FileSource
    from flowlink.connectors.rest import RestSource
    from flowlink.connectors.sql import SqlSource

SQL_TYPES = ("sqlite", "postgres", "postgresql")
REST_TYPES = ("http", "https")  # or generic with a URL as host
FILE_TYPES = ("fs", "file", "generic")  # with extra {"path": ...} or host: the folder
HTTP_TIMEOUT = 10  # seconds per request; a check makes no retries


class Result(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"  # worth a look, not a problem (no file matches the pattern yet, an empty table)
    PROBLEM = "problem"  # the workflow would fail: exit status 1


@dataclass(frozen=True)
class Check:
    check: str  # connection | connect | table | query | endpoint | file | fields
    what: str  # "source demo_erp", "customers: table customers"
    result: Result
    detail: str

    def as_dict(self) -> dict:
        return {**asdict(self), "result": self.result.value}


class _Found(list[Check]):
    """The rows of one check run, with shorthands."""

    def add(self, check: str, what: str, result: Result, detail: str) -> None:
        self.append(Check(check, what, result, detail))


# ------------------------------------------------------------------ Airflow connections


def missing_connections(wf: Workflow) -> list[str]:
    """The connection ids of the workflow's applications that Airflow does not have (deploy refuses those)."""
    ids = dict.fromkeys(app.connection for app in (wf.source, wf.target))
    return [conn_id for conn_id in ids if connection(conn_id) is None]


def _fields(conn: ConnectionFields) -> dict[str, Any]:
    return asdict(conn)


def _type_problem(app: Application, fields: dict) -> str | None:
    """Why the connection's type does not fit the application type; None if it fits."""
    kind, extra, host = (fields["conn_type"] or "").lower(), fields["extra"], fields["host"] or ""
    if app.type == "sql":
        if kind in SQL_TYPES or kind == "generic" or extra.get("sqlalchemy_url"):
            return None  # generic: sql_url_from_connection says which form to use
        return f"type {kind or 'none'!r} is no database Flowlink reads: use sqlite, postgres or an extra sqlalchemy_url"
    if app.type == "rest":
        if kind in REST_TYPES or (kind == "generic" and "://" in host):
            return None
        return f"type {kind or 'none'!r} does not fit a REST application: use http or https (or generic with a URL as host)"
    if kind not in FILE_TYPES:
        return f'type {kind or "none"!r} does not fit a file application: use fs (or generic) with extra {{"path": "/folder"}}'
    return None


# ------------------------------------------------------------------ the check


def check(wf: Workflow) -> list[Check]:
    """Every check of the workflow, in order: the source, the target, then each touchpoint."""
    found = _Found()
    source = _application(found, "source", wf.source)
    target = _application(found, "target", wf.target)
    try:
        for tp in wf.touchpoints:
            if source is not None:
                source.touchpoint(found, tp)
            if target is not None:
                target.touchpoint_target(found, tp)
    finally:
        for app in (source, target):
            if app is not None:
                app.close()
    return list(found)


def problems(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.result is Result.PROBLEM]


def _application(found: _Found, role: str, app: Application) -> _App | None:
    """The connection row and the connect row of one application; the open application, or None when unusable."""
    what = f"{role} {app.connection}"
    conn = connection(app.connection)
    if conn is None:
        found.add(
            "connection",
            what,
            Result.PROBLEM,
            f"Airflow has no connection {app.connection!r}: add it (airflow connections add {app.connection} "
            f"--conn-json '...', see the README) or correct {role}.connection in the spec",
        )
        return None
    fields = _fields(conn)
    problem = _type_problem(app, fields)
    if problem:
        found.add("connection", what, Result.PROBLEM, problem)
        return None
    kinds: dict[str, type[_App]] = {"sql": _Sql, "rest": _Rest, "file": _Files}
    opened = kinds[app.type].open(found, role, what, fields)
    if opened is not None and not opened.connect(found):
        opened.close()
        return None
    return opened


class _App:
    """One application being checked: its source connector, opened from the connection's fields."""

    source: SqlSource | RestSource | FileSource

    def __init__(self, role: str, what: str):
        self.role, self.what = role, what

    @classmethod
    def open(cls, found: _Found, role: str, what: str, fields: dict[str, Any]) -> _App | None:
        raise NotImplementedError

    def connect(self, found: _Found) -> bool:
        raise NotImplementedError

    def touchpoint(self, found: _Found, tp: Touchpoint) -> None:
        raise NotImplementedError

    def touchpoint_target(self, found: _Found, tp: Touchpoint) -> None:
        pass

    def close(self) -> None:
        self.source.close()

    def sample(self, tp: Touchpoint) -> dict | None:
        """A record of the touchpoint's extract (None when there is none); raises ConnectorError."""
        batches = self.source.read(tp.extract, batch_size=1)
        try:
            for batch in batches:
                for record in batch:
                    if isinstance(record, dict):  # not one the source could not read (connectors.base.Unreadable)
                        return record
            return None
        finally:
            getattr(batches, "close", lambda: None)()  # a generator: end it, and so its query or file

    def fields_row(self, found: _Found, tp: Touchpoint, record: dict | None, columns: set[str] | None = None) -> None:
        """The fields row: each field the touchpoint names is in the sample record (or among a table's columns)."""
        wanted, what = source_fields(tp), f"{tp.name}: fields"
        if columns is not None:
            missing, seen, where = [f for f in wanted if f not in columns], sorted(columns), "the table's columns"
        elif record is not None:
            missing, seen, where = (
                [f for f in wanted if not _has(record, f)],
                sorted(map(str, record)),
                "the sample record",
            )
        else:
            found.add("fields", what, Result.WARNING, f"no record to compare {', '.join(wanted)} with")
            return
        if missing:
            found.add(
                "fields", what, Result.PROBLEM, f"not in {where}: {', '.join(missing)} (it has: {', '.join(seen[:30])})"
            )
        else:
            found.add("fields", what, Result.OK, f"{', '.join(wanted)} found")


def source_fields(tp: Touchpoint) -> list[str]:
    """The source fields a touchpoint names: extract.key, extract.incremental, the mapping's source fields and the
    field names in its XPath expressions (names of the record's own children: ``concat(first_name, ' ', x)``)."""
    names = [tp.extract.key] + ([tp.extract.incremental] if tp.extract.incremental else [])
    for rule in tp.mapping or []:
        if rule.source:
            names.append(rule.source)
        elif rule.xpath:
            names.extend(xpath_fields(rule.xpath))
    return list(dict.fromkeys(names))


_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_OPERATORS = {"and", "or", "div", "mod"}


def xpath_fields(expr: str) -> list[str]:
    """The record fields a simple XPath expression reads: names that are neither functions, node tests, axes,
    variables, attributes nor later steps of a path (``a/b`` reads a). Numbers and string literals are skipped."""
    text = _LITERAL.sub(lambda m: " " * len(m.group()), expr)
    found = []
    for m in _NAME.finditer(text):
        name, before, after = m.group(), text[: m.start()].rstrip(), text[m.end() :].lstrip()
        if name.endswith(("-", ".")) or name in _OPERATORS and before and before[-1] not in "(,/[|":
            continue
        if after.startswith(("(", "::")) or (before and before[-1] in "$@/:"):
            continue
        found.append(name)
    return list(dict.fromkeys(found))


def _has(record: dict, name: str) -> bool:
    if name in record:
        return True
    value: Any = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


class _Sql(_App):
    source: SqlSource

    def __init__(self, role: str, what: str, url: str):
        from flowlink.connectors.sql import SqlSource, url_secrets

        super().__init__(role, what)
        self.source, self.secrets = SqlSource(url), url_secrets(url)
        self.where = self.source.engine.url.render_as_string(hide_password=True)

    @classmethod
    def open(cls, found: _Found, role: str, what: str, fields: dict[str, Any]) -> _Sql | None:
        from flowlink.connectors.base import ConnectorError
        from flowlink.connectors.sql import sql_url_from_connection

        try:
            self = cls(role, what, sql_url_from_connection(**fields))
        except ConnectorError as exc:
            found.add("connection", what, Result.PROBLEM, str(exc))
            return None
        found.add("connection", what, Result.OK, f"type {fields['conn_type']}")
        return self

    def _reason(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        return redact((str(orig).strip().splitlines() or [type(orig).__name__])[0], self.secrets)

    def connect(self, found: _Found) -> bool:
        import sqlalchemy as sa

        from flowlink.connectors.sql import missing_sqlite_file

        missing = missing_sqlite_file(self.source.engine.url.render_as_string(hide_password=False))
        if missing:
            found.add("connect", self.what, Result.PROBLEM, missing)
            return False
        try:
            with self.source.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            found.add("connect", self.what, Result.PROBLEM, f"SELECT 1 on {self.where}: {self._reason(exc)}")
            return False
        found.add("connect", self.what, Result.OK, f"SELECT 1 on {self.where}")
        return True

    def _columns(self, found: _Found, check: str, what: str, name: str) -> set[str] | None:
        import sqlalchemy as sa

        schema, _, table = name.rpartition(".")
        try:
            with self.source.engine.connect() as conn:
                insp = sa.inspect(conn)
                if not insp.has_table(table, schema=schema or None):
                    found.add(check, what, Result.PROBLEM, f"no table {name!r} in {self.where}")
                    return None
                columns = {c["name"] for c in insp.get_columns(table, schema=schema or None)}
        except sa.exc.SQLAlchemyError as exc:
            found.add(check, what, Result.PROBLEM, f"cannot inspect table {name!r}: {self._reason(exc)}")
            return None
        found.add(check, what, Result.OK, f"{plural(len(columns), 'column')}")
        return columns

    def touchpoint(self, found: _Found, tp: Touchpoint) -> None:
        from flowlink.connectors.base import ConnectorError

        if tp.extract.table:
            columns = self._columns(found, "table", f"{tp.name}: table {tp.extract.table}", tp.extract.table)
            if columns is not None:
                self.fields_row(found, tp, None, columns)
            return
        try:
            record = self.sample(tp)
        except ConnectorError as exc:
            found.add("query", f"{tp.name}: query", Result.PROBLEM, str(exc))
            return
        found.add(
            "query",
            f"{tp.name}: query",
            Result.OK if record else Result.WARNING,
            "runs" + ("" if record else ", but gives no record"),
        )
        if record is not None:
            self.fields_row(found, tp, record)

    def touchpoint_target(self, found: _Found, tp: Touchpoint) -> None:
        if not tp.load.table:
            return
        what = f"{tp.name}: table {tp.load.table}"
        columns = self._columns(found, "table", what, tp.load.table)
        if columns is None:
            return
        wanted = [tp.load.key] + [r.target for r in tp.mapping or [] if r.target != tp.load.key]
        missing = [f for f in wanted if f not in columns]
        if missing:
            found.add(
                "fields",
                f"{tp.name}: target fields",
                Result.PROBLEM,
                f"not columns of {tp.load.table}: {', '.join(missing)}",
            )


class _Rest(_App):
    source: RestSource

    def __init__(self, role: str, what: str, settings: dict[str, Any]):
        from flowlink.connectors.rest import RestSource

        super().__init__(role, what)
        # an application that is down: said at once, not retried
        self.source = RestSource(**{**settings, "retries": 0, "timeout": HTTP_TIMEOUT, "unreachable_after": 0})

    @classmethod
    def open(cls, found: _Found, role: str, what: str, fields: dict[str, Any]) -> _Rest | None:
        from flowlink.connectors.base import ConnectorError
        from flowlink.connectors.rest import rest_settings_from_connection

        try:
            self = cls(role, what, rest_settings_from_connection(**fields))
        except (ConnectorError, TypeError, ValueError) as exc:
            found.add(
                "connection",
                what,
                Result.PROBLEM,
                str(exc) if isinstance(exc, ConnectorError) else f"unusable connection settings ({type(exc).__name__})",
            )
            return None
        found.add("connection", what, Result.OK, f"type {fields['conn_type']}, {self.source.base_url}")
        return self

    def connect(self, found: _Found) -> bool:
        from flowlink.connectors.base import ConnectorError

        try:
            response = self.source.request("GET", self.source.url(""))
        except ConnectorError as exc:
            found.add("connect", self.what, Result.PROBLEM, str(exc))
            return False
        found.add("connect", self.what, Result.OK, f"GET {self.source.base_url}: HTTP {response.status_code}")
        return True

    def touchpoint(self, found: _Found, tp: Touchpoint) -> None:
        from flowlink.connectors.base import ConnectorError

        what = f"{tp.name}: endpoint {tp.extract.endpoint}"
        try:
            record = self.sample(tp)
        except ConnectorError as exc:
            found.add("endpoint", what, Result.PROBLEM, str(exc))
            return
        found.add(
            "endpoint",
            what,
            Result.OK if record else Result.WARNING,
            f"GET {tp.extract.endpoint}: " + ("records" if record else "no records yet"),
        )
        if record is not None:
            self.fields_row(found, tp, record)

    def touchpoint_target(self, found: _Found, tp: Touchpoint) -> None:
        from flowlink.connectors.base import ConnectorError

        if not tp.load.endpoint:
            return
        what = f"{tp.name}: endpoint {tp.load.endpoint}"
        try:
            response = self.source.request("GET", self.source.url(tp.load.endpoint))
        except ConnectorError as exc:
            found.add("endpoint", what, Result.PROBLEM, str(exc))
            return
        status = response.status_code
        if 200 <= status < 300:
            found.add("endpoint", what, Result.OK, f"GET {tp.load.endpoint}: HTTP {status}")
        elif status == 405:
            found.add(
                "endpoint",
                what,
                Result.WARNING,
                f"GET {tp.load.endpoint}: HTTP 405: it takes no GET, so it cannot be checked without writing",
            )
        else:
            found.add("endpoint", what, Result.PROBLEM, f"GET {tp.load.endpoint}: HTTP {status}: no such endpoint?")


class _Files(_App):
    source: FileSource

    def __init__(self, role: str, what: str, folder: str):
        from flowlink.connectors.file import FileSource

        super().__init__(role, what)
        self.source = FileSource(folder)

    @classmethod
    def open(cls, found: _Found, role: str, what: str, fields: dict[str, Any]) -> _Files | None:
        from flowlink.connectors.base import ConnectorError
        from flowlink.connectors.file import folder_from_connection

        try:
            folder = folder_from_connection(fields["host"], fields["extra"])
        except ConnectorError as exc:
            found.add("connection", what, Result.PROBLEM, str(exc))
            return None
        self = cls(role, what, folder)
        found.add("connection", what, Result.OK, f"type {fields['conn_type']}, folder {folder}")
        return self

    def connect(self, found: _Found) -> bool:
        folder = self.source.folder
        if not folder.is_dir():
            found.add("connect", self.what, Result.PROBLEM, f"folder not found: {folder}")
            return False
        access = os.R_OK if self.role == "source" else os.W_OK | os.X_OK
        if not os.access(folder, access):
            found.add(
                "connect",
                self.what,
                Result.PROBLEM,
                f"folder {folder} is not {'readable' if self.role == 'source' else 'writable'}",
            )
            return False
        found.add("connect", self.what, Result.OK, f"folder {folder}")
        return True

    def touchpoint(self, found: _Found, tp: Touchpoint) -> None:
        from flowlink.connectors.base import ConnectorError

        pattern = tp.extract.file or ""
        what = f"{tp.name}: file {pattern}"
        try:
            matches = [p for p in self.source.folder.glob(pattern) if p.is_file()]
        except (ValueError, OSError) as exc:
            found.add("file", what, Result.PROBLEM, f"bad pattern: {exc}")
            return
        if not matches:
            found.add("file", what, Result.WARNING, f"no file in {self.source.folder} matches {pattern!r} yet")
            return
        try:
            record = self.sample(tp)
        except ConnectorError as exc:
            found.add("file", what, Result.PROBLEM, str(exc))
            return
        found.add("file", what, Result.OK, f"{plural(len(matches), 'file')} match")
        self.fields_row(found, tp, record)

    # touchpoint_target: nothing; the folder's connect row says it is writable, the file is created on the first load


def load_workflow(spec_or_name: str) -> Workflow:
    """A spec file, or the newest published version of a workflow name."""
    from pathlib import Path

    from flowlink import publish
    from flowlink.spec import load_spec

    if Path(spec_or_name).is_file() or spec_or_name.endswith((".yaml", ".yml")):
        return load_spec(spec_or_name)
    if not publish.versions(spec_or_name):
        raise FlowlinkError(f"{spec_or_name!r} is neither a spec file nor a published workflow")
    return publish.published(spec_or_name).workflow_model()
