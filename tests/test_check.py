"""`flowlink check`: connections, connecting, tables, endpoints, file patterns and fields, against real applications
on loopback (SQLite and PostgreSQL databases, the demo shop, a folder). Connections are AIRFLOW_CONN_* variables here;
tests/test_live_runs.py checks one added with `airflow connections add` to a running Airflow."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from tests.airflow_helpers import REPO
from tests.live_server import free_port

EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"


def conn(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def run_check(home: Path, target: str | Path) -> tuple[int, dict, str]:
    """`flowlink check TARGET --json` in a subprocess with this test's environment: (exit status, JSON, stderr)."""
    env = {**os.environ, "FLOWLINK_HOME": str(home), "COLUMNS": "250"}
    done = subprocess.run(
        [sys.executable, "-m", "flowlink.cli", "check", str(target), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout) if done.stdout else {}, done.stderr


def rows(checks) -> dict[tuple[str, str], tuple[str, str]]:
    """(check, what) -> (result, detail) of check.check()'s rows."""
    return {(c.check, c.what): (c.result.value, c.detail) for c in checks}


def spec(tmp_path: Path, *, source: dict, target: dict, touchpoints: list[dict], name: str = "checked") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "source": source, "target": target, "touchpoints": touchpoints}))
    return path


def checked(path: Path):
    from flowlink.check import check
    from flowlink.spec import load_spec

    return check(load_spec(path))


@pytest.fixture
def erp(tmp_path):
    path = tmp_path / "erp.db"
    create_erp(path, customers=5, orders=4)
    return path


@pytest.fixture
def shop():
    s = DemoShop()
    s.start()
    yield s
    s.stop()


CUSTOMERS = {
    "name": "customers",
    "extract": {"table": "customers", "key": "id", "incremental": "updated_at"},
    "mapping": [
        {"target": "customer_id", "source": "id"},
        {"target": "name", "xpath": "concat(first_name, ' ', last_name)"},
        {"target": "email", "source": "email"},
    ],
    "load": {"endpoint": "/customers", "key": "customer_id"},
}


# ---------------------------------------------------------------- a setup that works


