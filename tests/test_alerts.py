"""Alerts for real: a real SMTP server (aiosmtpd) and a webhook receiver on loopback, real Airflow runs (dag.test).

Every test counts the messages that arrived exactly, and looks in each of them (decoded) for the passwords of
every connection involved: the application's, the SMTP server's and the webhook's.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import json
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlencode

import pytest
from sqlalchemy import update

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from flowlink import alerts, deployments, publish
from flowlink.actions import publish_workflow, request_resync
from flowlink.states import AlertEvent
from flowlink.store import Store, bucket, snapshots
from flowlink.store.tables import deployments as deployments_table
from flowlink.store.tables import environments
from tests.airflow_helpers import REPO, load_dags, run_dag

CUSTOMERS, ORDERS = 40, 60
SHOP_PASSWORD = "shop-Pa55word-9f3c"
SMTP_PASSWORD = "smtp-Pa55word-71ab"
HOOK_PASSWORD = "hook-Pa55word-2d6e"
HOOK_TOKEN_HEADER = "X-Hook-Secret"
HOOK_HEADER_VALUE = "hook-header-secret-55aa"
SECRETS = (SHOP_PASSWORD, SMTP_PASSWORD, HOOK_PASSWORD, HOOK_HEADER_VALUE)
BASE = "http://airflow.example:8080"
WF = "erp_to_shop"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")  # loopback only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ a real SMTP server on loopback


class Mailbox:
    """aiosmtpd's Controller on 127.0.0.1 with AUTH (login alerts / SMTP_PASSWORD); keeps every message."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[dict] = []
        self.logins: list[tuple[str, str]] = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                html_body = "\n".join(p.get_content() for p in msg.walk() if p.get_content_maintype() == "text")
                body = html.unescape(re.sub(r"<[^>]+>", "", html_body))  # what the reader sees
                box.messages.append(
                    {
                        "to": list(envelope.rcpt_tos),
                        "from": envelope.mail_from,
                        "subject": str(msg["Subject"]),
                        "body": body,
                        "raw": envelope.content.decode(),
                    }
                )
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            box.logins.append((login, password))
            return AuthResult(success=login == "alerts" and password == SMTP_PASSWORD)

        self.port = _free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_require_tls=False,
            auth_required=True,
        )

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def to(self, address: str) -> list[dict]:
        return [m for m in self.messages if address in m["to"]]


# ------------------------------------------------------------------ a webhook receiver on loopback


class Receiver:
    """Records every POST (path, auth header, JSON body); answers with the queued statuses, then 200."""

    def __init__(self):
        self.posts: list[dict] = []
        self.answers: list[int] = []
        box = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                status = box.answers.pop(0) if box.answers else 200
                box.posts.append(
                    {
                        "path": self.path,
                        "authorization": self.headers.get("Authorization"),
                        "secret_header": self.headers.get(HOOK_TOKEN_HEADER),
                        "raw": raw,
                        "json": json.loads(raw),
                        "status": status,
                    }
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/flowlink"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[dict]:
        return [p for p in self.posts if p["status"] < 300]


@pytest.fixture
def channels(tmp_path, monkeypatch):
    """The SMTP server and webhook receiver, their Airflow connections (with passwords), Airflow's base URL."""
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path / "flowlink"))
    monkeypatch.delenv("FLOWLINK_STORE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    mailbox, receiver = Mailbox().start(), Receiver().start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": mailbox.port,
                "login": "alerts",
                "password": SMTP_PASSWORD,
                "extra": {
                    "disable_ssl": True,
                    "disable_tls": True,
                    "from_email": "flowlink@example.com",
                    "retry_limit": 0,
                    "timeout": 10,
                },
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPS_HOOK",
        json.dumps(
            {
                "conn_type": "http",
                "host": receiver.url,
                "login": "hook",
                "password": HOOK_PASSWORD,
                "extra": {"headers": {HOOK_TOKEN_HEADER: HOOK_HEADER_VALUE}},
            }
        ),
    )
    yield mailbox, receiver
    mailbox.stop()
    receiver.stop()


