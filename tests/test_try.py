"""`flowlink try SPEC TOUCHPOINT`: live sample records through a touchpoint's mapping, against real sources (the demo
ERP on SQLite and on PostgreSQL, json-server from npm, a folder of files). Each test checks the source and output
fields of given records, and that nothing was written: no watermark, bucket or data-log row, snapshot or batch file,
and nothing reached the target. Connections are AIRFLOW_CONN_* variables, as in tests/test_check.py."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from tests.airflow_helpers import REPO
from tests.fixtures import copy_erp_to_postgres
from tests.live_server import free_port

EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"
COUNTRIES = {"DE": "Germany", "FR": "France", "US": "United States"}


def conn(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def flowlink_try(home: Path, *args: str) -> subprocess.CompletedProcess:
    """`flowlink try ARGS` in a subprocess with this test's environment."""
    env = {**os.environ, "FLOWLINK_HOME": str(home), "COLUMNS": "250"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "flowlink.cli", "try", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return done


def tried(home: Path, *args: str, status: int = 0) -> dict:
    done = flowlink_try(home, *args, "--json")
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


def by_key(result: dict) -> dict[str, dict]:
    return {r["key"]: r for r in result["records"]}


def nothing_recorded(home: Path, workflow: str, touchpoints: list[str]) -> None:
    """No watermark, bucket row, data-log row, snapshot or batch file for the workflow."""
    import sqlalchemy as sa

    from flowlink.store import Store, bucket, snapshots, state, tables

    assert not (home / "staging").exists() or not any((home / "staging").rglob("*.xml"))
    store = Store.open()
    try:
        assert bucket.count(store, workflow) == 0
        assert snapshots.runs(store, workflow) == []
        with store.engine.connect() as c:
            for table in (tables.data_log, tables.steps, tables.watermarks):
                assert c.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0, table.name
        for tp in touchpoints:
            assert state.watermark(store, workflow, tp) is None
    finally:
        store.dispose()


def customer(row: dict) -> dict:
    """The example's customers mapping, by hand."""
    return {
        "customer_id": str(row["id"]),
        "name": f"{row['first_name']} {row['last_name']}",
        "email": row["email"].strip().lower(),
        "country": COUNTRIES.get(row["country_code"], "Other"),
        "channel": "erp",
    }


@pytest.fixture
def erp(tmp_path):
    path = tmp_path / "erp.db"
    create_erp(path, customers=12, orders=6)
    return path


def erp_rows(erp: Path, sql: str) -> list[dict]:
    with sqlite3.connect(erp) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql)]


@pytest.fixture
def shop():
    s = DemoShop()
    s.start()
    yield s
    s.stop()


# ---------------------------------------------------------------- SQL sources


def test_the_newest_records_and_chosen_ids_of_a_sqlite_source(home, airflow_db, erp, shop, monkeypatch):
    conn(monkeypatch, "demo_erp", conn_type="sqlite", host=str(erp))
    conn(monkeypatch, "demo_shop", conn_type="http", host=shop.url)
    newest = erp_rows(erp, "SELECT * FROM customers ORDER BY updated_at DESC, id DESC LIMIT 3")

    result = tried(home, EXAMPLE, "customers", "--limit", "3")
    assert (result["workflow"], result["version"], result["touchpoint"]) == ("erp_to_shop", None, "customers")
    assert result["chosen"] == "the newest 3 records by updated_at"
    assert result["source"] == "sql source demo_erp: table customers"
    assert "<xsl:stylesheet" in result["stylesheet"]
    assert [r["key"] for r in result["records"]] == [str(r["id"]) for r in newest]
    for record, row in zip(result["records"], newest, strict=True):
        assert record["status"] == "ready" and record["message"] is None
        assert record["source"] == row
        assert record["output"] == [customer(row)]
        assert record["requests"] == [
            {"target": "rest", "method": "PUT", "where": f"/customers/{row['id']}", "body": customer(row), "note": ""}
        ]

    # chosen ids, in the order given; one the source does not have fails as a resync's would
    result = tried(home, EXAMPLE, "orders", "--ids", "4", "99", "2", status=1)
    assert [(r["key"], r["status"]) for r in result["records"]] == [("4", "ready"), ("2", "ready"), ("99", "failed")]
    orders = {str(r["id"]): r for r in erp_rows(erp, "SELECT * FROM orders")}
    four = by_key(result)["4"]
    assert four["source"] == orders["4"]
    assert four["output"] == [
        {
            "order_id": "4",
            "customer_id": str(orders["4"]["customer_id"]),
            "total": f"{orders['4']['amount']:.2f}",
            "status": {"N": "new", "S": "shipped", "C": "cancelled"}[orders["4"]["status"]],
        }
    ]
    assert by_key(result)["99"] == {
        "key": "99",
        "status": "failed",
        "step": "extract",
        "message": "not found in the source",
        "source": None,
        "output": [],
        "requests": [],
    }

    # the table for people: source and output side by side, what would be sent; the failure on stderr, one line
    done = flowlink_try(home, EXAMPLE, "orders", "--ids", "4", "99")
    assert done.returncode == 1
    assert done.stderr == "flowlink try: record 99 failed in extract: not found in the source\n"
    assert "source field" in done.stdout and "output field" in done.stdout
    assert f"would send: PUT /orders/4 {json.dumps(four['output'][0])}" in done.stdout
    assert done.stdout.rstrip().endswith("nothing was sent and no watermark moved")

    # a published workflow by its name: its newest version
    from flowlink import publish

    publish.publish(EXAMPLE)
    published = tried(home, "erp_to_shop", "customers", "--limit", "3")
    assert published["version"] == 1
    assert [r["output"] for r in published["records"]] == [[customer(row)] for row in newest]

    assert shop.stats()["writes"] == {r: {"total": 0, "ids": {}} for r in shop.keys}  # the target: not a request
    nothing_recorded(home, "erp_to_shop", ["customers", "orders"])


