"""Faults through real runs (dag.test): a target failing some records, the store or the source going away.

Every test asserts that nothing is lost or duplicated: each source record ends in the bucket once, as Success,
and in the target once. The example workflow (examples/erp_to_shop.yaml) runs from the demo ERP to the demo shop
on loopback; PostgreSQL (store or source) is reached through a TCP proxy that the test takes down and up again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from flowlink.actions import publish_workflow, request_resync
from flowlink.errors import FlowlinkError
from flowlink.publish import make_live
from flowlink.store import Store, bucket, snapshots, state
from flowlink.store import db as store_db
from tests.airflow_helpers import REPO, load_dags
from tests.fixtures import copy_erp_to_postgres

WF = "erp_to_shop"
SHOP_FAST = {"timeout": 0.3, "retries": 1, "backoff": 0.05}  # REST connector settings (the connection's extra)


class FaultyShop(DemoShop):
    """The demo shop, plus: writes to `slow` ids answer only after `delay` seconds; `on_write(n)` after each write."""

    def __init__(self):
        super().__init__()
        self.slow: set[str] = set()
        self.delay = 1.0
        self.on_write = None
        self._n = 0
        self._n_lock = threading.Lock()

    def put(self, resource, id_, body):
        if id_ in self.slow:
            time.sleep(self.delay)
        with self._n_lock:
            self._n += 1
            n = self._n
        if self.on_write:
            self.on_write(n)
        return super().put(resource, id_, body)


class TcpProxy:
    """A loopback TCP proxy to a server. down(): the port refuses connections and open ones are cut; up(): the
    same port serves again. What a server restart or a network outage looks like to a client."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the serving thread's accept()
            except OSError:
                pass
            listener.close()
        with self._lock:
            cut, self._open = self._open, set()
        for s in cut:
            _hang_up(s)

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _hang_up(src)
            _hang_up(dst)


def _hang_up(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@pytest.fixture
def pg_database(pg_url):
    """A function that creates a new database on the throwaway PostgreSQL server and returns its URL."""
    base = make_url(pg_url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    names = []

    def create(prefix: str) -> sa.URL:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        names.append(name)
        return base.set(database=name)

    yield create
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def proxy_to():
    """A function that starts a TcpProxy to a port; every proxy is closed after the test."""
    proxies: list[TcpProxy] = []

    def start(port: int) -> TcpProxy:
        proxies.append(TcpProxy(port))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.down()


@pytest.fixture
def world(tmp_path, monkeypatch, airflow_db):
    """A fresh Flowlink home, the faulty demo shop on loopback; `setup(...)` creates the ERP, the store and publishes."""
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path / "flowlink"))
    monkeypatch.delenv("FLOWLINK_STORE_URL", raising=False)
    monkeypatch.delenv("FLOWLINK_STAGING_DIR", raising=False)
    shop = FaultyShop()
    shop.start()
    opened: list[Store] = []

    def setup(
        *, customers: int, orders: int, store_url: str | None = None, erp_connection: dict | None = None
    ) -> tuple[str, Store]:
        erp = str(tmp_path / "erp.db")
        create_erp(erp, customers=customers, orders=orders)
        monkeypatch.setenv("AIRFLOW_CONN_DEMO_ERP", json.dumps(erp_connection or {"conn_type": "sqlite", "host": erp}))
        monkeypatch.setenv(
            "AIRFLOW_CONN_DEMO_SHOP", json.dumps({"conn_type": "http", "host": shop.url, "extra": SHOP_FAST})
        )
        if store_url:
            monkeypatch.setenv("FLOWLINK_STORE_URL", store_url)
        store = Store.open()
        opened.append(store)
        make_live(publish_workflow(store, REPO / "examples" / "erp_to_shop.yaml").result.artifact)
        return erp, store

    yield shop, setup
    shop.stop()
    for store in opened:
        store.dispose()


def run_dag(conf: dict | None = None, *, retries: int = 0, retry_delay: float = 1.0):
    """One real run of the workflow's DAG with these task retries; returns (dag_run, {task_id: (state, tries)})."""
    dag = load_dags().get_dag(WF)
    for task in dag.tasks:
        task.retries = retries
        task.retry_delay = dt.timedelta(seconds=retry_delay)
    run = dag.test(run_conf=conf)
    return run, {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}


def source_order(erp: str, table: str) -> list[str]:
    """The table's ids in the order the workflow reads them (incremental field, then key)."""
    with sqlite3.connect(erp) as conn:
        return [str(i) for (i,) in conn.execute(f"SELECT id FROM {table} ORDER BY updated_at, id")]