def install(store: Store, art: publish.Artifact, environment: str) -> None:
    """What the agent's install step does: the published file in live/<environment>/."""
    from flowlink import settings

    folder = settings.live_dir() / environment
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(art.path, folder / f"{art.workflow}.json")


@pytest.fixture
def demo(channels, tmp_path, monkeypatch, airflow_db):
    """The demo ERP and shop (its connection has a password), the example deployed to environment cloud."""
    mailbox, receiver = channels
    create_erp(tmp_path / "erp.db", customers=CUSTOMERS, orders=ORDERS)
    shop = DemoShop()
    shop.start()
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_ERP", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "erp.db")}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEMO_SHOP",
        json.dumps({"conn_type": "http", "host": shop.url, "login": "api", "password": SHOP_PASSWORD}),
    )
    store = Store.open()
    deployments.add_environment(store, "cloud", "cloud")
    install(store, publish_workflow(store, REPO / "examples" / "erp_to_shop.yaml").result.artifact, "cloud")
    yield store, shop, mailbox, receiver
    shop.stop()
    store.dispose()


def assert_no_credentials(mailbox: Mailbox, receiver: Receiver) -> int:
    """No password of any connection in any message (decoded bodies, raw mails, webhook bodies); returns how many
    texts were searched."""
    texts = (
        [m["body"] for m in mailbox.messages]
        + [m["raw"] for m in mailbox.messages]
        + [m["subject"] for m in mailbox.messages]
    )
    texts += [p["raw"] for p in receiver.posts]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
    return len(texts)


def run_links(run_id: str, touchpoint: str | None = None) -> dict:
    bucket_query = {"workflow": WF, **({"touchpoint": touchpoint} if touchpoint else {}), "status": "failed"}
    return {
        "airflow_run": f"{BASE}/dags/{WF}/runs/{quote(run_id, safe='')}",
        "snapshot": f"{BASE}/flowlink/ui/snapshot?" + urlencode({"workflow": WF, "run_id": run_id}),
        "bucket": f"{BASE}/flowlink/ui/bucket?" + urlencode(bucket_query),
    }


# ------------------------------------------------------------------ the tests