def test_a_postgresql_source_and_one_that_cannot_be_reached(home, airflow_db, erp, pg_url, monkeypatch):
    import sqlalchemy as sa

    url = sa.engine.make_url(pg_url)
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS orders")
        c.exec_driver_sql("DROP TABLE IF EXISTS customers")
    engine.dispose()
    copy_erp_to_postgres(erp, url)
    fields = {
        "conn_type": "postgres",
        "host": url.host,
        "port": url.port,
        "login": url.username,
        "password": url.password,
        "schema": url.database,
    }
    conn(monkeypatch, "demo_erp", **fields)
    newest = erp_rows(erp, "SELECT * FROM customers ORDER BY updated_at DESC, id DESC LIMIT 4")

    done = flowlink_try(home, EXAMPLE, "customers", "--limit", "4", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [r["source"] for r in result["records"]] == newest
    assert [r["output"] for r in result["records"]] == [[customer(row)] for row in newest]
    assert url.password not in done.stdout

    # a server that does not answer: said at once, in one line, without the password
    conn(monkeypatch, "demo_erp", **{**fields, "port": free_port()})
    done = flowlink_try(home, EXAMPLE, "customers")
    assert done.returncode == 1 and done.stdout == ""
    assert (
        done.stderr.startswith("flowlink try: cannot connect to postgresql+psycopg://") and done.stderr.count("\n") == 1
    )
    assert url.password not in done.stderr and "***" in done.stderr
    nothing_recorded(home, "erp_to_shop", ["customers"])


# ---------------------------------------------------------------- a REST source


def test_a_rest_source_and_a_rest_target_that_is_never_asked(home, airflow_db, tmp_path, monkeypatch):
    from tests.npm_servers import JsonServer

    people = [
        {"id": n, "first": f"P{n}", "mail": f" P{n}@Example.com ", "changed": f"2024-05-{n:02d}T10:00:00Z"}
        for n in range(1, 8)
    ]
    spec = tmp_path / "people.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "people",
                "source": {"type": "rest", "connection": "people_api"},
                "target": {"type": "rest", "connection": "people_api"},
                "touchpoints": [
                    {
                        "name": "people",
                        "extract": {"endpoint": "/people", "key": "id", "incremental": "changed"},
                        "mapping": [
                            {"target": "ref", "source": "id", "type": "integer"},
                            {"target": "email", "source": "mail", "trim": True, "case": "lower"},
                        ],
                        "load": {
                            "endpoint": "/contacts",
                            "method": "create_or_update",
                            "key": "ref",
                            "id_field": "id",
                            "match": {"endpoint": "/contacts?email={email}"},
                        },
                    },
                    {
                        "name": "missing",
                        "extract": {"endpoint": "/nothing-here", "key": "id"},
                        "mapping": [{"target": "ref", "source": "id"}],
                        "load": {"endpoint": "/contacts", "key": "ref"},
                    },
                ],
            }
        )
    )
    with JsonServer(tmp_path / "json-server", {"people": people, "contacts": []}, quiet=False) as api:
        conn(monkeypatch, "people_api", conn_type="http", host=api.url, password="s3cret-pw", login="me")
        result = tried(home, spec, "people", "--limit", "2")
        assert [r["key"] for r in result["records"]] == ["7", "6"]
        seven = by_key(result)["7"]
        assert seven["source"] == people[6]
        assert seven["output"] == [{"ref": 7, "email": "p7@example.com"}]  # typed as the load reads it
        assert seven["requests"] == [
            {
                "target": "rest",
                "method": "POST",
                "where": "/contacts",
                "body": {"ref": 7, "email": "p7@example.com"},
                "note": "first GET /contacts?email=p7%40example.com: a record found is updated (PUT /contacts/<its "
                "id>), none found is created (POST /contacts)",
            }
        ]

        # an endpoint the service does not have: its answer, in one line
        done = flowlink_try(home, spec, "missing")
        assert done.returncode == 1
        assert done.stderr.startswith(f"flowlink try: {api.url}: GET /nothing-here: HTTP 404") and (
            done.stderr.count("\n") == 1
        )
        assert "s3cret-pw" not in done.stdout + done.stderr

        asked = [(method, path) for method, path, _ in api.requests(under="/") if path != "/db"]  # /db: readiness
        assert {path.split("?")[0] for _, path in asked} == {"/people", "/nothing-here"}
        assert {method for method, _ in asked} == {"GET"}  # nothing went to /contacts, not even its look-up
        assert api.records("contacts") == []

    # the service gone: said at once
    done = flowlink_try(home, spec, "people")
    assert done.returncode == 1 and "connection refused" in done.stderr and done.stderr.count("\n") == 1
    nothing_recorded(home, "people", ["people", "missing"])


