"""An application that cannot be reached fails its step within FLOWLINK_UNREACHABLE_AFTER seconds (default 30):
REST (connection refused, unknown host, connect timeout), PostgreSQL (refusing, not answering), a missing folder;
a brief outage within that time is waited out; and through a real Airflow run with `make run`'s settings, each
step whose target is down fails once, after the budget (a run took 10 minutes before: HTTP retries, then Airflow's)."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from examples.demo_erp import create as create_erp
from flowlink.connectors.base import ConnectorError, Unreachable
from flowlink.connectors.file import FileSource
from flowlink.connectors.rest import RestSource, RestTarget
from flowlink.connectors.sql import SqlSource, SqlTarget
from flowlink.spec import Extract, Load
from tests.airflow_helpers import REPO, demo_connections
from tests.live_server import AirflowServer, free_port, wait_for

UPSERT = Load(endpoint="/customers", method="upsert", key="customer_id")
READ = Extract(endpoint="/customers", key="customer_id")


def timed(attempt) -> tuple[BaseException, float]:
    """The error `attempt()` raised, and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(ConnectorError) as failed:
        attempt()
    return failed.value, time.monotonic() - started


def one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.reliability("Faults", "A REST source or target is unreachable (refused, unknown host)")
def test_an_unreachable_rest_service_fails_within_the_budget(monkeypatch, observe):
    """FLOWLINK_UNREACHABLE_AFTER is 3 s. A RestSource reads from, and a RestTarget writes 5 records to, a closed
    loopback port; then a source reads from a host name that does not resolve (.invalid)."""
    monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", "3")
    closed = f"http://127.0.0.1:{free_port()}"
    seen = []
    for what, attempt in {
        "source, refused": lambda: list(RestSource(closed).read(READ, batch_size=10)),
        "target, refused": lambda: RestTarget(closed).write(UPSERT, [{"customer_id": str(i)} for i in range(5)]),
        "source, unknown host": lambda: list(RestSource("http://flowlink-test.invalid:8080").read(READ, batch_size=10)),
    }.items():
        error, took = timed(attempt)
        assert isinstance(error, Unreachable), (what, error)
        assert 2.5 < took < 15, (what, took)  # the budget, once: not once per record, not minutes
        seen.append((what, one_line(error), took))
    assert (
        seen[0][1] == f"{closed}: connection refused (GET /customers); gave up after 3 s (FLOWLINK_UNREACHABLE_AFTER)"
    )
    assert seen[1][1] == (
        f"{closed}: connection refused (PUT /customers/0); gave up after 3 s (FLOWLINK_UNREACHABLE_AFTER)"
    )
    assert seen[2][1].startswith("http://flowlink-test.invalid:8080: cannot resolve the host name (GET /customers)")
    observe("; ".join(f"{what}: '{text}' after {took:.1f} s" for what, text, took in seen))


def test_a_rest_service_that_does_not_accept_connections_times_out_connecting(monkeypatch):
    """A loopback port whose listen queue is full (SYNs unanswered): connecting times out after 10 s, not after the
    30 s read timeout; with a budget of 1 s there is no second try."""
    monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", "1")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the queue; the kernel then drops new SYNs
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.2)
    try:
        error, took = timed(lambda: list(RestSource(f"http://127.0.0.1:{port}").read(READ, batch_size=10)))
    finally:
        for s in [*fillers, listener]:
            s.close()
    assert isinstance(error, Unreachable) and "timed out connecting (GET /customers)" in one_line(error)
    assert 9 < took < 15


