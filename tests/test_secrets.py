"""No password or token in any output: a real workflow run with known secrets, then every output searched.

The source is a PostgreSQL database reached with its own role and password; the target is the demo shop on
loopback behind HTTP basic auth (or a bearer token) plus two secret headers, and careless with them: every
error answer echoes the request's headers and decoded credentials (as text, as a JSON object, as plain text,
form-encoded, and cut so that a 300-character limit falls inside a credential). The workflow is deployed by
the real agent with a real agent token, over HTTP, then run through Airflow's LocalExecutor (dag.test with
use_executor, against Airflow's execution API on loopback), so task logs are the real files the task
supervisor writes, masked by Airflow's secrets masker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import pytest
import requests
import sqlalchemy as sa
from fastapi.testclient import TestClient

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop, _Handler
from tests.airflow_helpers import REPO, load_dags
from tests.live_server import free_port

WF = "erp_to_shop"
SHOP_USER = "flowlink-api"
CUSTOMERS, ORDERS = 40, 60
REJECTED = {"5": "text", "7": "object", "11": "plain", "13": "cut"}  # customer id -> how its error echoes secrets
WINDOW = 12  # any 12 characters of a secret in a row count as a leak (a secret cut short is still a leak)


def _random_secret(prefix: str, specials: str = ":/@%") -> str:
    """A unique secret with characters that URLs, JSON and forms escape; every 12-character window is random."""
    parts = [secrets.token_urlsafe(6) for _ in range(len(specials) + 1)]
    return prefix + "".join(p + s for p, s in zip(parts, specials + " ", strict=True)).rstrip()


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


# ------------------------------------------------------------------ the careless shop


class _EchoingHandler(_Handler):
    """The demo shop's handler behind credentials; error answers echo what the client sent."""

    def _dispatch(self, method: str) -> None:
        if not self.path.startswith("/_admin") and not self._authorized():
            try:
                self._body()
            except Exception:
                pass
            self.shop.refused += 1
            self._send(401, {"error": "authentication failed"})
            return
        super()._dispatch(method)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") in self.shop.accepted and all(
            self.headers.get(k) == v for k, v in self.shop.required.items()
        )

    def _send(self, status: int, answer) -> None:
        if status < 400 or self.path.startswith("/_admin"):
            return super()._send(status, answer)
        headers = dict(self.headers.items())
        auth = headers.get("Authorization", "")
        scheme, _, credential = auth.partition(" ")
        decoded = base64.b64decode(credential).decode() if scheme == "Basic" else credential
        message = answer.get("error") if isinstance(answer, dict) else str(answer)
        style = self.shop.styles.get(self.path.rstrip("/").rsplit("/", 1)[-1], "text") if status != 401 else "text"
        self.shop.echoed += 1
        if style == "object":  # a JSON object: the connector dumps it as JSON text (quotes escaped)
            return super()._send(
                status, {"error": {"message": message, "credentials": decoded, "request_headers": headers}}
            )
        if style == "plain":  # not JSON at all: the body is the error text
            data = (f"{message}\ncredentials: {decoded}\n{self.headers}").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if style == "cut":  # the 300-character limit on error texts falls in the middle of the credential
            lead = " Authorization: " + scheme + " "
            pad = max(1, 297 - len(credential) // 2 - len(lead))
            return super()._send(
                status, {"error": "x" * pad + lead + credential + " key " + headers.get("X-Api-Key", "")}
            )
        form = urlencode(
            {
                "user": decoded.partition(":")[0],
                "password": decoded.partition(":")[2],
                "signature": headers.get("X-Shop-Signature", ""),
            }
        )
        return super()._send(status, {"error": f"{message}; form {form}; credentials {decoded}; you sent {headers}"})


class EchoingShop(DemoShop):
    """The demo shop behind basic auth or a bearer token plus required headers."""

    handler = _EchoingHandler

    def __init__(self, accepted: set[str], required: dict[str, str]):
        super().__init__()
        self.accepted = accepted
        self.required = required
        self.styles: dict[str, str] = {}
        self.refused = 0
        self.echoed = 0


# ------------------------------------------------------------------ servers and runs


class ThreadServer:
    """An ASGI app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def run_workflow(conf: dict | None = None):
    """One real run through the LocalExecutor: each task in a supervised process writing its log file."""
    bag = load_dags()
    assert not bag.import_errors, bag.import_errors
    run = bag.get_dag(WF).test(run_conf=conf, use_executor=True)
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


class RecordingSession(requests.Session):
    """The agent's HTTP session, keeping every answer it read (downloads are searched as the file itself)."""

    def __init__(self):
        super().__init__()
        self.answers: list[str] = []

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        if not kwargs.get("stream"):
            self.answers.append(f"{method} {url} -> {response.status_code} {response.headers} {response.text}")
        return response


# ------------------------------------------------------------------ the search


class Leaks:
    """Every output, by kind, searched for every form of every secret."""

    def __init__(self, named: dict[str, str], basic: dict[str, str]):
        self.needles: list[tuple[str, str, bytes]] = []
        for label, secret in named.items():
            forms = {
                "plain": secret,
                "url-encoded": quote(secret, safe=""),
                "form-encoded": quote_plus(secret),
                "JSON-escaped": json.dumps(secret)[1:-1],
                "base64": base64.b64encode(secret.encode()).decode(),
            }
            for form, text in forms.items():
                self.needles.append((label, form, text.encode()))
            self.needles += [
                (label, "12-character piece", secret[i : i + WINDOW].encode()) for i in range(len(secret) - WINDOW + 1)
            ]
        for label, pair in basic.items():
            self.needles.append((label, "base64 user:password", pair.encode()))
            self.needles += [
                (label, "12-character piece of base64", pair[i : i + WINDOW].encode())
                for i in range(len(pair) - WINDOW + 1)
            ]
        self.secrets = len(named)
        self.counts: dict[str, int] = {}
        self.hits: list[str] = []

    def search(self, kind: str, name: str, content: str | bytes) -> None:
        data = content.encode("utf-8", "replace") if isinstance(content, str) else content
        self.counts[kind] = self.counts.get(kind, 0) + 1
        for label, form, needle in self.needles:
            at = data.find(needle)
            if at >= 0:
                context = data[max(0, at - 80) : at + len(needle) + 40].decode("utf-8", "replace")
                self.hits.append(f"{kind} {name}: {label} ({form}) in ...{context}...")
                return  # one hit per output is enough to name it


def dump_tables(engine) -> dict[str, list[str]]:
    """Every row of every table, as one text per row (each column's value as text)."""
    meta = sa.MetaData()
    meta.reflect(bind=engine)
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            out[table.name] = ["\n".join(_text(v) for v in row) for row in rows]
    return out


def _text(value) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str) + "\n" + repr(value)
    return str(value)