def test_the_example_with_its_erp_and_shop_passes(home, airflow_db, erp, shop, monkeypatch):
    conn(monkeypatch, "demo_erp", conn_type="sqlite", host=str(erp))
    conn(monkeypatch, "demo_shop", conn_type="http", host=shop.url)
    status, report, _ = run_check(home, EXAMPLE)
    assert status == 0 and report["ok"] is True, report
    got = {(c["check"], c["what"]): c["result"] for c in report["checks"]}
    assert got == {
        ("connection", "source demo_erp"): "ok",
        ("connect", "source demo_erp"): "ok",
        ("connection", "target demo_shop"): "ok",
        ("connect", "target demo_shop"): "ok",
        ("table", "customers: table customers"): "ok",
        ("fields", "customers: fields"): "ok",
        ("endpoint", "customers: endpoint /customers"): "ok",
        ("table", "orders: table orders"): "ok",
        ("fields", "orders: fields"): "ok",
        ("endpoint", "orders: endpoint /orders"): "ok",
    }
    fields = next(c["detail"] for c in report["checks"] if c["what"] == "customers: fields")
    assert fields == "id, updated_at, first_name, last_name, email, country_code found"  # XPath names too

    # the table for people, and the published workflow by its name
    env = {**os.environ, "FLOWLINK_HOME": str(home), "COLUMNS": "250"}
    table = subprocess.run(
        [sys.executable, "-m", "flowlink.cli", "check", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert table.returncode == 0 and "Check of erp_to_shop" in table.stdout and table.stdout.endswith("no problems\n")
    assert table.stderr == ""  # no Airflow log lines
    subprocess.run(
        [sys.executable, "-m", "flowlink.cli", "publish", str(EXAMPLE)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    status, by_name, _ = run_check(home, "erp_to_shop")
    assert status == 0 and by_name["checks"] == report["checks"]


def test_a_postgresql_source_a_folder_target_and_a_rest_source(home, airflow_db, pg_url, shop, tmp_path, monkeypatch):
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    with engine.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS check_accounts")
        c.exec_driver_sql("CREATE TABLE check_accounts (id int PRIMARY KEY, email text, changed timestamptz)")
        c.exec_driver_sql("INSERT INTO check_accounts VALUES (1, 'a@example.com', now())")
    engine.dispose()
    url = sa.engine.make_url(pg_url)
    conn(
        monkeypatch,
        "acc_erp",
        conn_type="postgres",
        host=url.host,
        port=url.port,
        login=url.username,
        password=url.password,
        schema=url.database,
    )
    (tmp_path / "out").mkdir()
    conn(monkeypatch, "drop", conn_type="fs", extra={"path": str(tmp_path / "out")})
    path = spec(
        tmp_path,
        source={"type": "sql", "connection": "acc_erp"},
        target={"type": "file", "connection": "drop"},
        touchpoints=[
            {
                "name": "accounts",
                "extract": {"table": "check_accounts", "key": "id", "incremental": "changed"},
                "mapping": [
                    {"target": "id", "source": "id"},
                    {"target": "mail", "xpath": "translate(email, 'ABC', 'abc')"},
                ],
                "load": {"file": "accounts.csv", "key": "id"},
            },
            {
                "name": "by_query",
                "extract": {"query": "SELECT id, email FROM check_accounts", "key": "id"},
                "mapping": [{"target": "id", "source": "id"}],
                "load": {"file": "q.csv", "key": "id"},
            },
        ],
    )
    got = rows(checked(path))
    assert {k: v[0] for k, v in got.items()} == {
        ("connection", "source acc_erp"): "ok",
        ("connect", "source acc_erp"): "ok",
        ("connection", "target drop"): "ok",
        ("connect", "target drop"): "ok",
        ("table", "accounts: table check_accounts"): "ok",
        ("fields", "accounts: fields"): "ok",
        ("query", "by_query: query"): "ok",
        ("fields", "by_query: fields"): "ok",
    }
    assert url.password not in repr(got)

    # a REST source: the shop's customers
    shop.put("customers", "7", {"customer_id": "7", "email": "x@example.com", "name": "X"})
    conn(monkeypatch, "shop_api", conn_type="http", host=shop.url)
    rest = spec(
        tmp_path,
        name="from_shop",
        source={"type": "rest", "connection": "shop_api"},
        target={"type": "file", "connection": "drop"},
        touchpoints=[
            {
                "name": "c",
                "extract": {"endpoint": "/customers", "key": "customer_id", "records_path": "records"},
                "mapping": [{"target": "mail", "source": "email"}],
                "load": {"file": "c.json", "key": "mail"},
            }
        ],
    )
    got = rows(checked(rest))
    assert got[("endpoint", "c: endpoint /customers")][0] == "ok"
    assert got[("fields", "c: fields")] == ("ok", "customer_id, email found")


# ---------------------------------------------------------------- bad input


@pytest.mark.reliability("Bad input", "flowlink check: a connection missing, of the wrong type or unreachable")
def test_missing_wrong_type_and_unreachable_connections(home, airflow_db, erp, tmp_path, monkeypatch, observe):
    """A spec names a connection Airflow lacks (acc_erpp), a SQL application gets an http connection and a postgres
    connection added with --conn-type (stored as generic), a REST target's port is closed: `flowlink check` exits 1,
    each row names the connection and what to do, within seconds."""
    monkeypatch.delenv("AIRFLOW_CONN_ACC_ERPP", raising=False)
    conn(monkeypatch, "web", conn_type="http", host="http://127.0.0.1:9")
    conn(monkeypatch, "closed", conn_type="http", host=f"http://127.0.0.1:{free_port()}")
    conn(monkeypatch, "as_generic", conn_type="generic", host="127.0.0.1", login="u", password="pw-secret-1", port=5432)
    tp = [{**CUSTOMERS}]
    started = time.monotonic()
    status, report, _ = run_check(
        home,
        spec(
            tmp_path,
            name="missing",
            source={"type": "sql", "connection": "acc_erpp"},
            target={"type": "rest", "connection": "closed"},
            touchpoints=tp,
        ),
    )
    took = time.monotonic() - started
    assert status == 1 and report["ok"] is False
    by = {(c["check"], c["what"]): c for c in report["checks"]}
    assert by[("connection", "source acc_erpp")]["result"] == "problem"
    assert "Airflow has no connection 'acc_erpp'" in by[("connection", "source acc_erpp")]["detail"]
    assert by[("connect", "target closed")]["result"] == "problem"
    assert "connection refused" in by[("connect", "target closed")]["detail"]
    assert took < 30, took

    got = rows(
        checked(
            spec(
                tmp_path,
                name="wrong",
                source={"type": "sql", "connection": "web"},
                target={"type": "rest", "connection": "as_generic"},
                touchpoints=tp,
            )
        )
    )
    assert got[("connection", "source web")][0] == "problem"
    assert "type 'http' is no database" in got[("connection", "source web")][1]
    assert got[("connection", "target as_generic")][0] == "problem"  # generic without a URL: no REST application

    got = rows(
        checked(
            spec(
                tmp_path,
                name="generic_sql",
                source={"type": "sql", "connection": "as_generic"},
                target={"type": "rest", "connection": "closed"},
                touchpoints=tp,
            )
        )
    )
    detail = got[("connection", "source as_generic")]
    assert detail[0] == "problem" and "--conn-uri postgresql://" in detail[1] and "pw-secret-1" not in detail[1]
    observe(
        f"exit 1 in {took:.1f} s; rows: {by[('connection', 'source acc_erpp')]['detail'][:60]}...; "
        f"{by[('connect', 'target closed')]['detail'][:60]}...; generic SQL: {detail[1][:50]}..."
    )


@pytest.mark.reliability("Bad input", "flowlink check: a missing table, a wrong endpoint, a missing field")
def test_missing_table_wrong_endpoint_and_missing_fields(home, airflow_db, erp, shop, tmp_path, monkeypatch, observe):
    """A spec reads a table the ERP lacks, loads to an endpoint the shop lacks, maps a source field the table lacks
    (and names one in an XPath), reads a REST endpoint that answers 404 and a file pattern nothing matches: each row
    names the table, endpoint, field or pattern; the pattern is only a warning."""
    conn(monkeypatch, "demo_erp", conn_type="sqlite", host=str(erp))
    conn(monkeypatch, "demo_shop", conn_type="http", host=shop.url)
    tps = [
        {**CUSTOMERS, "name": "bad_table", "extract": {"table": "customerz", "key": "id"}},
        {
            **CUSTOMERS,
            "name": "bad_field",
            "mapping": [
                {"target": "customer_id", "source": "id"},
                {"target": "phone", "source": "phone"},
                {"target": "n", "xpath": "concat(nick, '-', last_name)"},
            ],
            "load": {"endpoint": "/clients", "key": "customer_id"},
        },
    ]
    status, report, _ = run_check(
        home,
        spec(
            tmp_path,
            name="bad_names",
            source={"type": "sql", "connection": "demo_erp"},
            target={"type": "rest", "connection": "demo_shop"},
            touchpoints=tps,
        ),
    )
    assert status == 1
    by = {(c["check"], c["what"]): (c["result"], c["detail"]) for c in report["checks"]}
    assert by[("table", "bad_table: table customerz")] == ("problem", f"no table 'customerz' in sqlite:///{erp}")
    assert by[("fields", "bad_field: fields")][0] == "problem"
    assert by[("fields", "bad_field: fields")][1].startswith("not in the table's columns: phone, nick (it has: ")
    assert by[("endpoint", "bad_field: endpoint /clients")][0] == "problem"
    assert "HTTP 404" in by[("endpoint", "bad_field: endpoint /clients")][1]

    # a REST source whose endpoint does not exist; a file source whose pattern matches nothing yet
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "orders-1.csv").write_text("id,total\n1,9.5\n")
    conn(monkeypatch, "inbox", conn_type="fs", extra={"path": str(tmp_path / "in")})
    got = rows(
        checked(
            spec(
                tmp_path,
                name="rest_404",
                source={"type": "rest", "connection": "demo_shop"},
                target={"type": "file", "connection": "inbox"},
                touchpoints=[
                    {
                        "name": "c",
                        "extract": {"endpoint": "/customerz", "key": "id"},
                        "mapping": [{"target": "id", "source": "id"}],
                        "load": {"file": "x.csv", "key": "id"},
                    }
                ],
            )
        )
    )
    assert (
        got[("endpoint", "c: endpoint /customerz")][0] == "problem"
        and "HTTP 404" in got[("endpoint", "c: endpoint /customerz")][1]
    )
    files = [
        {
            "name": "o",
            "extract": {"file": "orders-*.csv", "key": "id"},
            "mapping": [{"target": "t", "source": "amount"}],
            "load": {"file": "x.csv", "key": "t"},
        },
        {
            "name": "later",
            "extract": {"file": "returns-*.csv", "key": "id"},
            "mapping": [{"target": "t", "source": "id"}],
            "load": {"file": "y.csv", "key": "t"},
        },
    ]
    got = rows(
        checked(
            spec(
                tmp_path,
                name="files",
                source={"type": "file", "connection": "inbox"},
                target={"type": "file", "connection": "inbox"},
                touchpoints=files,
            )
        )
    )
    assert got[("file", "o: file orders-*.csv")] == ("ok", "1 file match")
    assert got[("fields", "o: fields")] == ("problem", "not in the sample record: amount (it has: id, total)")
    assert got[("file", "later: file returns-*.csv")][0] == "warning"
    conn(monkeypatch, "gone", conn_type="fs", extra={"path": str(tmp_path / "nowhere")})
    got = rows(
        checked(
            spec(
                tmp_path,
                name="gone",
                source={"type": "file", "connection": "gone"},
                target={"type": "file", "connection": "inbox"},
                touchpoints=files,
            )
        )
    )
    assert got[("connect", "source gone")] == ("problem", f"folder not found: {tmp_path / 'nowhere'}")
    observe("exit 1; rows: " + "; ".join(f"{k[1]}: {v[1][:50]}" for k, v in by.items() if v[0] == "problem"))


@pytest.mark.reliability("Bad input", "flowlink check: wrong credentials for PostgreSQL and for a REST service")
def test_wrong_credentials_are_named_and_never_shown(home, airflow_db, pg_url, tmp_path, monkeypatch, observe):
    """PostgreSQL with a wrong password and a REST service (that echoes what it was sent) with a wrong password:
    the connect and endpoint rows say the credentials were refused; no password appears in the output."""
    import sqlalchemy as sa

    from tests.test_secrets import EchoingShop

    url = sa.engine.make_url(pg_url)
    wrong = "Wr0ng:p@ss/word"
    conn(
        monkeypatch,
        "acc_erp",
        conn_type="postgres",
        host=url.host,
        port=url.port,
        login=url.username,
        password=wrong,
        schema=url.database,
    )
    good = "basic-secret-7"
    shop = EchoingShop({"Basic " + base64.b64encode(f"api:{good}".encode()).decode()}, {})
    shop.start()
    try:
        conn(monkeypatch, "shop_api", conn_type="http", host=shop.url, login="api", password="not-" + good)
        path = spec(
            tmp_path,
            name="creds",
            source={"type": "sql", "connection": "acc_erp"},
            target={"type": "rest", "connection": "shop_api"},
            touchpoints=[CUSTOMERS],
        )
        status, report, stderr = run_check(home, path)
    finally:
        shop.stop()
    assert status == 1
    by = {(c["check"], c["what"]): (c["result"], c["detail"]) for c in report["checks"]}
    pg = by[("connect", "source acc_erp")]
    assert pg[0] == "problem" and "password authentication failed" in pg[1], pg
    rest = by[("connect", "target shop_api")]  # the shop's base URL asks for credentials too
    assert rest[0] == "problem" and "authentication failed" in rest[1], by
    text = json.dumps(report) + stderr
    for secret in (wrong, "not-" + good, good, url.password):
        assert secret not in text
    observe(f"exit 1; PostgreSQL: {pg[1][:70]}; REST: {rest[1][:70]}; no password in the output")


def test_unknown_workflow_or_file(home, airflow_db):
    env = {**os.environ, "FLOWLINK_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "flowlink.cli", "check", "no_such_flow"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "flowlink check: 'no_such_flow' is neither a spec file nor a published workflow"


def test_xpath_fields():
    from flowlink.check import xpath_fields

    assert xpath_fields("concat(first_name, ' ', last_name)") == ["first_name", "last_name"]
    assert xpath_fields("format-number(amount, '0.00')") == ["amount"]
    assert xpath_fields("translate(email, 'ABC', 'abc')") == ["email"]
    assert xpath_fields("address/city") == ["address"]
    assert xpath_fields("count(lines/line) > 1 and status != 'x' or @id = $v") == ["lines", "status"]
    assert xpath_fields("string(node()) or text()") == []