def statuses(store: Store, touchpoint: str) -> dict[str, str]:
    return {r["source_id"]: r["status"] for r in bucket.rows(store, WF, touchpoint=touchpoint, limit=100_000)}


@pytest.mark.reliability("Faults", "The target answers 500 or times out for a share of records")
def test_target_errors_and_timeouts_fail_only_those_records_and_a_resync_completes_them(world, observe):
    """140 customers go to the shop, which answers 500 for every 7th customer id and answers 1 of every 13 others
    (in reading order) only after 1 s, beyond the connector's 0.3 s timeout (1 retry). Then the shop recovers and
    the failed records are resynced."""
    shop, setup = world
    erp, store = setup(customers=140, orders=0)
    ids = source_order(erp, "customers")
    n500 = [i for i in ids if int(i) % 7 == 0]
    slow = [i for i in ids if int(i) % 7][::13]  # never two in a row: a run of timeouts would mean the shop is down
    shop.reject("customers", n500, status=500, message="deadlock detected, try again")
    shop.slow = set(slow)

    run, tasks = run_dag()
    assert tasks["customers.load"] == ("failed", 1)  # RecordsFailed: no Airflow retry, the bucket holds them
    failed = {r["source_id"]: r for r in bucket.rows(store, WF, touchpoint="customers", status="failed", limit=1000)}
    assert set(failed) == set(n500) | set(slow)
    for i in n500:
        assert failed[i]["message"] == f"PUT /customers/{i}: HTTP 500: deadlock detected, try again", failed[i]
    for i in slow:
        assert "timed out waiting for the answer" in failed[i]["message"] and f"/customers/{i}" in failed[i]["message"]
        assert "127.0.0.1" in failed[i]["message"], failed[i]
    ok = bucket.count(store, WF, touchpoint="customers", status="success")
    assert ok == len(ids) - len(failed) and set(statuses(store, "customers").values()) == {"success", "failed"}
    assert set(shop.records("customers")) >= set(ids) - set(failed)
    time.sleep(shop.delay + 0.5)  # the slow answers the connector gave up on are still being processed
    before = shop.writes("customers")

    # The shop recovers; the failed records are resynced, and only they are sent again.
    shop.reject("customers", [])
    shop.slow = set()
    resync_id, chosen = request_resync(store, WF, "customers", failed=True)
    assert sorted(chosen) == sorted(failed)
    run2, tasks2 = run_dag({"resync_id": resync_id})
    assert run2.state == "success", tasks2
    held = shop.records("customers")
    ok2 = bucket.count(store, WF, touchpoint="customers", status="success")
    assert ok2 == len(ids) and set(statuses(store, "customers").values()) == {"success"}
    assert sorted(held) == sorted(ids)  # every source record once (the shop keys by id): none missing, none extra
    resent = shop.writes("customers") - before
    assert resent == {i: 1 for i in failed}  # the resync sent exactly the failed records, once each
    with sqlite3.connect(erp) as conn:
        emails = {str(i): e.lower() for i, e in conn.execute("SELECT id, email FROM customers")}
    assert {i: c["email"] for i, c in held.items()} == emails
    observe(
        f"{len(failed)} of {len(ids)} Failed with the reason (500: {len(n500)}, timeout: {len(slow)}, e.g. "
        f"'{failed[slow[0]]['message']}'), {ok} Success; after the resync {ok2} Success, the shop holds {len(held)} of {len(ids)}, "
        f"duplicates 0; the resync wrote {sum(resent.values())} records"
    )


def _outage_at_write(shop: FaultyShop, proxy: TcpProxy, nth: int, seconds: float) -> dict:
    """Take the proxy down when the shop receives its nth write, and up again `seconds` later."""
    outage: dict = {}

    def on_write(n: int) -> None:
        if n == nth:
            proxy.down()
            outage["down"] = time.monotonic()
            timer = threading.Timer(seconds, lambda: (proxy.up(), outage.__setitem__("up", time.monotonic())))
            timer.daemon = True
            timer.start()

    shop.on_write = on_write
    return outage


def _store_behind_proxy(pg_database, proxy_to) -> tuple[str, TcpProxy]:
    direct = pg_database("flowlink_store")
    proxy = proxy_to(direct.port)
    return direct.set(port=proxy.port).render_as_string(hide_password=False), proxy


def _assert_complete(store: Store, shop: FaultyShop, erp: str) -> int:
    """Every customer once in the bucket as Success, once in the shop; returns the count."""
    ids = source_order(erp, "customers")
    assert statuses(store, "customers") == {i: "success" for i in ids}
    assert sorted(shop.records("customers")) == sorted(ids)
    with sqlite3.connect(erp) as conn:
        newest = conn.execute("SELECT max(updated_at) FROM customers").fetchone()[0]
    assert state.watermark(store, WF, "customers") == newest
    return len(ids)