def describe(exc: BaseException) -> str:
    """What a log or a user sees of an exception: its message and the full traceback with causes."""
    return f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def client(app):
    return TestClient(app)


@pytest.fixture
def erp(pg_url, tmp_path_factory):
    """The demo ERP in its own PostgreSQL database, reached by its own role with a unique password."""
    role, database = f"erp_{secrets.token_hex(4)}", f"erp_{secrets.token_hex(4)}"
    password = _random_secret("pg-", ":/@%")
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        from psycopg import sql

        conn.connection.dbapi_connection.execute(  # a literal, quoted by the driver: '%' is no placeholder here
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
        conn.exec_driver_sql(f'CREATE DATABASE "{database}" OWNER {role}')
    url = sa.engine.make_url(pg_url).set(username=role, password=password, database=database)
    lite = tmp_path_factory.mktemp("erp") / "erp.db"
    create_erp(lite, customers=CUSTOMERS, orders=ORDERS)
    engine = sa.create_engine(url)
    with sqlite3.connect(lite) as src, engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, "
            "email TEXT, country_code TEXT, updated_at TEXT)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount DOUBLE PRECISION, "
            "status TEXT, updated_at TEXT)"
        )
        for table in ("customers", "orders"):
            cursor = src.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, r, strict=True)) for r in cursor]
            conn.execute(
                sa.text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"), rows
            )
    engine.dispose()
    yield {"host": url.host, "port": url.port, "database": database, "login": role, "password": password}
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
    admin.dispose()