# ---------------------------------------------------------------- a file source, beside a real run

BREAKS_ON_3 = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/">
    <records>
      <xsl:for-each select="records/record">
        <xsl:if test="id = 3"><xsl:message terminate="yes">order 3 is not wanted</xsl:message></xsl:if>
        <xsl:if test="id != 5">
          <record><xsl:copy-of select="@key"/><id><xsl:value-of select="id"/></id>
            <qty><xsl:value-of select="qty"/></qty><note><xsl:value-of select="note"/></note></record>
        </xsl:if>
      </xsl:for-each>
    </records>
  </xsl:template>
</xsl:stylesheet>
"""


def test_a_file_source_gives_each_record_the_message_a_run_gives(home, store, tmp_path):
    from flowlink import publish, trial
    from flowlink.connectors.file import FileSource, FileTarget
    from flowlink.mapping import output_types
    from flowlink.store import bucket
    from flowlink.sync import RecordsFailed, RunContext, extract, load, transform
    from flowlink.transform import Transformer

    data, out = tmp_path / "in", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    lines = [{"id": n, "qty": str(n * 2), "note": f"n{n}", "seq": n} for n in range(1, 7)]
    lines[3]["qty"] = "four"  # id 4: not an integer
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"id": 7, "seq": 7\n'  # line 7: not JSON
    (data / "orders.jsonl").write_text(text)
    (tmp_path / "orders.xsl").write_text(BREAKS_ON_3)
    spec = tmp_path / "files.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "files",
                "source": {"type": "file", "connection": "files_in"},
                "target": {"type": "file", "connection": "files_out"},
                "touchpoints": [
                    {
                        "name": "orders",
                        "extract": {"file": "orders.jsonl", "key": "id", "incremental": "seq"},
                        "xslt": "orders.xsl",
                        "load": {"file": "orders.csv", "key": "id"},
                    }
                ],
            }
        )
    )
    spec_with_types = yaml.safe_load(spec.read_text())
    subject = trial.subject(str(spec), "orders")
    assert subject.version is None and subject.stylesheet == BREAKS_ON_3

    result = trial.try_touchpoint(subject, lambda: FileSource(data), limit=10)
    records = {r.key: r for r in result.records}
    assert [r.key for r in result.records][:6] == ["6", "5", "4", "3", "2", "1"]  # newest first by seq
    assert records["6"].source == lines[5] and records["6"].output == [{"id": "6", "qty": "12", "note": "n6"}]
    assert records["6"].requests[0].method == "upsert" and records["6"].requests[0].where == "orders.csv"
    assert (records["5"].status, records["5"].step) == ("skipped", "transform")
    assert (records["3"].status, records["3"].step) == ("failed", "transform")
    assert "order 3 is not wanted" in (records["3"].message or "")
    assert json.loads(json.dumps(result.as_dict()))["records"][0]["key"] == "6"  # JSON as it is
    assert list(out.iterdir()) == []
    nothing_recorded(home, "files", ["orders"])

    # a real run of the same: the bucket holds the try's messages
    art = publish.publish(spec).artifact
    tp = art.workflow_model().touchpoint("orders")
    ctx = RunContext(store, art, "run-1")
    transformer = Transformer(art.stylesheets["orders"], output_types(tp), tp.extract.key)
    extracted = extract(ctx, tp, lambda: FileSource(data))
    with pytest.raises(RecordsFailed):
        load(ctx, tp, lambda: FileTarget(out), transform(ctx, tp, transformer, extracted))
    kept = {r["source_id"]: (r["status"], r["message"]) for r in bucket.rows(store, "files", limit=100)}
    assert {r.key: (r.status.value, r.message) for r in result.records if r.status != "ready"} == {
        k: v for k, v in kept.items() if v[0] != "success"
    }

    # typed output: a value that does not fit its type fails as the load would fail it
    typed = tmp_path / "typed.yaml"
    spec_with_types["touchpoints"][0].pop("xslt")
    spec_with_types["touchpoints"][0]["mapping"] = [
        {"target": "id", "source": "id"},
        {"target": "qty", "source": "qty", "type": "integer"},
    ]
    spec_with_types["name"] = "typed"
    typed.write_text(yaml.safe_dump(spec_with_types))
    result = trial.try_touchpoint(trial.subject(str(typed), "orders"), lambda: FileSource(data), ids=["4", "2"])
    assert [(r.key, r.status, r.message) for r in result.records] == [
        ("4", "failed", "transform: field 'qty': 'four' is not an integer"),
        ("2", "ready", None),
    ]
    assert result.records[1].output == [{"id": "2", "qty": 4}]


# ---------------------------------------------------------------- bad input


def test_bad_input_is_one_clear_line(home, airflow_db, erp, tmp_path, monkeypatch):
    conn(monkeypatch, "demo_erp", conn_type="sqlite", host=str(erp))
    for limit in ("0", "101", "many"):
        done = flowlink_try(home, EXAMPLE, "customers", "--limit", limit)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.splitlines()[-1].startswith("flowlink try: error: argument --limit")
    assert "got 101" in flowlink_try(home, EXAMPLE, "customers", "--limit", "101").stderr
    done = flowlink_try(home, EXAMPLE, "customers", "--limit", "2", "--ids", "1")
    assert done.returncode == 2 and "not allowed with argument" in done.stderr

    cases = {
        (str(EXAMPLE), "invoices"): "flowlink try: workflow 'erp_to_shop' has no touchpoint 'invoices' (it has: "
        "customers, orders)\n",
        ("no_such_workflow", "customers"): "flowlink try: 'no_such_workflow' is neither a spec file nor a published "
        "workflow\n",
    }
    for args, message in cases.items():
        done = flowlink_try(home, *args)
        assert (done.returncode, done.stderr) == (1, message)

    # a spec that does not validate: each problem at its YAML path, as `flowlink validate` shows them
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("key: id\n", "key: id\n      colour: red\n", 1))
    done = flowlink_try(home, bad, "customers")
    assert done.returncode == 1
    assert done.stderr == f"flowlink try: {bad}: touchpoints[0].extract.colour: unknown key\n"

    # a missing connection, a missing database file, a missing table
    monkeypatch.delenv("AIRFLOW_CONN_DEMO_ERP")
    done = flowlink_try(home, EXAMPLE, "customers")
    assert done.returncode == 1 and done.stderr.startswith("flowlink try: Airflow has no connection 'demo_erp'")
    conn(monkeypatch, "demo_erp", conn_type="sqlite", host=str(tmp_path / "gone.db"))
    done = flowlink_try(home, EXAMPLE, "customers")
    assert done.returncode == 1 and "no database file" in done.stderr and not (tmp_path / "gone.db").exists()
    conn(monkeypatch, "demo_erp", conn_type="sqlite", host=str(erp))
    done = flowlink_try(home, spec_table(tmp_path, "clients"), "customers")
    assert (done.returncode, done.stderr.count("\n")) == (1, 1) and "no such table 'clients'" in done.stderr
    nothing_recorded(home, "erp_to_shop", ["customers"])


def spec_table(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "other_table.yaml"
    path.write_text(EXAMPLE.read_text().replace("table: customers", f"table: {table}", 1))
    return path
