"""What a touchpoint reads and writes, named as OpenLineage datasets, and its mapping as column lineage: plain data,
no Airflow import (flowlink_airflow.lineage hands it to Airflow's OpenLineage provider; a query source is read with
OpenLineage's SQL parser, installed with the provider).

Names follow https://openlineage.io/docs/spec/naming where it covers the store, and the same pattern where not::

    PostgreSQL  postgres://{host}:{port}       {database}.{schema}.{table}   (schema public unless the table names one)
    SQLite      sqlite://{database file}       {table}                       (the file's absolute path)
    other SQL   {backend}://{host}:{port}      {database}.{table}
    REST        {scheme}://{host}:{port}       {base URL path}{endpoint}     (no query string)
    file        file                           {folder}/{file or pattern}    (the folder's absolute path)

Only a connection's type, host, port, schema (database) and extra are read; a login or password never is.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from flowlink.spec import Extract, Load, MappingRule, Touchpoint


class Dataset(NamedTuple):
    namespace: str
    name: str


class InputField(NamedTuple):
    """One source field a target field (or, INDIRECT, the whole output) depends on."""

    dataset: Dataset
    field: str
    type: str  # DIRECT | INDIRECT
    subtype: str  # IDENTITY | TRANSFORMATION | FILTER
    description: str


@dataclass(frozen=True)
class Source:
    """The datasets a touchpoint's extract reads. ``columns``: for a query, each result column -> the table columns
    it comes from; None: every field is a column of the one dataset."""

    datasets: list[Dataset]
    columns: dict[str, list[tuple[Dataset, str]]] | None = field(default=None)

    def origins(self, name: str) -> list[tuple[Dataset, str]]:
        if self.columns is not None:
            return self.columns.get(name, [])
        return [(self.datasets[0], name)] if len(self.datasets) == 1 else []


def source(app_type: str, conn: dict[str, Any], extract: Extract) -> Source:
    """What ``extract`` reads through the connection ``conn`` (conn_type, host, port, schema, extra)."""
    if app_type == "sql":
        url = _sql_url(conn)
        if extract.table:
            return Source([sql_dataset(url, extract.table)])
        return _query_source(url, extract.query or "")
    if app_type == "rest":
        return Source([rest_dataset(conn, extract.endpoint or "")])
    return Source([file_dataset(conn, extract.file or "")])


def target(app_type: str, conn: dict[str, Any], load: Load) -> Dataset:
    """What ``load`` writes through the connection ``conn``."""
    if app_type == "sql":
        return sql_dataset(_sql_url(conn), load.table or "")
    if app_type == "rest":
        return rest_dataset(conn, load.endpoint or "")
    return file_dataset(conn, load.file or "")


def _sql_url(conn: dict[str, Any]) -> Any:
    import sqlalchemy as sa

    from flowlink.connectors.sql import sql_url_from_connection

    # no login, no password: the URL is only read for its backend, host, port and database
    return sa.engine.make_url(sql_url_from_connection(**_address(conn)))


def _address(conn: dict[str, Any]) -> dict[str, Any]:
    keys = ("conn_type", "host", "port", "schema", "extra")
    return {**{k: conn.get(k) for k in keys}, "login": None, "password": None}


def sql_namespace(url: Any) -> str:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return "sqlite://" + os.path.abspath(url.database or ":memory:")
    scheme = "postgres" if backend == "postgresql" else backend
    port = url.port or {"postgres": 5432, "mysql": 3306}.get(scheme)
    host = url.host or "localhost"
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def sql_dataset(url: Any, table: str) -> Dataset:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return Dataset(sql_namespace(url), table)
    if backend == "postgresql":
        parts = table.split(".")
        full = (
            [url.database, "public", *parts]
            if len(parts) == 1
            else [url.database, *parts]
            if len(parts) == 2
            else parts
        )
        return Dataset(sql_namespace(url), ".".join(str(p) for p in full))
    return Dataset(sql_namespace(url), f"{url.database}.{table}" if url.database else table)


def _query_source(url: Any, query: str) -> Source:
    """The tables a query reads and where each of its columns comes from (OpenLineage's SQL parser, installed with
    the provider); nothing if it cannot be parsed."""
    try:
        from openlineage_sql import parse
    except ImportError:
        return Source([], {})
    dialect = {"postgresql": "postgres"}.get(url.get_backend_name(), url.get_backend_name())
    try:
        meta = parse([query], dialect=dialect, default_schema=None)
    except Exception:  # any parser failure: the query's tables are unknown, the run goes on
        meta = None
    if meta is None:
        return Source([], {})
    datasets = {t.qualified_name: sql_dataset(url, t.qualified_name) for t in meta.in_tables}
    columns: dict[str, list[tuple[Dataset, str]]] = {}
    for lineage in meta.column_lineage:
        for origin in lineage.lineage:
            table = origin.origin.qualified_name if origin.origin else None
            if table in datasets:
                columns.setdefault(lineage.descendant.name, []).append((datasets[table], origin.name))
    return Source(list(datasets.values()), columns)


def rest_dataset(conn: dict[str, Any], endpoint: str) -> Dataset:
    from flowlink.connectors.rest import rest_settings_from_connection

    base = urllib.parse.urlsplit(rest_settings_from_connection(**_address(conn))["base_url"])
    port = base.port or {"http": 80, "https": 443}[base.scheme]
    path = "/" + "/".join(p for p in (base.path.strip("/"), endpoint.split("?", 1)[0].strip("/")) if p)
    return Dataset(f"{base.scheme}://{(base.hostname or '').lower()}:{port}", path)


def file_dataset(conn: dict[str, Any], file: str) -> Dataset:
    from flowlink.connectors.file import folder_from_connection

    folder = os.path.abspath(folder_from_connection(conn.get("host"), conn.get("extra")))
    return Dataset("file", f"{folder.rstrip('/')}/{file}")


# ---------------------------------------------------------------- the mapping as column lineage


def column_lineage(tp: Touchpoint, src: Source) -> tuple[dict[str, list[InputField]], list[InputField]]:
    """Each target field -> the source fields its mapping rule reads (a constant reads none; a touchpoint with its
    own XSLT names no fields), and what chooses the records for the whole output (the incremental field)."""
    fields: dict[str, list[InputField]] = {}
    for rule in tp.mapping or []:
        names = [rule.source] if rule.source is not None else xpath_fields(rule.xpath or "")
        subtype, description = _transformation(rule)
        found = [
            InputField(dataset, column, "DIRECT", subtype, description)
            for name in names
            for dataset, column in src.origins(name)
        ]
        if found:
            fields[rule.target] = found
    chosen = []
    if tp.extract.incremental:
        chosen = [
            InputField(dataset, column, "INDIRECT", "FILTER", "records changed since the last run")
            for dataset, column in src.origins(tp.extract.incremental)
        ]
    return fields, chosen


def _transformation(rule: MappingRule) -> tuple[str, str]:
    steps = [f"xpath {rule.xpath}"] if rule.xpath is not None else []
    steps += ["trim"] * rule.trim + [f"{rule.case} case"] * bool(rule.case)
    if rule.lookup is not None:
        steps.append(f"lookup of {len(rule.lookup)} values")
    if rule.default is not None:
        steps.append(f"default {rule.default!r}")
    return ("TRANSFORMATION", ", ".join(steps)) if steps else ("IDENTITY", "copy")


def target_schema(tp: Touchpoint) -> list[tuple[str, str]]:
    """(field, type) of every field the mapping writes; [] for a touchpoint with its own XSLT."""
    return [(rule.target, rule.type) for rule in tp.mapping or []]


_XPATH_TOKEN = re.compile(
    r"""\s*(?:
    (?P<literal>"[^"]*"|'[^']*')
    |(?P<number>\d+(?:\.\d*)?|\.\d+)
    |(?P<variable>\$[^\W\d][\w.-]*(?::[^\W\d][\w.-]*)?)
    |(?P<name>[^\W\d][\w.-]*(?::(?:[^\W\d][\w.-]*|\*))?)
    |(?P<symbol>//|::|\.\.|!=|<=|>=|[/()\[\]@,|+\-=<>*.])
    )""",
    re.VERBOSE,
)
_OPERATORS = {"/", "//", "|", "+", "-", "=", "!=", "<", "<=", ">", ">="}


def xpath_fields(expr: str) -> list[str]:
    """The record fields an XPath 1.0 expression reads: each relative location path's first step that names a child
    element (``concat(first_name, ' ', last_name)`` -> first_name, last_name; ``format-number(amount, '0.00')`` ->
    amount). Names after ``/`` or ``@``, inside predicates, of functions, variables and operators are not fields;
    an expression that cannot be read names none. Tokens are told apart as XPath 1.0 section 3.7 says."""
    tokens: list[tuple[str, str]] = []
    pos, text = 0, expr.rstrip()
    while pos < len(text):
        match = _XPATH_TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            return []
        tokens.append((match.lastgroup, match[match.lastgroup]))
        pos = match.end()
    found: list[str] = []
    roles: list[str] = []  # each token's role: operand, operator, function, axis or open ((, [, ",", @, ::)
    brackets: list[str] = []
    for i, (kind, value) in enumerate(tokens):
        after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        role = _role(kind, value, roles[-1] if roles else "", after)
        if role == "operand" and kind == "name" and ":" not in value and "[" not in brackets:
            child_axis = i >= 2 and tokens[i - 1][1] == "::" and tokens[i - 2][1] == "child"
            if _starts_path(tokens, roles, i - 2 if child_axis else i):
                found.append(value)
        if value in ("(", "["):
            brackets.append(value)
        elif value in (")", "]") and brackets:
            brackets.pop()
        roles.append(role)
    return list(dict.fromkeys(found))


def _starts_path(tokens: list[tuple[str, str]], roles: list[str], i: int) -> bool:
    """Whether token i begins a relative location path: one whose context is the record."""
    return i == 0 or (roles[i - 1] in ("operator", "open") and tokens[i - 1][1] not in ("/", "//", "@", "::"))


def _role(kind: str, value: str, prev: str, after: str) -> str:
    if kind == "name":
        if prev == "operand":
            return "operator"  # and, or, mod, div
        return "function" if after == "(" else "axis" if after == "::" else "operand"
    if value == "*":
        return "operator" if prev == "operand" else "operand"
    if kind in ("literal", "number", "variable") or value in (")", "]", ".", ".."):
        return "operand"
    return "operator" if value in _OPERATORS else "open"
