"""The one rule for incremental values (flowlink.ordering), alone and through real runs of the steps: extract,
transform and load (flowlink.sync) from a CSV/JSON Lines folder, the demo shop over HTTP on loopback, and SQLite
and PostgreSQL tables, into a file target, on a real store. Each run reads only what is newer than the watermark."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy.engine import make_url

from examples.demo_shop import DemoShop
from flowlink import publish, staging
from flowlink.connectors.file import FileSource, FileTarget
from flowlink.connectors.rest import RestSource
from flowlink.connectors.sql import SqlSource
from flowlink.mapping import output_types
from flowlink.ordering import newer, order_key
from flowlink.recordxml import record_keys
from flowlink.store import state
from flowlink.sync import RunContext, extract, load, transform
from flowlink.transform import Transformer

# -- the rule ---------------------------------------------------------------------------------


def test_numbers_compare_as_numbers_numeric_text_too():
    assert newer("10", "9") and newer(10, "9") and newer("10", 9.5) and not newer("9", "10")
    assert newer("1e3", "999") and newer(" 12 ", "3") and newer("-1", "-2.5") and newer(Decimal("0.3"), 0.1)
    assert order_key("10.50") == order_key(10.5) == order_key(Decimal("10.5"))  # equal: neither is newer
    assert not newer("10.50", 10.5) and not newer(10.5, "10.50")
    assert newer("8", "007") and not newer("007", "7") and not newer("7", "007")  # leading zeros: the same number


def test_timestamps_compare_as_instants_whatever_their_offset():
    assert newer("2026-01-01T09:00:00Z", "2026-01-01T10:00:00+02:00")  # 09:00 UTC is after 08:00 UTC
    assert not newer("2026-01-01T10:00:00+02:00", "2026-01-01T09:00:00Z")
    assert newer("2026-01-01T08:30:00", "2026-01-01T10:00:00+02:00")  # without an offset: UTC
    assert newer("2026-01-01 08:00:00.000001", "2026-01-01T08:00:00+00:00")
    assert newer("2025-12-31T23:00:00-02:00", "2026-01-01")  # 2026-01-01T01:00Z; a date is its midnight UTC
    assert order_key("2026-01-01") == order_key("2026-01-01T00:00:00Z") == order_key(dt.date(2026, 1, 1))
    assert order_key(dt.datetime(2026, 1, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == order_key(
        "2026-01-01T08:00:00Z"
    )
    assert newer("0001-01-01T00:00:00-14:00", "0001-01-01T00:00:00+14:00")  # no overflow at the ends of time
    assert newer("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z")


def test_other_text_as_text_and_kinds_in_a_fixed_order():
    assert newer("b", "a") and newer("a", "B") and newer("ab", "a")  # by code point
    assert newer("2026-13-45", "2026-01-01")  # not a date: text, after every timestamp
    values = [[1], "b", "2026-01-01T00:00:00Z", "10", None, 9, True, {"a": 1}, float("inf"), "a"]
    assert [repr(v) for v in sorted(values, key=order_key)] == [
        "None",
        "9",
        "'10'",
        "'2026-01-01T00:00:00Z'",
        "'a'",
        "'b'",
        "inf",
        "True",
        "[1]",
        "{'a': 1}",
    ]
    # nothing < numbers < timestamps < text (infinity and booleans are not numbers) < lists and objects


instants = st.datetimes(
    min_value=dt.datetime(1, 1, 2),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.one_of(
        st.none(),
        st.timezones(),
        st.builds(dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))),
    ),
)
mixed = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(allow_nan=False),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.decimals().map(str),
    instants,
    instants.map(lambda d: d.isoformat()),
    instants.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.dates(),
    st.dates().map(str),
    st.text(max_size=12),
    st.sampled_from(["", " ", "1e400000000000", "nan", "-0"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=500, deadline=None)
@given(a=mixed, b=mixed, c=mixed)
def test_the_rule_is_a_total_order_on_mixed_values(a, b, c):
    """Never raises; antisymmetric, transitive and total (exactly one of a>b, b>a, a~b) across every kind."""
    assert not (newer(a, b) and newer(b, a))
    if newer(a, b) and newer(b, c):
        assert newer(a, c)
    if not newer(a, b) and not newer(b, a) and not newer(b, c) and not newer(c, b):  # ties are transitive too
        assert not newer(a, c) and not newer(c, a)
    ordered = sorted([a, b, c], key=order_key)
    assert not newer(ordered[0], ordered[1]) and not newer(ordered[1], ordered[2])


@settings(max_examples=300, deadline=None)
@given(a=instants, b=instants)
def test_timestamps_in_any_offset_compare_as_their_instants(a, b):
    def utc(d):
        return d if d.tzinfo else d.replace(tzinfo=dt.UTC)

    assert newer(a.isoformat(), b.isoformat()) == (utc(a) > utc(b))
    assert newer(a.isoformat(sep=" "), b) == (utc(a) > utc(b))


@settings(max_examples=300, deadline=None)
@given(
    a=st.one_of(st.integers(), st.decimals(allow_nan=False, allow_infinity=False)),
    b=st.one_of(st.integers(), st.decimals(allow_nan=False, allow_infinity=False)),
)
def test_numeric_text_compares_as_its_number(a, b):
    assert newer(str(a), str(b)) == (a > b) == newer(a, str(b))


# -- through the steps ------------------------------------------------------------------------


class Flow:
    """A one-touchpoint workflow (items: key and incremental value to a JSON file), published in the test's
    FLOWLINK_HOME and run step by step as the operators do, on the test's store."""

    def __init__(self, home: Path, store, source_type: str, extract_spec: dict, open_source):
        self.home, self.store, self.open_source = home, store, open_source
        self.out = home / "out"
        self.out.mkdir(exist_ok=True)
        key, value = extract_spec["key"], extract_spec["incremental"]
        spec = {
            "name": "ordering", "source": {"type": source_type, "connection": "src"},
            "target": {"type": "file", "connection": "out"},
            "touchpoints": [{"name": "items", "extract": extract_spec, "load": {"file": "items.json", "key": "id"},
                             "mapping": [{"target": "id", "source": key}, {"target": "value", "source": value}]}],
        }  # fmt: skip
        self.spec = home / "ordering.yaml"
        self.spec.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        self.runs = 0

    def run(self) -> list[str]:
        """Extract, transform and load once; the keys this run extracted, in order."""
        art = publish.publish(self.spec).artifact
        tp = art.workflow_model().touchpoint("items")
        self.runs += 1
        ctx = RunContext(self.store, art, f"run-{self.runs}")
        extracted = extract(ctx, tp, self.open_source)
        transformed = transform(
            ctx, tp, Transformer(art.stylesheets["items"], output_types(tp), tp.extract.key), extracted
        )
        load(ctx, tp, lambda: FileTarget(self.out), transformed)
        return [k for path in extracted["batches"] for k in record_keys(etree.fromstring(staging.read_batch(path)))]

    @property
    def watermark(self):
        return state.watermark(self.store, "ordering", "items")

    def loaded(self) -> dict[str, str]:
        return {r["id"]: r["value"] for r in json.loads((self.out / "items.json").read_text())}