@pytest.mark.reliability("Faults", "The target rejects some records: each alert channel hears of it once")
def test_rejected_records_give_one_records_failed_alert_per_touchpoint_and_channel(demo, observe):
    """A real run of the example (40 customers, 60 orders) against a shop that rejects 3 customers (and so their
    orders); channels: environment cloud by e-mail (all events), the workflow by webhook (records_failed,
    run_failed), the workflow by e-mail for deployment_unsuccessful only, another workflow by e-mail. Then the
    alerts are asked for again, as a repeated callback would."""
    store, shop, mailbox, receiver = demo
    alerts.add_channel(store, environment="cloud", email="ops@example.com")
    alerts.add_channel(store, workflow=WF, webhook="ops_hook", events="records_failed,run_failed")
    alerts.add_channel(store, workflow=WF, email="deploys@example.com", events=["deployment_unsuccessful"])
    alerts.add_channel(store, workflow="other_flow", email="other@example.com")
    rejected = ["5", "7", "11"]
    shop.reject("customers", rejected, status=422, message="email: blocked by the shop's spam filter")

    run, states = run_dag(WF)
    assert run.state == "failed" and states["customers.load"] == "failed" and states["orders.load"] == "failed"
    failed = {tp: n for (tp, st), n in bucket.counts(store, WF).items() if st == "failed"}
    assert failed["customers"] == 3 and failed["orders"] > 0

    # One alert per touchpoint whose records failed, on each channel that wants it; none for the run as such.
    assert [m["to"] for m in mailbox.messages] == [["ops@example.com"]] * 2 and len(receiver.posts) == 2
    mails = {m["subject"]: m["body"] for m in mailbox.messages}
    posts = {p["json"]["facts"]["touchpoint"]: p for p in receiver.posts}
    assert set(mails) == {f"[Flowlink] {WF}: {failed[tp]} {tp} records failed in run {run.run_id}" for tp in failed}
    customers = mails[f"[Flowlink] {WF}: 3 customers records failed in run {run.run_id}"]
    assert f"Load: {CUSTOMERS} sent to the target, {CUSTOMERS - 3} loaded, 3 rejected." in customers
    assert all(
        f"  {i}: load, try 1: PUT /customers/{i}: HTTP 422: email: blocked by the shop's spam filter" in customers
        for i in rejected
    )
    for tp, post in posts.items():
        payload, links = post["json"], run_links(run.run_id, tp)
        assert payload["event"] == "records_failed" and payload["workflow"] == WF and payload["environment"] == "cloud"
        assert payload["facts"]["failed_records"] == failed[tp] and len(payload["facts"]["records"]) == failed[tp]
        assert payload["links"] == links
        assert all(url in mails[payload["subject"]] for url in links.values())
        assert post["path"] == "/hooks/flowlink" and post["authorization"].startswith("Basic ")
        assert post["secret_header"] == HOOK_HEADER_VALUE  # the connection's auth reached the receiver, not the text
    assert set(mailbox.logins) == {("alerts", SMTP_PASSWORD)}
    searched = assert_no_credentials(mailbox, receiver)

    # Asked again (a repeated callback, a cleared task failing the same way): nothing is sent twice.
    assert alerts.run_ended_failed(store, WF, run.run_id) == []
    assert alerts.records_failed(store, WF, run.run_id, "customers") == []
    assert len(mailbox.messages) == 2 and len(receiver.posts) == 2
    assert [(r["event"], r["ok"]) for r in alerts.sent(store)] == [("records_failed", True)] * 4
    observe(
        f"customers 3 and orders {failed['orders']} records failed: 2 mails to the environment's address and 2 "
        f"webhook POSTs, one per touchpoint, with the counts, the reasons and 3 links; 0 to the workflow's "
        f"deployment-only channel and to another workflow's; asked again: 0; no password in {searched} texts"
    )


@pytest.mark.reliability("Faults", "The target is unreachable: a run_failed alert names the step and the reason")
def test_an_unreachable_target_gives_one_run_failed_alert(demo, monkeypatch, observe):
    """The shop is stopped before a run (connection refused, 1 try); channels: the workflow by e-mail for
    run_failed only, the environment by webhook for records_failed only."""
    store, shop, mailbox, receiver = demo
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEMO_SHOP",
        json.dumps(
            {
                "conn_type": "http",
                "host": shop.url,
                "login": "api",
                "password": SHOP_PASSWORD,
                "extra": {"retries": 1, "backoff": 0.1},
            }
        ),
    )
    alerts.add_channel(store, workflow=WF, email="dev@example.com", events="run_failed")
    alerts.add_channel(store, environment="cloud", webhook="ops_hook", events="records_failed")
    shop.stop()

    run, states = run_dag(WF)
    assert run.state == "failed" and states["customers.load"] == "failed"
    assert len(mailbox.messages) == 1 and receiver.posts == []
    mail = mailbox.messages[0]
    assert mail["to"] == ["dev@example.com"] and mail["subject"] == f"[Flowlink] {WF}: run {run.run_id} failed"
    load = next(s for s in snapshots.run_steps(store, WF, run.run_id) if s["step"] == "load")
    assert f"customers.load: failed: {load['message']}" in mail["body"] and "127.0.0.1" in load["message"]
    links = run_links(run.run_id)
    assert all(url in mail["body"] for url in (links["airflow_run"], links["snapshot"]))

    # The same callback as the dag-processor runs it (its function, the callback request the scheduler sends): once
    # the first alert is forgotten, exactly one more.
    import structlog
    from airflow.callbacks.callback_requests import DagCallbackRequest
    from airflow.dag_processing.processor import _execute_dag_callbacks
    from sqlalchemy import delete

    from flowlink.store.tables import alerts_sent

    with store.engine.begin() as conn:
        conn.execute(delete(alerts_sent))
    request = DagCallbackRequest(
        filepath="flowlink_dags.py",
        dag_id=WF,
        run_id=run.run_id,
        bundle_name="dags-folder",
        bundle_version=None,
        is_failure_callback=True,
        msg="task_failure",
    )
    _execute_dag_callbacks(load_dags(), request, structlog.get_logger())
    assert len(mailbox.messages) == 2 and mailbox.messages[1]["subject"] == mail["subject"]
    searched = assert_no_credentials(mailbox, receiver)
    observe(
        f"1 run_failed mail naming customers.load and its reason (and 1 more through the dag-processor's "
        f"callback function); 0 webhook POSTs (that channel wants records_failed only); no password in "
        f"{searched} texts"
    )


