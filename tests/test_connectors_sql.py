"""SqlSource / SqlTarget against a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from flowlink.connectors.base import ConnectorError, Source, Target, WriteResult
from flowlink.connectors.sql import ID_CHUNK, SqlSource, SqlTarget, sql_url_from_connection
from flowlink.spec import Extract, Load

T0 = dt.datetime(2024, 3, 1, 9, 0, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url):
    eng = sa.create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def source(db_url):
    src = SqlSource(db_url)
    yield src
    src.close()


@pytest.fixture
def target(db_url):
    tgt = SqlTarget(db_url)
    yield tgt
    tgt.close()


def make_orders(engine, rows: int = 10, name: str | None = None) -> str:
    """A fresh orders table with its own name; row i has id i, updated_at ties in pairs."""
    name = name or f"orders_{uuid.uuid4().hex[:10]}"
    md = sa.MetaData()
    table = sa.Table(
        name,
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("region", sa.String(10)),
        sa.Column("updated_at", sa.DateTime),
    )
    md.create_all(engine)
    if rows:
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {
                        "id": i,
                        "name": f"order {i}",
                        "amount": Decimal(i * 10) + Decimal("0.50"),
                        "region": "north" if i % 2 else "south",
                        # descending in id so the incremental order differs from the key order; ties in pairs
                        "updated_at": T0 + dt.timedelta(hours=(rows - i) // 2),
                    }
                    for i in range(1, rows + 1)
                ],
            )
    return name


def read_all(source, extract, **kwargs) -> list[dict]:
    kwargs.setdefault("batch_size", 100)
    return [r for batch in source.read(extract, **kwargs) for r in batch]


def fetch(engine, table: str) -> dict[int, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).mappings().all()
    return {r["id"]: dict(r) for r in rows}


def test_connectors_follow_the_protocols(db_url):
    assert isinstance(SqlSource(db_url), Source)
    assert isinstance(SqlTarget(db_url), Target)


def test_full_read_is_ordered_by_key_and_json_safe(engine, source):
    table = make_orders(engine)
    rows = read_all(source, Extract(table=table, key="id"))
    assert [r["id"] for r in rows] == list(range(1, 11))
    json.dumps(rows)  # plain JSON-safe values
    first = rows[0]
    assert set(first) == {"id", "name", "amount", "region", "updated_at"}
    assert first["name"] == "order 1"
    assert isinstance(first["updated_at"], str) and first["updated_at"].startswith("2024-03-01")
    if engine.dialect.name == "postgresql":
        assert first["amount"] == "10.50"  # Decimal -> exact string
        assert first["updated_at"] == (T0 + dt.timedelta(hours=4)).isoformat()


def test_incremental_since_orders_by_incremental_then_key(engine, source):
    table = make_orders(engine)
    extract = Extract(table=table, key="id", incremental="updated_at")
    everything = read_all(source, extract)
    # updated_at descends with id, in pairs: (9,10) oldest, then (7,8), ...
    assert [r["id"] for r in everything] == [9, 10, 7, 8, 5, 6, 3, 4, 1, 2]
    since = everything[3]["updated_at"]  # the (7, 8) pair's time
    newer = read_all(source, extract, since=since)
    assert [r["id"] for r in newer] == [5, 6, 3, 4, 1, 2]
    assert read_all(source, extract, since=everything[-1]["updated_at"]) == []


def test_newest_asks_the_database_for_the_newest_records(engine, source):
    table = make_orders(engine)
    extract = Extract(table=table, key="id", incremental="updated_at")
    assert [r["id"] for r in source.newest(extract, 3)] == [2, 1, 4]  # newest first: updated_at, then key, descending
    assert source.newest(extract, 3) == list(reversed(read_all(source, extract)))[:3]  # the records a run reads
    assert [r["id"] for r in source.newest(Extract(table=table, key="id"), 3)] == [1, 2, 3]  # no incremental: by key
    filtered = Extract(table=table, key="id", incremental="updated_at", filter="region = 'south'")
    assert [r["id"] for r in source.newest(filtered, 2)] == [2, 4]
    query = Extract(query=f"SELECT id, updated_at FROM {table}", key="id", incremental="updated_at")
    assert [r["id"] for r in source.newest(query, 20)] == [2, 1, 4, 3, 6, 5, 8, 7, 10, 9]
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET updated_at = NULL WHERE id = 2"))
    assert [r["id"] for r in source.newest(extract, 10)][-1] == 2  # no value: the oldest, as a run orders it
    with pytest.raises(ConnectorError, match="no such table"):
        source.newest(Extract(table="nothing_here", key="id"), 3)
    with pytest.raises(ConnectorError, match="extract.incremental 'changed' is not a column"):
        source.newest(Extract(table=table, key="id", incremental="changed"), 3)


def test_ids_reads_chosen_records_and_ignores_since(engine, source):
    table = make_orders(engine)
    extract = Extract(table=table, key="id", incremental="updated_at")
    latest = read_all(source, extract)[-1]["updated_at"]
    rows = read_all(source, extract, ids=["3", "7", "999"], since=latest)
    assert sorted(r["id"] for r in rows) == [3, 7]
    assert read_all(source, extract, ids=[]) == []


def test_ids_in_several_chunks_still_fill_batches(engine, source):
    count = ID_CHUNK * 2 + 100
    table = make_orders(engine, rows=count)
    ids = [str(i) for i in range(count, 0, -1)]
    batches = list(source.read(Extract(table=table, key="id"), ids=ids, batch_size=400))
    assert [len(b) for b in batches] == [400, 400, 300]
    assert sorted(r["id"] for b in batches for r in b) == list(range(1, count + 1))


def test_filter_is_appended(engine, source):
    table = make_orders(engine)
    rows = read_all(source, Extract(table=table, key="id", filter="region = 'north' OR id = 10"))
    assert [r["id"] for r in rows] == [1, 3, 5, 7, 9, 10]
    extract = Extract(table=table, key="id", incremental="updated_at", filter="region = 'south'")
    since = read_all(source, Extract(table=table, key="id", incremental="updated_at"))[3]["updated_at"]
    assert [r["id"] for r in read_all(source, extract, since=since)] == [6, 4, 2]


def test_query_mode_with_filter_incremental_and_ids(engine, source):
    table = make_orders(engine)
    extract = Extract(
        query=f"SELECT id, name, updated_at FROM {table} WHERE amount > 30;",
        key="id",
        incremental="updated_at",
        filter="id <> 5",
    )
    rows = read_all(source, extract)
    assert [r["id"] for r in rows] == [9, 10, 7, 8, 6, 3, 4]
    assert set(rows[0]) == {"id", "name", "updated_at"}
    assert [r["id"] for r in read_all(source, extract, since=rows[1]["updated_at"])] == [7, 8, 6, 3, 4]
    assert [r["id"] for r in read_all(source, extract, ids=["4", "5", "9"])] == [9, 4]


def test_batches_have_batch_size(engine, source):
    table = make_orders(engine)
    batches = list(source.read(Extract(table=table, key="id"), batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [r["id"] for b in batches for r in b] == list(range(1, 11))
    assert [len(b) for b in source.read(Extract(table=table, key="id"), batch_size=5)] == [5, 5]


def test_postgresql_reads_through_a_server_side_cursor(pg_url):
    engine = sa.create_engine(pg_url)
    table = make_orders(engine, rows=50)
    source = SqlSource(pg_url)
    batches = source.read(Extract(table=table, key="id"), batch_size=7)
    assert len(next(batches)) == 7  # the generator is now paused with the cursor open
    with engine.connect() as conn:
        queries = (
            conn.execute(
                sa.text(
                    "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database() "
                    "AND state = 'idle in transaction'"
                )
            )
            .scalars()
            .all()
        )
    assert any(q.startswith("FETCH FORWARD") for q in queries), queries
    assert sum(len(b) for b in batches) == 43
    source.close()
    engine.dispose()


def test_schema_qualified_table(engine, source, target):
    schema = "main" if engine.dialect.name == "sqlite" else f"s_{uuid.uuid4().hex[:8]}"
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    md = sa.MetaData(schema=schema)
    sa.Table("items", md, sa.Column("code", sa.String(20), primary_key=True), sa.Column("qty", sa.Integer))
    md.create_all(engine)
    load = Load(table=f"{schema}.items", key="code")
    assert all(r.ok for r in target.write(load, [{"code": "a", "qty": 1}, {"code": "b", "qty": 2}]))
    rows = read_all(source, Extract(table=f"{schema}.items", key="code"))
    assert rows == [{"code": "a", "qty": 1}, {"code": "b", "qty": 2}]


def test_upsert_twice_updates_without_duplicates(engine, target, source):
    table = make_orders(engine, rows=0)
    load = Load(table=table, key="id")
    first = [
        {"id": i, "name": f"n{i}", "amount": "1.25", "region": "east", "updated_at": "2024-05-01T10:00:00"}
        for i in range(1, 6)
    ]
    results = target.write(load, first)
    assert results == [WriteResult(key=str(i), ok=True, destination_id=str(i)) for i in range(1, 6)]
    second = [{"id": i, "name": f"changed {i}"} for i in (2, 4)] + [{"id": 6, "name": "n6"}]
    results = target.write(load, second)
    assert [(r.key, r.ok) for r in results] == [("2", True), ("4", True), ("6", True)]
    rows = fetch(engine, table)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6]
    assert rows[2]["name"] == "changed 2" and rows[4]["name"] == "changed 4" and rows[1]["name"] == "n1"
    assert rows[2]["region"] == "east"  # columns the record does not carry keep their values
    assert rows[6]["region"] is None
    read = {r["id"]: r for r in read_all(source, Extract(table=table, key="id"))}
    if engine.dialect.name == "postgresql":
        assert read[1]["amount"] == "1.25" and read[1]["updated_at"] == "2024-05-01T10:00:00"


def test_upsert_same_key_twice_in_one_batch_last_wins(engine, target):
    table = make_orders(engine, rows=0)
    results = target.write(
        Load(table=table, key="id"), [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 1, "name": "c"}]
    )
    assert [(r.key, r.ok) for r in results] == [("1", True), ("2", True), ("1", True)]
    rows = fetch(engine, table)
    assert {i: r["name"] for i, r in rows.items()} == {1: "c", 2: "b"}


def test_insert_reports_existing_keys_and_keeps_them(engine, target):
    table = make_orders(engine, rows=3)
    load = Load(table=table, key="id", method="insert")
    results = target.write(
        load, [{"id": 2, "name": "new 2"}, {"id": 11, "name": "new 11"}, {"id": 11, "name": "again"}]
    )
    assert results == [
        WriteResult(key="2", ok=False, error="already exists", exists=True),
        WriteResult(key="11", ok=True, destination_id="11"),
        WriteResult(key="11", ok=False, error="already exists", exists=True),
    ]
    rows = fetch(engine, table)
    assert rows[2]["name"] == "order 2" and rows[11]["name"] == "new 11"
    # the per-record path (after a failing batch) reports the same way
    results = target.write(load, [{"id": 3, "name": "x"}, {"id": 12, "name": None}, {"id": 13, "name": "ok"}])
    assert [(r.key, r.ok, r.exists, r.error if r.exists else None) for r in results] == [
        ("3", False, True, "already exists"),
        ("12", False, False, None),
        ("13", True, False, None),
    ]


def test_bad_records_fail_alone_and_the_rest_commit(engine, target):
    table = make_orders(engine, rows=0)
    load = Load(table=table, key="id")
    records = [
        {"id": 1, "name": "fine"},
        {"id": 2, "name": None, "region": "topsecret"},  # NOT NULL violation
        {"id": 3, "name": "fine too"},
    ]
    if engine.dialect.name == "postgresql":
        records.append({"id": 4, "name": "bad amount", "amount": "abc"})  # wrong type
        records.append({"id": 5, "name": "x" * 80})  # too long for varchar(50)
    results = target.write(load, records)
    assert [r.ok for r in results] == [True, False, True] + ([False, False] if len(records) > 3 else [])
    bad = results[1]
    assert bad.key == "2" and bad.destination_id is None
    assert "null" in bad.error.lower() and "name" in bad.error
    for r in results:
        if not r.ok:
            # first line only: no DETAIL line (it lists the row's values), no SQL, no parameters
            assert "\n" not in r.error and "topsecret" not in r.error and "INSERT" not in r.error
    if engine.dialect.name == "postgresql":
        assert results[3].error == 'invalid input syntax for type numeric: "abc"'
        assert "too long" in results[4].error
    assert sorted(fetch(engine, table)) == [1, 3]


def test_unknown_column_and_missing_key_fail_that_record(engine, target):
    table = make_orders(engine, rows=0)
    results = target.write(
        Load(table=table, key="id"),
        [
            {"id": 1, "name": "a", "colour": "red"},
            {"name": "no key"},
            {"id": 2, "name": "b"},
        ],
    )
    assert not results[0].ok and "'colour'" in results[0].error and table in results[0].error
    assert not results[1].ok and results[1].key == "" and "'id'" in results[1].error
    assert results[2].ok
    assert sorted(fetch(engine, table)) == [2]


def test_missing_table_is_a_connector_error(source, target):
    with pytest.raises(ConnectorError, match="no such table 'nope_missing'"):
        read_all(source, Extract(table="nope_missing", key="id"))
    with pytest.raises(ConnectorError, match="no such table 'nope_missing'"):
        target.write(Load(table="nope_missing", key="id"), [{"id": 1}])
    with pytest.raises(ConnectorError, match="cannot read the query"):
        read_all(source, Extract(query="SELECT * FROM nope_missing", key="id"))


def test_key_column_problems_are_connector_errors(engine, source, target):
    table = make_orders(engine, rows=1)
    with pytest.raises(ConnectorError, match="extract.incremental 'changed' is not a column"):
        read_all(source, Extract(table=table, key="id", incremental="changed"))
    with pytest.raises(ConnectorError, match="needs a primary key or unique constraint"):
        target.write(Load(table=table, key="region"), [{"id": 1, "region": "x"}])
    with pytest.raises(ConnectorError, match="load.key 'code' is not a column"):
        target.write(Load(table=table, key="code"), [{"code": 1}])


def test_binary_values_are_refused(engine, source):
    name = f"blobs_{uuid.uuid4().hex[:8]}"
    md = sa.MetaData()
    blobs = sa.Table(name, md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("data", sa.LargeBinary))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(blobs.insert(), [{"id": 1, "data": b"\x00\x01"}])
    with pytest.raises(ConnectorError, match="'data' holds binary data"):
        read_all(source, Extract(table=name, key="id"))


def test_unreachable_database_is_a_connector_error(tmp_path):
    url = "postgresql+psycopg://someone:hunter2@127.0.0.1:1/nowhere"
    with pytest.raises(ConnectorError, match="cannot connect to") as info:
        read_all(SqlSource(url), Extract(table="t", key="id"))
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConnectorError, match="cannot connect to"):
        SqlTarget(url).write(Load(table="t", key="id"), [{"id": 1}])
    with pytest.raises(ConnectorError, match="invalid database URL"):
        SqlSource("not a url")


def test_sql_url_from_connection_sqlite(tmp_path):
    path = tmp_path / "app data.db"
    url = sql_url_from_connection("sqlite", str(path), None, None, None, None, {})
    engine = sa.create_engine(url)
    table = make_orders(engine, rows=2)
    engine.dispose()
    assert [r["id"] for r in read_all(SqlSource(url), Extract(table=table, key="id"))] == [1, 2]
    assert (
        sql_url_from_connection("sqlite", "x.db", None, None, None, None, {"sqlalchemy_url": "sqlite:///y.db"})
        == "sqlite:///y.db"
    )
    with pytest.raises(ConnectorError, match="host = the path"):
        sql_url_from_connection("sqlite", "", None, None, None, None, {})


def test_sql_url_from_connection_postgres_escapes_the_password(pg_url):
    real = make_url(pg_url)
    assert any(c in real.password for c in ":@/%")
    url = sql_url_from_connection(
        "postgres",
        real.host,
        real.username,
        real.password,
        real.port,
        real.database,
        {"sslmode": "disable", "cursor": "dictcursor"},
    )
    assert url.startswith("postgresql+psycopg://") and "sslmode=disable" in url and "cursor" not in url
    source = SqlSource(url)
    engine = sa.create_engine(url)
    table = make_orders(engine, rows=2)
    engine.dispose()
    assert [r["id"] for r in read_all(source, Extract(table=table, key="id"))] == [1, 2]
    source.close()