IDLE = ("orders.transform", "orders.load")  # no orders in the ERP: the extract skips the rest of the touchpoint


@pytest.mark.reliability("Faults", "The store database is briefly unavailable")
def test_a_brief_store_outage_during_a_load_is_waited_out(world, pg_database, proxy_to, observe, caplog):
    """The store is PostgreSQL behind a proxy. While the shop receives the 250th of 400 customers, the proxy goes
    down for 3 s (refusing connections, cutting the pooled ones); the load's next store transaction meets the
    outage."""
    shop, setup = world
    url, proxy = _store_behind_proxy(pg_database, proxy_to)
    erp, store = setup(customers=400, orders=0, store_url=url)
    outage = _outage_at_write(shop, proxy, 250, 3.0)
    caplog.set_level(logging.WARNING, logger=store_db.__name__)

    run, tasks = run_dag()
    assert outage.get("down") and outage.get("up"), "the outage did not happen"
    assert run.state == "success", tasks
    # waited out: no task had to be retried (orders has no records: its transform and load are skipped, never tried)
    assert all(tries == 1 for task, (_, tries) in tasks.items() if task not in IDLE), tasks
    assert all(tasks[task] == ("skipped", 0) for task in IDLE), tasks
    waits = [r.getMessage() for r in caplog.records if "the Flowlink store is unreachable" in r.getMessage()]
    assert waits and all("Connection refused" in w for w in waits), waits
    n = _assert_complete(store, shop, erp)
    assert set(shop.writes("customers").values()) == {1}  # nothing sent twice
    load = next(
        s
        for s in snapshots.snapshot(store, run.run_id)["steps"]
        if (s["touchpoint"], s["step"]) == ("customers", "load")
    )
    assert load["status"] == "success" and load["count_out"] == n
    assert snapshots.data_log_count(store, WF, run.run_id, touchpoint="customers", step="load") == n
    observe(
        f"store down {outage['up'] - outage['down']:.1f} s in the middle of the load: the store connection was "
        f"retried {len(waits)} times (connection refused) and the run succeeded without a task retry; "
        f"{n} of {n} Success in the bucket, {n} in the shop, each written once"
    )


@pytest.mark.reliability("Faults", "The store database is unavailable for longer than the store waits")
def test_a_longer_store_outage_fails_the_task_clearly_and_its_retry_completes_the_load(
    world, pg_database, proxy_to, observe, monkeypatch, capfd
):
    """As above, but the store waits only 0.5 s for a connection and the outage lasts 3 s: the load task fails with
    a one-line reason and Airflow retries it (3 retries, 3 s apart)."""
    shop, setup = world
    monkeypatch.setattr(store_db, "CONNECT_WAIT", 0.5)
    url, proxy = _store_behind_proxy(pg_database, proxy_to)
    erp, store = setup(customers=400, orders=0, store_url=url)
    outage = _outage_at_write(shop, proxy, 250, 3.0)

    run, tasks = run_dag(retries=3, retry_delay=3)
    assert outage.get("down") and outage.get("up"), "the outage did not happen"
    assert run.state == "success", tasks
    tries = tasks["customers.load"][1]
    assert tries >= 2, tasks  # the first try failed on the store, a retry completed it
    assert all(t == 1 for task, (_, t) in tasks.items() if task not in ("customers.load", *IDLE)), tasks
    assert all(tasks[task] == ("skipped", 0) for task in IDLE), tasks
    output = capfd.readouterr()
    reasons = {line.strip() for line in (output.out + output.err).splitlines() if "StoreUnavailable:" in line}
    where = make_url(url).render_as_string(hide_password=True)
    assert reasons == {
        f"flowlink.store.db.StoreUnavailable: the Flowlink store {where} is unreachable: connection "
        f'failed: connection to server at "127.0.0.1", port {proxy.port} failed: Connection refused'
    }, reasons
    assert make_url(url).password not in output.out + output.err
    n = _assert_complete(store, shop, erp)
    writes = shop.writes("customers")
    assert set(writes) == set(source_order(erp, "customers"))
    observe(
        f"store down {outage['up'] - outage['down']:.1f} s, the store waiting 0.5 s: customers.load failed with "
        f"the one-line reason '{next(iter(reasons)).split(': ', 1)[1]}' and succeeded on try {tries}; "
        f"{n} of {n} Success in the bucket, the shop holds "
        f"{len(shop.records('customers'))} (the retry sent {sum(writes.values()) - n} again, by key: duplicates 0)"
    )