@pytest.mark.reliability("Faults", "A deployment passes its wait till: deployment_unsuccessful alert")
def test_an_expired_deployment_gives_one_deployment_unsuccessful_alert(channels, airflow_db, observe):
    """A deployment to environment cloud whose agent never reports; its wait till is moved into the past and the
    tracking DAG flowlink_deployments runs (dag.test), then runs again. Channels: cloud by e-mail and webhook."""
    mailbox, receiver = channels
    store = Store.open()
    deployments.add_environment(store, "cloud", "cloud")
    publish.publish(REPO / "examples" / "erp_to_shop.yaml")
    alerts.add_channel(store, environment="cloud", email="ops@example.com", events="deployment_unsuccessful")
    alerts.add_channel(store, environment="cloud", webhook="ops_hook")
    d = deployments.deploy(store, WF)
    with store.engine.begin() as conn:
        conn.execute(
            update(deployments_table)
            .where(deployments_table.c.id == d["id"])
            .values(wait_till=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )

    run, states = run_dag("flowlink_deployments", conf={"deployment_id": d["id"]})
    assert states == {"track": "failed"}
    assert deployments.get(store, d["id"])["status"] == "unsuccessful"
    run_dag("flowlink_deployments", conf={"deployment_id": d["id"]})  # tracked again: no second alert
    assert len(mailbox.messages) == 1 and len(receiver.accepted()) == 1
    mail, payload = mailbox.messages[0], receiver.posts[0]["json"]
    assert mail["subject"] == f"[Flowlink] deploy of {WF} v1 to cloud is Unsuccessful"
    assert "downloading workflow data, downloading stylesheets, installing, deployed" in mail["body"]
    assert payload["event"] == "deployment_unsuccessful" and payload["facts"]["id"] == d["id"]
    assert payload["links"] == {"deployments": f"{BASE}/flowlink/ui/deployments?environment=cloud"}
    assert_no_credentials(mailbox, receiver)
    store.dispose()
    observe("2 tracking runs of the expired deployment: 1 mail and 1 webhook POST naming the steps never reported")


@pytest.mark.reliability("Faults", "An agent stays silent longer than the set time: one alert per disconnection")
def test_a_silent_agent_gives_one_alert_per_disconnection(channels, airflow_db, observe):
    """Three environments: cloud's agent last heard 20 minutes ago (alert after 15), site_b's 5 minutes ago,
    site_c's never; the alert DAG flowlink_alerts runs (dag.test) twice; then cloud's agent comes back and falls
    silent again and the DAG runs a third time."""
    mailbox, receiver = channels
    store = Store.open()
    for name in ("cloud", "site_b", "site_c"):
        deployments.add_environment(store, name, "cloud" if name == "cloud" else "on-premise")
        alerts.add_channel(store, environment=name, email=f"{name}@example.com")
    alerts.add_channel(store, environment="cloud", webhook="ops_hook", events="agent_disconnected")
    now = dt.datetime.now(dt.UTC)

    def heard(name, minutes_ago):
        with store.engine.begin() as conn:
            conn.execute(
                update(environments)
                .where(environments.c.name == name)
                .values(last_heartbeat=now - dt.timedelta(minutes=minutes_ago))
            )

    heard("cloud", 20)
    heard("site_b", 5)
    for _ in range(2):
        run, states = run_dag("flowlink_alerts")
        assert run.state == "success", states
    assert [m["to"] for m in mailbox.messages] == [["cloud@example.com"]] and len(receiver.posts) == 1
    assert mailbox.messages[0]["subject"] == "[Flowlink] agent of cloud disconnected for 20 minutes"
    assert f"{BASE}/flowlink/ui/environments" in mailbox.messages[0]["body"]
    assert receiver.posts[0]["json"]["facts"]["silent_minutes"] == 20

    heard("cloud", 16)  # it came back (a newer heartbeat) and has been silent again for 16 minutes
    run_dag("flowlink_alerts")
    assert len(mailbox.messages) == 2 and len(receiver.posts) == 2
    assert_no_credentials(mailbox, receiver)
    store.dispose()
    observe(
        "agent silent 20 min (limit 15): 1 mail + 1 POST over 2 checks; 5 min and never-connected agents: 0; "
        "silent again after a heartbeat: 1 more each"
    )


@pytest.mark.reliability("Faults", "A scheduled run cannot start because the previous run is still running")
def test_a_scheduled_run_blocked_by_a_running_one_gives_one_alert(demo, observe):
    """The example runs every minute. A scheduled run of it is created with Airflow's own create_dagrun at a tick
    3 minutes ago and left running (its first step running in the snapshot since that tick); an earlier run that
    ended before the next tick is in the snapshot too. flowlink_alerts runs twice (dag.test), then once more after
    the long run ended."""
    from airflow.models.dag import DagModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    from flowlink.schedule import Ticks
    from flowlink.store.tables import steps

    store, shop, mailbox, receiver = demo
    alerts.add_channel(store, workflow=WF, email="dev@example.com", events="run_blocked")
    alerts.add_channel(store, workflow=WF, webhook="ops_hook", events="run_failed")  # not this event
    load_dags()
    now = dt.datetime.now(dt.UTC)
    ticks = Ticks(publish.live(WF).workflow_model().schedule)
    tick = ticks.last_tick_at_or_before(now - dt.timedelta(minutes=3))
    with create_session() as session:
        dag = SerializedDagModel.get_dag(WF, session=session)
        dr = dag.create_dagrun(
            run_id=f"scheduled__{tick.isoformat()}",
            logical_date=tick,
            data_interval=(tick, tick),
            run_after=tick,
            run_type=DagRunType.SCHEDULED,
            triggered_by=DagRunTriggeredByType.TIMETABLE,
            state=DagRunState.RUNNING,
            start_date=tick,
            session=session,
        )
        session.get(DagModel, WF).is_paused = False
        run_id = dr.run_id

    def snapshot_step(run, started, ended=None):
        snapshots.start_step(store, WF, run, 1, "customers", "extract")
        with store.engine.begin() as conn:
            conn.execute(
                update(steps)
                .where(steps.c.run_id == run)
                .values(started_at=started, ended_at=ended, status="running" if ended is None else "success")
            )

    earlier = tick - dt.timedelta(minutes=10)
    snapshot_step("scheduled__earlier", earlier + dt.timedelta(seconds=2), earlier + dt.timedelta(seconds=40))
    snapshot_step(run_id, tick + dt.timedelta(seconds=2))
    blocked = [t for t in (tick + dt.timedelta(minutes=k) for k in range(1, 5)) if t <= now - dt.timedelta(minutes=1)]

    for _ in range(2):
        run, states = run_dag("flowlink_alerts")
        assert run.state == "success", states
    assert len(mailbox.messages) == 1 and receiver.posts == []
    mail = mailbox.messages[0]
    first = tick + dt.timedelta(minutes=1)
    assert mail["subject"] == f"[Flowlink] {WF}: the run scheduled at {first:%Y-%m-%d %H:%M} UTC could not start"
    assert f"run {run_id} (started {tick:%Y-%m-%d %H:%M}:02 UTC) is still running" in mail["body"]
    assert f"Ticks without a run so far: {len(blocked)} (" + ", ".join(f"{t:%H:%M}" for t in blocked) in mail["body"]
    assert run_links(run_id)["snapshot"] in mail["body"]

    with store.engine.begin() as conn:  # the long run ends: it was already alerted
        conn.execute(update(steps).where(steps.c.run_id == run_id).values(status="success", ended_at=now))
    with create_session() as session:
        session.merge(dr).state = DagRunState.SUCCESS
    run_dag("flowlink_alerts")
    assert len(mailbox.messages) == 1
    assert_no_credentials(mailbox, receiver)
    observe(
        f"a run left running since {tick:%H:%M}: Airflow has no run for {len(blocked)} later ticks; 3 checks "
        "sent 1 mail naming the running run and the ticks; 0 for a run that ended before the next tick; 0 to a "
        "channel without run_blocked"
    )


def test_daily_summary_counts_and_nothing_when_empty(demo, observe):
    """A run with 3 rejected customers, then a resync of them after the fix; the daily summary DAG runs
    (dag.test). Then the summary of a day without runs: a channel that skips empty summaries gets nothing, one that
    wants them gets one."""
    store, shop, mailbox, receiver = demo
    alerts.add_channel(
        store, workflow=WF, email="daily@example.com", events="deployment_unsuccessful", daily_summary=True
    )
    alerts.add_channel(
        store,
        environment="cloud",
        webhook="ops_hook",
        events="agent_disconnected",
        daily_summary=True,
        skip_empty_summary=False,
    )
    alerts.add_channel(
        store, workflow="other_flow", email="other@example.com", daily_summary=True, skip_empty_summary=False
    )
    shop.reject("customers", ["5", "7", "11"], message="blocked")
    run_dag(WF)
    orders_failed = bucket.count(store, WF, touchpoint="orders", status="failed")
    shop.reject("customers", [])
    resync_id, _ = request_resync(store, WF, "customers", failed=True)
    run, _ = run_dag(WF, conf={"resync_id": resync_id})
    assert run.state == "success"
    assert mailbox.messages == [] and receiver.posts == []  # no events these channels want

    run_dag("flowlink_daily_summary")
    run_dag("flowlink_daily_summary")  # the same day again: nothing twice
    successes = (CUSTOMERS - 3) + (ORDERS - orders_failed) + 3
    assert len(mailbox.messages) == 1 and len(receiver.posts) == 1
    mail, facts = mailbox.messages[0], receiver.posts[0]["json"]["facts"]
    assert mail["to"] == ["daily@example.com"]
    assert (
        mail["subject"]
        == f"[Flowlink] {WF} daily summary: {successes} succeeded (3 on a retry), {3 + orders_failed} failed"
    )
    assert {
        k: facts[k] for k in ("runs", "failed_runs", "successes", "successful_retries", "failures", "failed_now")
    } == {
        "runs": 2,
        "failed_runs": 1,
        "successes": successes,
        "successful_retries": 3,
        "failures": 3 + orders_failed,
        "failed_now": orders_failed,
    }

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)  # a day on which nothing ran
    alerts.send_daily_summaries(store, alerts.live_workflows(), until=later)
    assert len(mailbox.messages) == 1 and len(receiver.posts) == 2
    assert receiver.posts[1]["json"]["facts"]["runs"] == 0 and "nothing ran" in receiver.posts[1]["json"]["text"]
    assert_no_credentials(mailbox, receiver)
    observe(
        f"summary: {successes} successes, 3 successful retries, {3 + orders_failed} failures; 1 mail + 1 POST "
        "over 2 summary runs; empty day: 0 to the skip-empty channel, 1 to the other"
    )