def test_csv_numbers_9_and_10_the_watermark_ends_at_10_and_a_second_run_reads_nothing(home, store):
    data = home / "data"
    data.mkdir()
    (data / "items.csv").write_text("id,seq\na,9\nb,10\nc,2\n", encoding="utf-8")
    flow = Flow(home, store, "file", {"file": "items.csv", "key": "id", "incremental": "seq"}, lambda: FileSource(data))
    assert flow.run() == ["c", "a", "b"]  # in the order of the rule: 2, 9, 10
    assert flow.watermark == "10"  # compared as numbers: as text "9" > "10" and "10" was read again on every run
    assert flow.run() == []
    (data / "items.csv").write_text("id,seq\na,9\nb,10\nc,2\nd,11\ne,100\nf,099\n", encoding="utf-8")
    assert flow.run() == ["d", "f", "e"]  # 11, 099 (= 99), 100
    assert flow.watermark == "100" and flow.run() == []
    assert flow.loaded() == {"a": "9", "b": "10", "c": "2", "d": "11", "e": "100", "f": "099"}


def test_iso_timestamps_with_different_offsets_compare_as_instants(home, store):
    data = home / "data"
    data.mkdir()

    def write(*rows):
        (data / "items.jsonl").write_text("".join(json.dumps({"id": i, "changed": c}) + "\n" for i, c in rows))

    rows = [
        ("a", "2026-01-01T10:00:00+02:00"),  # 08:00 UTC
        ("b", "2026-01-01T09:00:00Z"),  # 09:00 UTC: the newest
        ("c", "2026-01-01T08:30:00"),
    ]  # no offset: 08:30 UTC
    write(*rows)
    flow = Flow(
        home, store, "file", {"file": "items.jsonl", "key": "id", "incremental": "changed"}, lambda: FileSource(data)
    )
    assert flow.run() == ["a", "c", "b"]
    assert flow.watermark == "2026-01-01T09:00:00Z"  # as text "2026-01-01T10:00:00+02:00" would have won
    assert flow.run() == []
    write(
        *rows,
        ("d", "2026-01-01T09:30:00Z"),  # newer: as text it sorts before a's value and was never read
        ("e", "2026-01-01T11:15:00+02:00"),  # 09:15 UTC: newer
        ("f", "2026-01-01T10:45:00+02:00"),  # 08:45 UTC: older than the watermark
        ("g", "2026-01-01"),
    )  # midnight UTC: older
    assert flow.run() == ["e", "d"]
    assert flow.watermark == "2026-01-01T09:30:00Z" and flow.run() == []