@pytest.mark.reliability("Faults", "The store connection is cut in the middle of a batch's transaction")
def test_a_store_connection_cut_mid_transaction_leaves_no_half_written_batch(world, pg_database, proxy_to, observe):
    """The store is PostgreSQL behind a proxy. As the load records its second batch of 200 customers (bucket rows
    updated, data log being inserted, not committed), the proxy cuts the store's connections and refuses new ones
    for 2 s. No task retries: the next run follows."""
    shop, setup = world
    url, proxy = _store_behind_proxy(pg_database, proxy_to)
    erp, store = setup(customers=400, orders=0, store_url=url)
    ids = source_order(erp, "customers")
    cut: dict = {}

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if conn.dialect.name == "postgresql" and statement.startswith("INSERT INTO data_log"):
            cut["n"] = cut.get("n", 0) + 1
            if cut["n"] == 2:
                proxy.down()
                timer = threading.Timer(2.0, proxy.up)
                timer.daemon = True
                timer.start()

    sa.event.listen(sa.Engine, "before_cursor_execute", on_execute)
    try:
        run, tasks = run_dag()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", on_execute)
    # data-log inserts: batch 1, batch 2 (cut), then batch 2's records left behind with the step's reason
    assert cut.get("n") == 3 and tasks["customers.load"] == ("failed", 1), tasks
    rows = statuses(store, "customers")
    assert rows == {i: "success" for i in ids[:200]} | {i: "unprocessed" for i in ids[200:]}  # batch 2: all or nothing
    logged = snapshots.data_log_page(store, WF, run.run_id, touchpoint="customers", step="load", limit=1000)
    assert sorted(d["source_id"] for d in logged if d["status"] == "success") == sorted(ids[:200])
    assert state.watermark(store, WF, "customers") is None
    load = next(
        s
        for s in snapshots.snapshot(store, run.run_id)["steps"]
        if (s["touchpoint"], s["step"]) == ("customers", "load")
    )
    where = make_url(url).render_as_string(hide_password=True)
    assert load["status"] == "failed" and load["message"].startswith(f"the Flowlink store {where} is unreachable: ")
    assert "\n" not in load["message"]
    # batch 2's records: Unprocessed with the step's reason, in the bucket and the data log (written with the step's end)
    left = {(d["source_id"], d["status"], d["message"]) for d in logged if d["status"] != "success"}
    assert left == {(i, "unprocessed", f"run {run.run_id}: load failed: {load['message']}") for i in ids[200:]}

    run2, tasks2 = run_dag()
    assert run2.state == "success", tasks2
    n = _assert_complete(store, shop, erp)
    assert shop.writes("customers") == {i: 2 for i in ids}  # each sent again by the full sync, upserted by key
    observe(
        f"connection cut while recording batch 2 of 2: batch 1's 200 rows Success, batch 2's 200 rows left "
        f"Unprocessed (none half-written), with the step's reason once the store was back, watermark not moved, the step failed with "
        f"'{load['message'].split(': ', 1)[1]}' (recorded once the store was back); the next run: {n} of {n} "
        f"Success, the shop holds {len(shop.records('customers'))}, duplicates 0"
    )


def test_opening_an_unreachable_store_waits_then_says_so_in_one_line(pg_database, proxy_to, monkeypatch):
    """Store.open on a server that refuses connections retries for CONNECT_WAIT seconds, then raises
    StoreUnavailable; a wrong password is not retried and not called unreachable."""
    monkeypatch.setattr(store_db, "CONNECT_WAIT", 1.0)
    direct = pg_database("flowlink_store")
    proxy = proxy_to(direct.port)
    proxy.down()
    started = time.monotonic()
    with pytest.raises(store_db.StoreUnavailable) as caught:
        Store.open(direct.set(port=proxy.port).render_as_string(hide_password=False))
    assert 1.0 <= time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(f"the Flowlink store postgresql+psycopg://{direct.username}:***@127.0.0.1:{proxy.port}/")
    assert message.endswith("Connection refused") and "\n" not in message and direct.password not in message

    monkeypatch.setattr(store_db, "CONNECT_WAIT", 30.0)
    started = time.monotonic()
    with pytest.raises(FlowlinkError) as caught:
        Store.open(direct.set(password="wrong").render_as_string(hide_password=False))
    assert time.monotonic() - started < 5 and not isinstance(caught.value, store_db.StoreUnavailable)
    assert "cannot migrate the Flowlink store" in str(caught.value) and "password authentication failed" in str(
        caught.value
    )