def test_webhook_retries_5xx_not_4xx_and_a_broken_channel_is_recorded(channels, monkeypatch):
    mailbox, receiver = channels
    store = Store.open()
    deployments.add_environment(store, "cloud", "cloud")
    ch = alerts.add_channel(store, environment="cloud", webhook="ops_hook")
    alert = alerts.message(
        AlertEvent.AGENT_DISCONNECTED, subject="s", lines=["t"], facts={}, link_map={}, environment="cloud"
    )
    receiver.answers = [503, 502]
    done = alerts.send(store, AlertEvent.AGENT_DISCONNECTED, "k1", alert, environment="cloud")
    assert [p["status"] for p in receiver.posts] == [503, 502, 200] and done[0]["ok"]
    receiver.answers = [400]
    done = alerts.send(store, AlertEvent.AGENT_DISCONNECTED, "k2", alert, environment="cloud")
    assert [p["status"] for p in receiver.posts][3:] == [400] and not done[0]["ok"]
    assert "answered 400" in done[0]["message"] and HOOK_PASSWORD not in done[0]["message"]
    # An SMTP server that refuses the login: recorded as not sent, the caller goes on.
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": mailbox.port,
                "login": "alerts",
                "password": "wrong-pass-xyz",
                "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 10},
            }
        ),
    )
    alerts.add_channel(store, environment="cloud", email="ops@example.com")
    done = alerts.send(store, AlertEvent.AGENT_DISCONNECTED, "k3", alert, environment="cloud")
    by_kind = {d["kind"]: d for d in done}
    assert by_kind["webhook"]["ok"] and not by_kind["email"]["ok"]
    assert "wrong-pass-xyz" not in by_kind["email"]["message"] and mailbox.messages == []
    assert [(r["channel_id"] == ch["id"], r["dedupe_key"], r["ok"]) for r in alerts.sent(store)][:2] == [
        (True, "k1", True),
        (True, "k2", False),
    ]
    store.dispose()