# ------------------------------------------------------------------ the test


@pytest.mark.reliability("Security", "No password or token in any output")
def test_no_secret_in_any_output(erp, home, app, user, airflow_db, monkeypatch, capfd, observe):
    """Runs the example workflow through Airflow's LocalExecutor from a PostgreSQL source (own role and password)
    to a REST shop that needs basic auth or a bearer token plus two secret headers and echoes all of them in its
    error answers (as text, JSON object, plain text, form-encoded, cut at the 300-character limit); the workflow is
    deployed by the real agent with a real agent token over HTTP; runs with refused records, a resync with the
    bearer token, a wrong password (401), an unreachable target with credentials in its URL and a wrong database
    password. Then every output is searched for every secret, plain, URL- and form-encoded, JSON-escaped, base64
    (and base64 of user:password), and for any 12 characters of one in a row: the files under FLOWLINK_HOME
    (published, live, staging, the store's database file), every row of every store table, every row of every
    table of Airflow's metadata database (XCom included), the task log files, the console, CLI and API answers,
    the agent's log and answers, and the messages and tracebacks of connector errors."""
    from airflow.configuration import conf
    from airflow.settings import engine as airflow_engine

    from flowlink import cli
    from flowlink.agent import Agent
    from flowlink.store import Store, bucket, snapshots
    from flowlink.store.tables import agent_tokens

    console: list[str] = []

    def drain(keep: bool = True) -> tuple[str, str]:
        out, err = capfd.readouterr()
        if keep:
            console.append(out)
        console.append(err)
        return out, err

    def flowlink(*args: str, expect: int = 0) -> str:
        code = cli.main(list(args))
        out, err = drain()
        assert code == expect, (args, code, out, err)
        cli_outputs.append((" ".join(args), out + err))
        return out

    cli_outputs: list[tuple[str, str]] = []
    api_answers: list[tuple[str, str]] = []
    errors: list[tuple[str, str]] = []

    # ---- the secrets
    shop_password = _random_secret("shop-", ':/@%"')
    wrong_password = _random_secret("wrong-", ':/@%"')
    token = _random_secret("tok-", "._~-")
    api_key, signature = _random_secret("key-", "-_"), _random_secret("sig-", "-_")
    headers = {"X-Api-Key": api_key, "X-Shop-Signature": signature}
    db_wrong = _random_secret("pgwrong-", ":/@%")
    shop = EchoingShop({f"Basic {_basic(SHOP_USER, shop_password)}", f"Bearer {token}"}, headers)
    shop.start()
    execution_api = flowlink_server = None
    try:
        # ---- Airflow's execution API on loopback, for the LocalExecutor's task supervisors
        from airflow.api_fastapi.app import create_app as create_airflow_app

        execution_api = ThreadServer(create_airflow_app(apps="execution"))
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"{execution_api.url}/execution/")
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
        monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "2")
        flowlink_server = ThreadServer(app)  # the Flowlink API the agent talks to, over HTTP

        # ---- an environment, its agent token (issued by the real code), publish, deploy through the API
        flowlink("env", "add", "cloud", "--kind", "cloud")
        assert cli.main(["env", "token", "cloud"]) == 0
        out, _ = drain(keep=False)  # the one place the token is meant to appear: the `env token` answer itself
        agent_token = out.strip()
        assert agent_token.startswith("flk_") and len(agent_token) > 40
        bogus_token = "flk_" + secrets.token_urlsafe(32)
        flowlink("publish", str(REPO / "examples" / "erp_to_shop.yaml"))
        load_dags()  # Airflow knows the deployment tracker DAG
        for name in ("DEMO_ERP", "DEMO_SHOP"):  # deploy refuses connections Airflow lacks; the real ones come below
            monkeypatch.setenv(f"AIRFLOW_CONN_{name}", json.dumps({"conn_type": "generic"}))
        answer = user.post("/api/v1/deployments", json={"workflow": WF})
        assert answer.status_code == 201, answer.text
        api_answers.append(("POST /api/v1/deployments", answer.text))

        agent_lines: list[str] = []
        session = RecordingSession()
        result = Agent(flowlink_server.url, agent_token, "cloud", log=agent_lines.append, session=session).run_once()
        assert result.ok and [a.status for a in result.actions] == ["done"] * 4, result
        bad = RecordingSession()
        turned_away = Agent(flowlink_server.url, bogus_token, "cloud", log=agent_lines.append, session=bad).run_once()
        assert turned_away.status == "unauthorized", turned_away
        live = home / "live" / "cloud" / f"{WF}.json"
        assert live.is_file()
        assert user.get(f"/api/v1/workflows/{WF}/deployment-log").json()["deployment"]["status"] == "successful"

        # ---- the connections
        def connect(source: dict, target: dict) -> None:
            monkeypatch.setenv("AIRFLOW_CONN_DEMO_ERP", json.dumps(source))
            monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP", json.dumps(target))

        pg = {
            "conn_type": "postgres",
            "host": erp["host"],
            "port": erp["port"],
            "schema": erp["database"],
            "login": erp["login"],
            "password": erp["password"],
        }
        basic_target = {
            "conn_type": "http",
            "host": shop.url,
            "login": SHOP_USER,
            "password": shop_password,
            "extra": {"headers": headers, "retries": 1, "backoff": 0.1},
        }
        runs = {}

        # Run 1: basic auth; four customers refused, each error echoing the credentials another way.
        connect(pg, basic_target)
        shop.styles = dict(REJECTED)
        shop.reject("customers", list(REJECTED), status=422, message="email: blocked by the spam filter")
        run, states = run_workflow()
        runs["refused records"] = run.run_id
        assert run.state == "failed" and states["customers.load"] == "failed", states
        store = Store.open()
        failed = {r["source_id"]: r["message"] for r in bucket.rows(store, WF, touchpoint="customers", status="failed")}
        assert set(failed) == set(REJECTED)
        assert all(m.startswith(f"PUT /customers/{i}: HTTP 422: ") for i, m in failed.items()), failed
        assert "blocked by the spam filter" in failed["5"] and "***" in failed["5"], failed
        # the echoes came back, redacted: a form-encoded password and header, a JSON object, a cut credential
        assert "password=***&signature=***" in failed["5"] and '"credentials": "flowlink-api:***"' in failed["7"], (
            failed
        )
        assert "Authorization: Basic *** key ***" in failed["13"], failed  # redacted whole, then shortened
        failed_orders = bucket.rows(store, WF, touchpoint="orders", status="failed", limit=1000)
        assert failed_orders and all("unknown customer" in r["message"] for r in failed_orders)
        assert len(shop.records("customers")) == CUSTOMERS - len(REJECTED)

        # Run 2: a resync of the refused customers with a bearer token; customer 13 is still refused.
        connect(
            pg,
            {
                "conn_type": "http",
                "host": shop.url,
                "extra": {"token": token, "headers": headers, "retries": 1, "backoff": 0.1},
            },
        )
        shop.reject("customers", [])
        shop.reject("customers", ["13"], status=422, message="email: still blocked")
        from flowlink.actions import request_resync

        resync_id, ids = request_resync(store, WF, "customers", failed=True)
        run, states = run_workflow({"resync_id": resync_id})
        runs["resync with a bearer token"] = run.run_id
        assert states["customers.load"] == "failed" and states["orders.extract"] == "skipped", states
        assert bucket.count(store, WF, touchpoint="customers", status="failed") == 1
        assert len(shop.records("customers")) == CUSTOMERS - 1

        # Run 3: a wrong password: the shop answers 401 and echoes it; the load fails as a whole.
        refused_before = shop.refused
        connect(pg, {**basic_target, "password": wrong_password})
        source = sa.create_engine(
            sa.engine.URL.create(
                "postgresql+psycopg",
                username=erp["login"],
                host=erp["host"],
                password=erp["password"],
                port=erp["port"],
                database=erp["database"],
            )
        )
        with source.begin() as conn:  # two changed customers: the run has records to send
            conn.exec_driver_sql("UPDATE customers SET updated_at = '2099-01-01T00:00:00Z' WHERE id IN (1, 2)")
        source.dispose()
        run, states = run_workflow()
        runs["wrong password"] = run.run_id
        assert states["customers.load"] == "failed" and shop.refused > refused_before, states
        load = next(s for s in snapshots.snapshot(store, run.run_id)["steps"] if s["step"] == "load")
        assert "authentication failed" in load["message"] and "***" in load["message"], load

        # Run 4: the target is unreachable, its credentials written into the connection's URL.
        closed = free_port()
        connect(
            pg,
            {
                "conn_type": "http",
                "host": f"http://{SHOP_USER}:{quote(shop_password, safe='')}@127.0.0.1:{closed}",
                "extra": {"headers": headers, "retries": 1, "backoff": 0.1},
            },
        )
        run, states = run_workflow()
        runs["unreachable target"] = run.run_id
        load = next(s for s in snapshots.snapshot(store, run.run_id)["steps"] if s["step"] == "load")
        assert states["customers.load"] == "failed" and "connection refused" in load["message"], (states, load)

        # Run 5: a wrong database password, given as a SQLAlchemy URL in the connection's extra.
        bad_url = sa.engine.URL.create(
            "postgresql+psycopg",
            username=erp["login"],
            password=db_wrong,
            host=erp["host"],
            port=erp["port"],
            database=erp["database"],
        ).render_as_string(hide_password=False)
        connect({"conn_type": "postgres", "extra": {"sqlalchemy_url": bad_url}}, basic_target)
        run, states = run_workflow()
        runs["wrong database password"] = run.run_id
        extract = next(s for s in snapshots.snapshot(store, run.run_id)["steps"] if s["step"] == "extract")
        assert states["customers.extract"] == "failed" and "password authentication failed" in extract["message"], (
            extract
        )
        drain()

        # ---- connector errors raised directly: their messages and tracebacks
        from flowlink.connectors.rest import RestTarget, rest_settings_from_connection
        from flowlink.connectors.sql import SqlSource, sql_url_from_connection
        from flowlink.spec import Extract, Load

        customer = {"customer_id": "1", "name": "A B", "email": "a@b.c"}
        attempts = {
            "REST wrong password (401)": lambda: RestTarget(
                **rest_settings_from_connection(
                    "http", shop.url, SHOP_USER, wrong_password, None, None, {"headers": headers, "retries": 0}
                )
            ).write(Load(endpoint="/customers", method="upsert", key="customer_id"), [customer]),
            "REST unreachable, bearer token": lambda: RestTarget(
                **rest_settings_from_connection(
                    "http", f"127.0.0.1:{closed}", None, None, None, None, {"token": token, "retries": 0}
                )
            ).write(Load(endpoint="/customers", method="upsert", key="customer_id"), [customer]),
            "REST host not http(s), credentials in it": lambda: rest_settings_from_connection(
                "http", f"ftp://{SHOP_USER}:{quote(shop_password, safe='')}@127.0.0.1", None, None, None, None, None
            ),
            "REST bare host with credentials, unreachable": lambda: RestTarget(
                **rest_settings_from_connection(
                    "http",
                    f"{SHOP_USER}:{quote(shop_password, safe='')}@127.0.0.1:{closed}",
                    None,
                    None,
                    None,
                    None,
                    {"retries": 0},
                )
            ).write(Load(endpoint="/customers", method="upsert", key="customer_id"), [customer]),
            "SQL wrong password": lambda: list(
                SqlSource(
                    sql_url_from_connection(
                        "postgres", erp["host"], erp["login"], db_wrong, erp["port"], erp["database"], None
                    )
                ).read(Extract(table="customers", key="id"), batch_size=10)
            ),
            "SQL unreachable": lambda: list(
                SqlSource(
                    sql_url_from_connection(
                        "postgres", "127.0.0.1", erp["login"], db_wrong, closed, erp["database"], None
                    )
                ).read(Extract(table="customers", key="id"), batch_size=10)
            ),
            "SQL bad port in a URL with a password": lambda: SqlSource(
                f"postgresql+psycopg://{erp['login']}:{quote(db_wrong, safe='')}@127.0.0.1:port/x"
            ),
            "SQL unknown driver in a URL with a password": lambda: SqlSource(
                f"nosuchdb://{erp['login']}:{quote(db_wrong, safe='')}@127.0.0.1/x"
            ),
        }
        for what, attempt in attempts.items():
            try:
                outcome = attempt()
            except Exception as exc:
                errors.append((what, describe(exc)))
            else:
                errors.append((what, repr(outcome)))  # a per-record failure: its WriteResult
        assert len(errors) == len(attempts)

        # The hook registers every form of the connection's credentials with Airflow's secrets masker.
        from airflow.sdk.log import redact

        from flowlink_airflow.hooks.application import ApplicationHook

        connect({**pg, "password": erp["password"]}, basic_target)
        ApplicationHook("demo_shop", "rest").get_target().close()
        ApplicationHook("demo_erp", "sql").get_source().close()
        line = (
            f"basic {_basic(SHOP_USER, shop_password)} key {api_key} sig {signature} "
            f"db {quote(erp['password'], safe='')} pw {erp['password']}"
        )
        masked = redact(line)
        errors.append(("a log line after the hook read the connections", masked))

        # ---- CLI outputs
        for args in (
            ["bucket", WF],
            ["bucket", WF, "--status", "failed", "--json"],
            ["runs", WF],
            ["runs", WF, "--json"],
            ["feeds"],
            ["feeds", "--json"],
            ["deployments"],
            ["deployments", "--json"],
            ["deployment-log", WF],
            ["deployment-log", WF, "--json"],
            ["env", "list"],
            ["env", "list", "--json"],
            ["workflows"],
            ["workflows", "--json"],
            ["db-upgrade"],
        ):
            flowlink(*args)
        for run_id in runs.values():
            flowlink("snapshot", run_id)
            flowlink("snapshot", run_id, "--json", "--limit", "1000")
        monkeypatch.setenv("FLOWLINK_AGENT_TOKEN", bogus_token)
        flowlink("agent", "--environment", "cloud", "--server", flowlink_server.url, "--once", expect=1)
        monkeypatch.setenv("FLOWLINK_AGENT_TOKEN", agent_token)
        flowlink("agent", "--environment", "cloud", "--server", flowlink_server.url, "--once")

        # ---- API answers: user endpoints, the pages, the agent endpoints
        gets = [
            "/api/v1/environments",
            "/api/v1/deployments",
            f"/api/v1/workflows/{WF}/deployment-log",
            "/ui/environments",
            "/ui/deployments",
            f"/ui/bucket?workflow={WF}",
            f"/ui/bucket?workflow={WF}&status=failed",
            f"/ui/snapshots?workflow={WF}",
            "/ui/feeds",
        ]
        gets += [f"/api/v1/workflows/{WF}/runs/{quote(r, safe='')}" for r in runs.values()]
        gets += [f"/ui/snapshot?workflow={WF}&run_id={quote(r, safe='')}" for r in runs.values()]
        for path in gets:
            answer = user.get(path)
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
            api_answers.append((f"GET {path}", answer.text))
        for token_used in (agent_token, bogus_token):
            for method, path in (("POST", "/agent/v1/heartbeat"), ("GET", "/agent/v1/deployments")):
                answer = user.request(method, path, headers={"X-Agent-Token": token_used})
                api_answers.append((f"{method} {path} ({answer.status_code})", answer.text))
        api_answers += [(f"agent call {i}", a) for i, a in enumerate(session.answers + bad.answers)]
        drain()

        # ---- the agent token is stored hashed, and only hashed
        with store.engine.connect() as conn:
            hashes = set(conn.execute(sa.select(agent_tokens.c.token_hash)).scalars())
        assert hashlib.sha256(agent_token.encode()).hexdigest() in hashes
        store_dump = dump_tables(store.engine)
        store.dispose()
    finally:
        for server in (flowlink_server, execution_api):
            if server is not None:
                server.stop()
        shop.stop()

    # ---- search everything
    leaks = Leaks(
        {
            "database password": erp["password"],
            "wrong database password": db_wrong,
            "shop password": shop_password,
            "wrong shop password": wrong_password,
            "bearer token": token,
            "X-Api-Key header": api_key,
            "X-Shop-Signature header": signature,
            "agent token": agent_token,
            "refused agent token": bogus_token,
        },
        {"basic auth": _basic(SHOP_USER, shop_password), "wrong basic auth": _basic(SHOP_USER, wrong_password)},
    )
    files = [p for p in sorted(home.rglob("*")) if p.is_file()]
    assert any("published" in p.parts for p in files) and any("staging" in p.parts for p in files) and live in files
    for path in files:
        leaks.search("file", str(path.relative_to(home)), path.read_bytes())
    for table, rows in store_dump.items():
        leaks.search("store table", table, "\n\n".join(rows))
    log_folder = Path(conf.get("logging", "base_log_folder"))
    task_logs = [p for p in sorted(log_folder.rglob("*")) if p.is_file()]
    ours = [p for p in task_logs if f"dag_id={WF}" in str(p) and any(f"run_id={r}" in str(p) for r in runs.values())]
    assert len(ours) >= 5 * 2, ours  # every run ran tasks, each wrote its log file
    for path in task_logs:
        leaks.search("task log", str(path.relative_to(log_folder)), path.read_bytes())
    airflow_dump = dump_tables(airflow_engine)
    xcoms = [row for row in airflow_dump.get("xcom", []) if any(r in row for r in runs.values())]
    assert xcoms, "the runs' steps handed each other batch files through XCom"
    for table, rows in airflow_dump.items():
        leaks.search("Airflow table", table, "\n\n".join(rows))
    for row in xcoms:
        leaks.search("XCom value", "xcom", row)
    for name, text in cli_outputs:
        leaks.search("CLI output", f"flowlink {name}", text)
    for name, text in api_answers:
        leaks.search("API answer", name, text)
    for name, text in errors:
        leaks.search("error", name, text)
    for i, text in enumerate(agent_lines):
        leaks.search("agent log line", str(i), text)
    leaks.search("console", "everything the test's processes printed", "".join(console))

    assert not leaks.hits, "secrets leaked:\n" + "\n".join(leaks.hits)
    assert "***" in masked and shop_password not in masked and signature not in masked, masked

    counts = leaks.counts
    observe(
        f"{leaks.secrets} secrets ({len(leaks.needles)} forms and pieces) searched in {counts['file']} files, "
        f"{counts['store table']} store tables ({sum(map(len, store_dump.values()))} rows), "
        f"{counts['Airflow table']} Airflow tables, {len(ours)} task logs of {len(runs)} runs, "
        f"{counts['XCom value']} XCom values, {counts['CLI output']} CLI outputs, {counts['API answer']} API answers, "
        f"{counts['error']} error messages, {counts['agent log line']} agent log lines and the console: "
        f"{len(leaks.hits)} hits"
    )
    observe(f"the shop echoed credentials in {shop.echoed} error answers; the agent token is stored only as its sha256")