@pytest.fixture
def shop():
    with DemoShop() as running:
        yield running


def test_numeric_strings_from_a_rest_source(home, store, shop):
    """The demo shop on loopback: customers whose `version` is a numeric string; it filters version__gt itself."""

    def put(i: int, version: str) -> None:
        body = {"customer_id": str(i), "email": f"c{i}@example.com", "version": version}
        assert requests.put(f"{shop.url}/customers/{i}", json=body, timeout=5).status_code in (200, 201)

    for i, version in [(1, "9"), (2, "10"), (3, "8.5")]:
        put(i, version)
    extract_spec = {
        "endpoint": "/customers",
        "key": "customer_id",
        "incremental": "version",
        "records_path": "records",
        "pagination": {"style": "next", "size_param": "per_page", "size": 2},
    }
    flow = Flow(home, store, "rest", extract_spec, lambda: RestSource(shop.url))
    assert sorted(flow.run()) == ["1", "2", "3"]
    assert flow.watermark == "10"
    assert flow.run() == []  # version__gt=10: nothing; with the watermark at "9" customer 2 came again every run
    put(3, "11")
    put(4, "9.99")  # older than the watermark: not read
    assert flow.run() == ["3"]
    assert flow.watermark == "11" and flow.run() == []


# -- SQL: the database compares, with the column's type; the watermark round-trips ----------------

SQL_KINDS = {
    # kind: (column type, first rows, the watermark after them, later rows of which only the first is newer)
    "integer": (sa.Integer, [9, 10, 2], 10, [11, 10]),
    "numeric": (
        sa.Numeric(10, 2),
        [Decimal("9.50"), Decimal("10.25"), Decimal("2")],
        None,
        [Decimal("10.50"), Decimal("10.20")],
    ),
    "timestamp": (
        sa.DateTime(timezone=True),
        [
            dt.datetime(2026, 1, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC),
            dt.datetime(2026, 1, 1, 8, 30, tzinfo=dt.UTC),
        ],
        None,
        [
            dt.datetime(2026, 1, 1, 11, 15, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.datetime(2026, 1, 1, 10, 45, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        ],
    ),
    "numbers-in-text": (sa.String(20), ["9", "10", "2"], "10", ["100", "9.5"]),  # as text "9.5" > "10"
}


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'source.db'}"
    # the session's time zone is not UTC: timestamps come back with +05:30 and go back into the query so
    return (
        make_url(request.getfixturevalue("pg_url"))
        .update_query_dict({"options": "-c timezone=Asia/Kolkata"})
        .render_as_string(hide_password=False)
    )


@pytest.mark.parametrize("kind", list(SQL_KINDS))
def test_sql_watermark_round_trip(home, store, sql_url, kind):
    """Integer, NUMERIC (read as exact text), timestamp (PostgreSQL: read in the session's offset) and text holding
    numbers: the watermark saved after a run, bound back as `since`, reads nothing the second time and exactly the
    newer rows the third."""
    column, first, mark, later = SQL_KINDS[kind]
    if kind == "timestamp" and sql_url.startswith("sqlite"):  # no timestamp type: text in one format, in UTC
        first, later = ([v.astimezone(dt.UTC).replace(tzinfo=None) for v in vs] for vs in (first, later))
    table = f"items_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(sql_url)
    md = sa.MetaData()
    items = sa.Table(
        table, md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("v", column)
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items.insert(), [{"id": i, "v": v} for i, v in enumerate(first, 1)])
    flow = Flow(home, store, "sql", {"table": table, "key": "id", "incremental": "v"}, lambda: SqlSource(sql_url))
    try:
        assert sorted(flow.run()) == ["1", "2", "3"]
        saved = flow.watermark
        assert order_key(saved) == order_key(max(first, key=order_key)), saved
        if mark is not None:
            assert saved == mark
        assert flow.run() == []
        with engine.begin() as conn:
            conn.execute(items.insert(), [{"id": 10 + i, "v": v} for i, v in enumerate(later)])
        assert flow.run() == ["10"]  # only the first of the later rows is newer than the watermark
        assert order_key(flow.watermark) == order_key(later[0]) and flow.run() == []
    finally:
        md.drop_all(engine)
        engine.dispose()