def test_channels_are_checked_when_added(channels):
    store = Store.open()
    deployments.add_environment(store, "cloud", "cloud")
    from flowlink.errors import FlowlinkError

    for kwargs, words in [
        (dict(environment="cloud", workflow=WF, email="a@example.com"), "exactly one"),
        (dict(environment="nowhere", email="a@example.com"), "no environment 'nowhere'"),
        (dict(workflow=WF, email="not-an-address"), "e-mail addresses"),
        (dict(workflow=WF, webhook="https://user:pw@hooks.example.com/x"), "https://***@hooks"),
        (dict(workflow=WF, email="a@example.com", events="run_failed,bogus"), "unknown alert events bogus"),
    ]:
        with pytest.raises(FlowlinkError, match=None) as info:
            alerts.add_channel(store, **kwargs)
        assert words in str(info.value) and "pw@" not in str(info.value)
    ch = alerts.add_channel(store, workflow=WF, email="a@example.com; b@example.com", events="run_failed")
    assert ch["target"] == "a@example.com,b@example.com" and ch["events"] == ["run_failed"]
    assert [c["id"] for c in alerts.channels_for(store, WF, None, "run_failed")] == [ch["id"]]
    assert alerts.channels_for(store, WF, None, "records_failed") == []
    alerts.remove_channel(store, ch["id"])
    assert alerts.channels(store) == []
    store.dispose()