class LateService:
    """An HTTP service on a port that refuses connections for `after` seconds, then answers every request."""

    def __init__(self, after: float):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []
        self.httpd: ThreadingHTTPServer | None = None
        self.timer = threading.Timer(after, self._start)
        self.timer.start()

    def _start(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                service.requests.append(f"{self.command} {self.path}")
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps([] if self.command == "GET" else {"id": "7"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.timer.cancel()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.mark.reliability("Faults", "A REST target is down for 2 s: the outage is waited out")
def test_a_brief_rest_outage_is_waited_out_and_a_post_is_sent_once(monkeypatch, observe):
    """The target refuses connections for the first 2 s; FLOWLINK_UNREACHABLE_AFTER is 10 s. A record is inserted
    (POST: a refused connection never carried the request, so sending it again is safe)."""
    monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", "10")
    service = LateService(after=2.0)
    try:
        started = time.monotonic()
        [result] = RestTarget(service.url).write(
            Load(endpoint="/customers", method="insert", key="customer_id", id_field="id"), [{"customer_id": "1"}]
        )
        took = time.monotonic() - started
    finally:
        service.stop()
    assert result.ok and result.destination_id == "7"
    assert service.requests == ["POST /customers"] and 1.8 < took < 8
    observe(f"written after {took:.1f} s; the service received 1 POST")


@pytest.mark.reliability("Faults", "PostgreSQL is unreachable (refusing, not answering)")
def test_an_unreachable_postgresql_fails_within_the_budget(monkeypatch, observe):
    """FLOWLINK_UNREACHABLE_AFTER is 2 s. A SqlSource and a SqlTarget on a closed loopback port; then a SqlSource on
    a port that accepts connections and never answers (libpq alone would wait forever there)."""
    monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", "2")
    password = "pg-secret-4711"
    closed = f"postgresql+psycopg://erp:{password}@127.0.0.1:{free_port()}/erp"
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: list[socket.socket] = []

    def accept_and_say_nothing() -> None:
        while True:
            try:
                held.append(silent.accept()[0])
            except OSError:  # closed: the test is over
                return

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    mute = f"postgresql+psycopg://erp:{password}@127.0.0.1:{silent.getsockname()[1]}/erp"
    seen = []
    try:
        for what, attempt, bound in (
            (
                "source, refused",
                lambda: list(SqlSource(closed).read(Extract(table="customers", key="id"), batch_size=10)),
                10,
            ),
            ("target, refused", lambda: SqlTarget(closed).write(Load(table="customers", key="id"), [{"id": 1}]), 10),
            (
                "source, not answering",
                lambda: list(SqlSource(mute).read(Extract(table="customers", key="id"), batch_size=10)),
                25,
            ),
        ):
            error, took = timed(attempt)
            assert isinstance(error, Unreachable), (what, error)
            assert took < bound, (what, took)
            text = one_line(error)
            assert password not in text and text.endswith("; gave up after 2 s (FLOWLINK_UNREACHABLE_AFTER)")
            seen.append((what, text, took))
    finally:
        silent.close()
        for s in held:
            s.close()
    assert "Connection refused" in seen[0][1] and seen[0][1].startswith(
        "cannot connect to postgresql+psycopg://erp:***@"
    )
    assert "connection timeout expired" in seen[2][1] and seen[2][2] > 9  # libpq's connect_timeout: 10 s
    observe("; ".join(f"{what}: '{text}' after {took:.1f} s" for what, text, took in seen))


def test_a_wrong_postgresql_password_is_not_waited_for(pg_url, monkeypatch):
    """A server that answers and refuses the password: no retries (a wrong password is not an outage)."""
    monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", "20")
    url = sa.engine.make_url(pg_url).set(password="wrong-password-4711").render_as_string(hide_password=False)
    error, took = timed(lambda: list(SqlSource(url).read(Extract(table="customers", key="id"), batch_size=10)))
    assert not isinstance(error, Unreachable) and "password authentication failed" in one_line(error)
    assert took < 5 and "wrong-password-4711" not in str(error)


def test_a_brief_postgresql_outage_is_waited_out(pg_url, monkeypatch):
    """PostgreSQL behind a proxy that refuses connections for the first 2 s; FLOWLINK_UNREACHABLE_AFTER is 10 s."""
    from tests.test_faults import TcpProxy

    monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", "10")
    base = sa.engine.make_url(pg_url)
    proxy = TcpProxy(base.port)
    proxy.down()
    timer = threading.Timer(2.0, proxy.up)
    timer.start()
    try:
        source = SqlSource(base.set(port=proxy.port).render_as_string(hide_password=False))
        started = time.monotonic()
        rows = list(source.read(Extract(query="SELECT 1 AS id", key="id"), batch_size=10))
        took = time.monotonic() - started
        source.close()
    finally:
        timer.cancel()
        proxy.down()
    assert rows == [[{"id": 1}]] and 1.8 < took < 8


def test_a_missing_folder_fails_at_once(tmp_path):
    """A file connection's folder that does not exist: no waiting (a folder is there or not)."""
    error, took = timed(
        lambda: list(FileSource(str(tmp_path / "gone")).read(Extract(file="*.csv", key="id"), batch_size=10))
    )
    assert one_line(error) == f"folder not found: {tmp_path / 'gone'}" and took < 1


def test_the_budget_setting_is_checked(monkeypatch):
    from flowlink.errors import FlowlinkError
    from flowlink.settings import unreachable_after

    monkeypatch.delenv("FLOWLINK_UNREACHABLE_AFTER")
    assert unreachable_after() == 30
    for bad in ("soon", "-1", "nan", "1e9"):
        monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", bad)
        with pytest.raises(FlowlinkError, match="FLOWLINK_UNREACHABLE_AFTER must be a number of seconds"):
            unreachable_after()
    monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", "0")
    assert unreachable_after() == 0


def make_run_settings() -> dict[str, str]:
    """The AIRFLOW__CORE__DEFAULT_TASK_RETRY* lines of examples/run.sh (`make run`), as they are."""
    text = (REPO / "examples" / "run.sh").read_text()
    found = dict(re.findall(r"^export (AIRFLOW__CORE__DEFAULT_TASK_RETR\w+)=(\S+)", text, re.M))
    assert set(found) == {"AIRFLOW__CORE__DEFAULT_TASK_RETRIES", "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"}, found
    return found


@pytest.mark.reliability("Faults", "The target is down: a real Airflow run with `make run`'s settings")
def test_a_step_whose_target_is_down_fails_within_about_a_minute(tmp_path, monkeypatch, observe):
    """Airflow standalone with `make run`'s task retries (2, 60 s apart) and Flowlink's defaults (nothing set: an
    application is given up after 30 s); the example workflow's shop connection points at a closed port. One run:
    both touchpoints (customers, then orders, which still runs after a failed touchpoint) load to the shop."""
    from flowlink import publish
    from flowlink.store import Store, snapshots

    retries = make_run_settings()
    root = tmp_path
    create_erp(root / "erp.db", customers=20, orders=30)
    shop_url = f"http://127.0.0.1:{free_port()}"
    server = AirflowServer(root, {**demo_connections(root / "erp.db", shop_url), **retries})
    try:
        assert not any(k.startswith("FLOWLINK_UNREACHABLE") for k in server.env)  # the default applies
        server.flowlink("publish", str(REPO / "examples" / "erp_to_shop.yaml"))
        monkeypatch.setenv("FLOWLINK_HOME", str(root / "flowlink"))
        publish.make_live(publish.published("erp_to_shop"))
        wait_for("the workflow's DAG", lambda: server.dag_known("erp_to_shop"), timeout=120, every=1)
        answer = server.api("POST", "/api/v2/dags/erp_to_shop/dagRuns", json={"logical_date": None})
        assert answer.ok, answer.text
        run_id = answer.json()["dag_run_id"]
        state = wait_for(
            "the run to end",
            lambda: (s := server.run_state("erp_to_shop", run_id)) in ("success", "failed") and s,
            timeout=300,
            every=1,
        )
        run = server.api("GET", f"/api/v2/dags/erp_to_shop/dagRuns/{run_id}").json()
        took = (
            dt.datetime.fromisoformat(run["end_date"]) - dt.datetime.fromisoformat(run["start_date"])
        ).total_seconds()
        tries = {task: server.task_tries("erp_to_shop", run_id, task) for task in ("customers.load", "orders.load")}
        store = Store.open(f"sqlite:///{root / 'flowlink' / 'flowlink.db'}")
        steps = snapshots.snapshot(store, run_id)["steps"]
        store.dispose()
    finally:
        server.stop()
    assert state == "failed"
    for task, its_tries in tries.items():  # no Airflow retry of an unreachable target
        assert [t["state"] for t in its_tries] == ["failed"], (task, its_tries)
    loads = {
        task: (
            dt.datetime.fromisoformat(t[0]["end_date"]) - dt.datetime.fromisoformat(t[0]["start_date"])
        ).total_seconds()
        for task, t in tries.items()
    }
    assert all(30 <= s < 60 for s in loads.values()), loads  # the budget once per step (and a task's start)
    load = next(s for s in steps if (s["touchpoint"], s["step"]) == ("customers", "load"))
    assert load["status"] == "failed"
    assert re.fullmatch(
        rf"{re.escape(shop_url)}: connection refused \(PUT /customers/\d+\); gave up after 30 s "
        r"\(FLOWLINK_UNREACHABLE_AFTER\)",
        load["message"],
    ), load["message"]
    assert 60 <= took < 120, took  # two loads, one after the other, each giving up after 30 s; 10 min 12 s before
    observe(
        f"task retries {retries['AIRFLOW__CORE__DEFAULT_TASK_RETRIES']} x "
        f"{retries['AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY']} s as in make run: the run failed after {took:.0f} s "
        f"(before: 10 min 12 s); customers.load failed after {loads['customers.load']:.0f} s, tried once: "
        f"'{load['message']}'; orders.load (which still runs after it) after {loads['orders.load']:.0f} s, once"
    )