def _counts(url: sa.URL) -> dict[str, tuple[int, str]]:
    """Per table of the ERP: (rows, newest updated_at)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {
            t: tuple(conn.exec_driver_sql(f"SELECT count(*), max(updated_at) FROM {t}").one())
            for t in ("customers", "orders")
        }
    engine.dispose()
    return out


def _all_writes(shop: FaultyShop) -> Counter:
    """Write requests per record: customer ids as they are, order ids with an "o"."""
    return shop.writes("customers") + Counter({f"o{k}": n for k, n in shop.writes("orders").items()})


@pytest.mark.reliability("Faults", "The source application is unreachable")
def test_an_unreachable_source_fails_the_run_keeps_the_watermark_and_the_next_run_catches_up(
    world, pg_database, proxy_to, observe
):
    """The demo ERP is a PostgreSQL database behind a proxy. After a full sync, 3 customers change and 2 customers
    and 1 order are added; then the proxy goes down (connection refused) and a run starts; then it comes back up and
    the next run starts."""
    shop, setup = world
    erp_url = pg_database("erp")
    proxy = proxy_to(erp_url.port)
    erp, store = setup(
        customers=60,
        orders=90,
        erp_connection={
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": proxy.port,
            "login": erp_url.username,
            "password": erp_url.password,
            "schema": erp_url.database,
        },
    )
    copy_erp_to_postgres(erp, erp_url)
    run1, _ = run_dag()
    assert run1.state == "success"
    marks = {tp: state.watermark(store, WF, tp) for tp in ("customers", "orders")}
    assert marks == {t: m for t, (_, m) in _counts(erp_url).items()}

    engine = sa.create_engine(erp_url)
    with engine.begin() as conn:  # changes made in the ERP while the sync cannot reach it
        conn.exec_driver_sql(
            "UPDATE customers SET last_name = last_name || '-Neu', updated_at = '2025-03-01T10:00:00Z' "
            "WHERE id IN (3, 4, 5)"
        )
        conn.exec_driver_sql(
            "INSERT INTO customers VALUES "
            "(61, 'Ada', 'Lovelace', 'ada@example.co.uk', 'GB', '2025-03-01T10:00:01Z'), "
            "(62, 'Alan', 'Turing', 'alan@example.co.uk', 'GB', '2025-03-01T10:00:02Z')"
        )
        conn.exec_driver_sql("INSERT INTO orders VALUES (91, 61, 42.5, 'N', '2025-03-01T10:00:03Z')")
    engine.dispose()
    before = _all_writes(shop)
    rows_before = {tp: statuses(store, tp) for tp in ("customers", "orders")}

    proxy.down()
    run2, tasks2 = run_dag()
    assert run2.state == "failed"
    assert tasks2["customers.extract"] == ("failed", 1) and tasks2["customers.load"][0] == "upstream_failed"
    extract = next(
        s
        for s in snapshots.snapshot(store, run2.run_id)["steps"]
        if (s["touchpoint"], s["step"]) == ("customers", "extract")
    )
    reason = extract["message"]
    assert extract["status"] == "failed" and "Connection refused" in reason and f"127.0.0.1:{proxy.port}" in reason
    assert "\n" not in reason and erp_url.password not in reason
    assert {tp: state.watermark(store, WF, tp) for tp in ("customers", "orders")} == marks  # not moved
    assert {tp: statuses(store, tp) for tp in ("customers", "orders")} == rows_before  # no bucket row touched
    assert _all_writes(shop) == before  # nothing sent

    proxy.up()
    run3, tasks3 = run_dag()
    assert run3.state == "success", tasks3
    sent = _all_writes(shop) - before
    assert sent == Counter({"3": 1, "4": 1, "5": 1, "61": 1, "62": 1, "o91": 1})  # the changes, once each
    source = _counts(erp_url)
    assert {tp: state.watermark(store, WF, tp) for tp in ("customers", "orders")} == {
        t: m for t, (_, m) in source.items()
    }
    held = {"customers": shop.records("customers"), "orders": shop.records("orders")}
    for tp in ("customers", "orders"):
        assert len(held[tp]) == source[tp][0] == bucket.count(store, WF, touchpoint=tp, status="success")
        assert set(statuses(store, tp).values()) == {"success"}
    assert held["customers"]["4"]["name"].endswith("-Neu")
    observe(
        f"the run failed at customers.extract: '{reason}'; watermarks kept ({marks['customers']}, "
        f"{marks['orders']}), 0 records sent, bucket unchanged; the next run sent the {sum(sent.values())} changed "
        f"or new records once each and moved the watermarks; the shop holds {len(held['customers'])} customers and "
        f"{len(held['orders'])} orders = the source, each once"
    )