def test_records_at_their_maximum_of_tries_are_named(demo, observe):
    """Environment cloud allows 2 tries. A run in which the shop rejects 3 customers, then a resync of them while
    it still rejects them: the resync's records_failed alert names the 3 as having reached the maximum, and the run
    (whose orders touchpoint was skipped) ends failed without a second, run_failed alert."""
    store, shop, mailbox, receiver = demo
    with store.engine.begin() as conn:
        conn.execute(update(environments).where(environments.c.name == "cloud").values(retry_max_tries=2))
    alerts.add_channel(store, workflow=WF, email="dev@example.com", events="records_failed")
    shop.reject("customers", ["5", "7", "11"], message="blocked")
    run_dag(WF)
    assert len(mailbox.messages) == 2  # customers and orders
    assert not any("maximum number of tries" in m["body"] for m in mailbox.messages)
    resync_id, _ = request_resync(store, WF, "customers", failed=True)
    run, states = run_dag(WF, conf={"resync_id": resync_id})
    assert run.state == "failed" and states["customers.load"] == "failed" and states["all-loaded"] == "upstream_failed"
    assert len(mailbox.messages) == 3
    mail = mailbox.messages[2]
    assert mail["subject"] == f"[Flowlink] {WF}: 3 customers records failed in run {run.run_id}"
    assert "3 of them reached the maximum number of tries and stay Failed" in mail["body"] and all(
        f"  {i} after 2 tries" in mail["body"] for i in ("5", "7", "11")
    )
    observe("a resync rejecting the same 3 customers (max 2 tries): the run fails and 1 alert names all 3 as exhausted")