def test_one_list_of_sensitive_names(monkeypatch):
    """The REST connector (headers it redacts, the hook masks) and the alerts (connection extras they scrub) take
    the same names for credentials: flowlink.errors.SENSITIVE, in any case and inside a longer name."""
    from flowlink.alerts.messages import connection_secrets as alert_secrets
    from flowlink.connectors.rest import connection_secrets as rest_secrets
    from flowlink.connectors.rest import rest_settings_from_connection
    from flowlink.errors import SENSITIVE, is_sensitive

    values = {word: f"value-of-{word}-{secrets.token_hex(4)}" for word in SENSITIVE}
    plain = {"Accept": "application/x-plain-1234", "timeout": "12345"}
    headers = {f"X-{word.upper()}-Id": value for word, value in values.items()} | {"Accept": plain["Accept"]}
    settings = rest_settings_from_connection("http", "http://127.0.0.1:9", None, None, None, None, {"headers": headers})
    assert set(values.values()) <= set(rest_secrets(settings)) and plain["Accept"] not in rest_secrets(settings)
    extra = {f"my_{word}": value for word, value in values.items()} | {"timeout": plain["timeout"]}
    monkeypatch.setenv("AIRFLOW_CONN_SENSITIVE_NAMES", json.dumps({"conn_type": "http", "host": "h", "extra": extra}))
    found = alert_secrets(["sensitive_names"])
    assert set(values.values()) <= set(found) and plain["timeout"] not in found
    assert is_sensitive("Authorization") and is_sensitive("client_SECRET") and not is_sensitive("timeout")