def test_the_notifiers_work_as_airflow_callbacks(channels):
    """Called as Airflow calls a DAG's or task's on_failure_callback (a context, no payload or text given)."""
    from types import SimpleNamespace

    from flowlink_airflow.notifiers.mail import FlowlinkEmailNotifier
    from flowlink_airflow.notifiers.webhook import FlowlinkWebhookNotifier

    mailbox, receiver = channels
    context = {
        "dag": SimpleNamespace(dag_id="some_dag"),
        "run_id": "manual__1",
        "reason": "task_failure",
        "ti": SimpleNamespace(task_id="t1", state="failed"),
    }
    FlowlinkWebhookNotifier(http_conn_id="ops_hook")(dict(context))
    FlowlinkEmailNotifier(to="ops@example.com")(dict(context))
    assert [p["json"] for p in receiver.posts] == [
        {"event": "task_failed", "dag_id": "some_dag", "run_id": "manual__1", "task_id": "t1", "reason": "task_failure"}
    ]
    assert [(m["to"], m["subject"]) for m in mailbox.messages] == [
        (["ops@example.com"], "[Flowlink] DAG some_dag run manual__1 task t1 (failed): task_failure")
    ]
    assert_no_credentials(mailbox, receiver)


def test_the_alert_command(channels):
    import os
    import subprocess
    import sys

    def flowlink(*args):
        return subprocess.run(
            [sys.executable, "-m", "flowlink.cli", "alert", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "250"},
            timeout=120,
        )

    store = Store.open()
    deployments.add_environment(store, "cloud", "cloud")
    done = flowlink("add", "--environment", "cloud", "--email", "ops@example.com", "--events", "run_failed,run_blocked")
    assert (
        done.returncode == 0
        and "alert channel 1 added: email ops@example.com for environment cloud, events: run_failed, run_blocked"
        in done.stdout
    )
    done = flowlink("add", "--workflow", WF, "--webhook", "ops_hook", "--daily-summary", "--summary-when-empty")
    assert done.returncode == 0 and "daily summary (also when empty)" in done.stdout
    listed = json.loads(flowlink("list", "--json").stdout)
    assert [(c["id"], c["kind"], c["events"], c["daily_summary"], c["skip_empty_summary"]) for c in listed] == [
        (1, "email", ["run_failed", "run_blocked"], False, True),
        (2, "webhook", [], True, False),
    ]
    done = flowlink("add", "--workflow", WF, "--webhook", "https://u:secret-pw@example.com/hook")
    assert done.returncode == 1 and "secret-pw" not in done.stderr and "Traceback" not in done.stderr
    assert flowlink("remove", "1").returncode == 0
    done = flowlink("remove", "1")
    assert done.returncode == 1 and "no alert channel 1" in done.stderr
    assert [c["id"] for c in alerts.channels(store)] == [2]
    store.dispose()


def test_alert_texts_hide_every_form_of_a_secret():
    """A password may reach an alert plain, URL-encoded (in a URL or a form), JSON-escaped or as a URL's user info."""
    from urllib.parse import quote_plus

    from flowlink.errors import secret_forms

    secret = 'pa ss/wörd"&'
    text = (
        f"plain {secret}; path http://h/{quote(secret, safe='')}; query ?p={quote_plus(secret)}; "
        f"json {json.dumps({'p': secret})}; http://admin:other@h/x"
    )
    scrubbed = alerts.scrub(text, (secret,))
    assert not [form for form in secret_forms([secret]) if form in scrubbed], scrubbed
    assert "other" not in scrubbed and scrubbed.count("***") == 5
