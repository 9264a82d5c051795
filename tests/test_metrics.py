"""Metrics through Airflow's own (plugins/metrics.py): real runs of the example workflow (SQLite ERP -> demo shop on
loopback) with Airflow's ``[metrics] statsd_on``, received by a real StatsD daemon (Etsy's statsd from npm) on
loopback, whose management port tells the counters and timers it aggregated.

Each run is ``dag.test()`` in a process of its own: Airflow chooses its metrics backend once per process, when its
serializers load (airflow.sdk.serde; a task process's task runner does it too), which in this test process happened
long before a test sets ``statsd_on``."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from examples.demo_erp import create as create_erp
from examples.demo_erp import touch
from examples.demo_shop import DemoShop
from flowlink.actions import publish_workflow
from flowlink.publish import make_live
from flowlink.store import snapshots
from tests.airflow_helpers import REPO, demo_connections, demo_world, manual_example
from tests.live_server import AirflowServer, wait_for
from tests.npm_servers import _NodeServer

WF = "erp_to_shop"
CUSTOMERS, ORDERS = 30, 40
STEPS = ("extract", "transform", "load")
P = "airflow.flowlink."  # Airflow's [metrics] statsd_prefix (default: airflow), then Flowlink's names


class StatsdDaemon(_NodeServer):
    """Etsy's statsd on loopback: metrics in on a UDP port, its management interface (``counters``, ``timers``) on
    TCP ``port``. It never flushes while a test runs, so its counters add up everything received."""

    program = "statsd"

    def __init__(self, folder: Path):
        super().__init__(folder)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.udp_port = s.getsockname()[1]
        self.config = self.folder / "statsd.js"

    def args(self) -> list[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            json.dumps(
                {
                    "address": "127.0.0.1",
                    "port": self.udp_port,
                    "mgmt_address": "127.0.0.1",
                    "mgmt_port": self.port,
                    "flushInterval": 3_600_000,
                    "backends": [],
                }
            )
        )
        return [str(self.config)]

    def ask(self, command: str, end: bytes = b"END") -> str:
        """The management interface's answer, up to ``end``."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(command.encode() + b"\n")
            answer = b""
            while not answer.rstrip().endswith(end):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                answer += chunk
        return answer.decode()

    def ready(self) -> bool:
        try:
            return self.ask("health", end=b"up") == "health: up\n"
        except OSError:
            return False

    def counters(self) -> dict[str, float]:
        """Flowlink's counters: name -> total (the answer is Node's inspect of an object: 'name': value)."""
        found = re.findall(r"'([^']+)': ([-\d.e+]+)", self.ask("counters"))
        return {name: float(value) for name, value in found if name.startswith(P)}

    def timers(self) -> dict[str, list[float]]:
        """Flowlink's timers: name -> the values received, in milliseconds."""
        found = re.findall(r"'([^']+)': \[([^\]]*)\]", self.ask("timers"))
        return {
            name: [float(v) for v in values.replace("\n", " ").split(",") if v.strip()]
            for name, values in found
            if name.startswith(P)
        }


RUN = (
    "import json, sys; from tests.airflow_helpers import run_dag; run, states = run_dag(sys.argv[1]);"
    "print(json.dumps({'run_id': run.run_id, 'state': run.state, 'states': states}))"
)


def run_with_statsd(daemon: StatsdDaemon) -> tuple[str, str, dict[str, str]]:
    """One real run of the example (dag.test) in its own process, with Airflow's metrics going to the daemon:
    (run id, run state, task id -> state)."""
    env = os.environ | {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(daemon.udp_port),
    }
    done = subprocess.run(
        [sys.executable, "-c", RUN, WF], env=env, cwd=REPO, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["run_id"], result["state"], result["states"]


def received(daemon: StatsdDaemon, name: str, before: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """The daemon's timers once timer ``name`` has one more value than ``before`` (UDP arrives on its own time)."""
    count = len((before or {}).get(name, []))
    return wait_for(f"timer {name}", lambda: (t := daemon.timers()) and len(t.get(name, [])) > count and t, timeout=30)


def named(kind: str, touchpoint: str, step: str | None = None) -> str:
    return P + kind + f".{WF}.{touchpoint}" + (f".{step}" if step else "")


@pytest.fixture
def demo(tmp_path, monkeypatch, airflow_db):
    with demo_world(tmp_path, monkeypatch, CUSTOMERS, ORDERS) as (erp, shop, store):
        make_live(publish_workflow(store, REPO / "examples" / "erp_to_shop.yaml").result.artifact)
        yield erp, shop, store


@pytest.fixture
def statsd(tmp_path):
    with StatsdDaemon(tmp_path / "statsd") as daemon:
        yield daemon


def test_a_run_sends_each_steps_counts_and_duration(demo, statsd):
    """A first run sends, per touchpoint, the records extracted and loaded, none failed in each step, and one
    duration per step, equal to the snapshot's; under the name with tags (summed over all, as plain StatsD drops the
    tags) and the name with workflow, touchpoint (and step) in it. A second run finds nothing new: only the extracts
    send (0 records and their durations); the skipped transforms and loads send nothing."""
    erp, shop, store = demo
    run_id, state, states = run_with_statsd(statsd)
    assert state == "success", states
    timers = received(statsd, named("step.duration", "orders", "load"))
    counters = statsd.counters()
    assert counters == {
        P + "records.extracted": CUSTOMERS + ORDERS,
        named("records.extracted", "customers"): CUSTOMERS,
        named("records.extracted", "orders"): ORDERS,
        P + "records.loaded": CUSTOMERS + ORDERS,
        named("records.loaded", "customers"): CUSTOMERS,
        named("records.loaded", "orders"): ORDERS,
        P + "records.failed": 0,
        **{named("records.failed", tp, step): 0 for tp in ("customers", "orders") for step in STEPS},
    }
    steps = {(s["touchpoint"], s["step"]): s for s in snapshots.snapshot(store, run_id)["steps"]}
    assert set(timers) == {P + "step.duration"} | {named("step.duration", tp, s) for tp, s in steps}
    for (tp, step), row in steps.items():
        (ms,) = timers[named("step.duration", tp, step)]
        assert ms == pytest.approx((row["ended_at"] - row["started_at"]).total_seconds() * 1000, abs=0.01)
    each = [v for name, values in timers.items() if name != P + "step.duration" for v in values]
    assert sorted(timers[P + "step.duration"]) == sorted(each)  # the same durations, under the name with tags

    run_id, state, states = run_with_statsd(statsd)
    assert state == "success" and states["customers.load"] == states["orders.load"] == "skipped", states
    again = received(statsd, named("step.duration", "orders", "extract"), timers)
    assert statsd.counters() == counters  # 0 added to the extracts' counters, nothing else
    grown = {k for k in again if len(again[k]) > len(timers[k])}
    assert grown == {P + "step.duration", named("step.duration", "customers", "extract")} | {
        named("step.duration", "orders", "extract")
    }
    assert len(again[P + "step.duration"]) == len(timers[P + "step.duration"]) + 2


def test_failed_records_and_a_failed_step_are_counted(demo, statsd, monkeypatch):
    """The shop rejects two customers (that have no orders): customers' load fails with them, and sends 2 failed and
    28 loaded, and its duration; orders load all. Then one customer changes while the shop is down: customers' load
    fails as a whole: it sends 1 step failed and its duration, and nothing loaded."""
    erp, shop, store = demo
    with sqlite3.connect(erp) as conn:
        with_orders = {row[0] for row in conn.execute("SELECT DISTINCT customer_id FROM orders")}
    lonely = [str(c) for c in range(1, CUSTOMERS + 1) if c not in with_orders][:2]
    assert len(lonely) == 2, "the demo ERP has customers without orders"
    shop.reject("customers", lonely, status=422, message="email: blocked by the shop's spam filter")
    run_id, state, states = run_with_statsd(statsd)
    assert state == "failed" and states["customers.load"] == "failed" and states["orders.load"] == "success", states
    timers = received(statsd, named("step.duration", "orders", "load"))
    counters = statsd.counters()
    assert counters[named("records.failed", "customers", "load")] == 2
    assert counters[named("records.loaded", "customers")] == CUSTOMERS - 2
    assert counters[named("records.loaded", "orders")] == ORDERS
    assert counters[P + "records.failed"] == 2 and counters[P + "records.loaded"] == CUSTOMERS + ORDERS - 2
    assert len(timers[named("step.duration", "customers", "load")]) == 1
    assert not any(name.startswith(P + "step.failed") for name in counters)  # records failed, the step ran

    monkeypatch.setenv(
        "AIRFLOW_CONN_DEMO_SHOP",
        json.dumps({"conn_type": "http", "host": shop.url, "extra": {"retries": 1, "backoff": 0.1}}),
    )
    shop.stop()
    touch(erp, "customers", [1])
    run_id, state, states = run_with_statsd(statsd)
    assert state == "failed" and states["customers.load"] == "failed", states
    load = next(s for s in snapshots.snapshot(store, run_id)["steps"] if s["step"] == "load")
    assert (load["status"], load["failure"]) == ("failed", "step")
    again = received(statsd, named("step.duration", "customers", "load"), timers)
    after = statsd.counters()
    assert after[named("step.failed", "customers", "load")] == 1 and after[P + "step.failed"] == 1
    assert after[named("records.extracted", "customers")] == CUSTOMERS + 1
    assert after[named("records.loaded", "customers")] == CUSTOMERS - 2  # nothing loaded
    (ms,) = again[named("step.duration", "customers", "load")][1:]
    assert ms == pytest.approx((load["ended_at"] - load["started_at"]).total_seconds() * 1000, abs=0.01)


def test_opentelemetry_gets_the_names_with_tags(demo):
    """Airflow's ``otel_on`` with OpenTelemetry's console exporter (the process prints what it exports as it exits)
    and ``legacy_names_on`` off: a run sends the four names once each, with the workflow, touchpoint and step as
    attributes, and no per-name form."""
    env = os.environ | {
        "AIRFLOW__METRICS__OTEL_ON": "True",
        "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False",
        "OTEL_METRICS_EXPORTER": "console",
    }
    done = subprocess.run(
        [sys.executable, "-c", RUN, WF], env=env, cwd=REPO, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    points: dict[str, dict[tuple[str, str, str], dict]] = {}
    for block in re.findall(r"^\{\n.*?^\}$", done.stdout, re.S | re.M):  # each export, as JSON
        for resource in json.loads(block)["resource_metrics"]:
            for scope in resource["scope_metrics"]:
                for metric in (m for m in scope["metrics"] if m["name"].startswith(P)):
                    for point in metric["data"]["data_points"]:
                        a = point["attributes"]
                        points.setdefault(metric["name"], {})[a["workflow"], a["touchpoint"], a["step"]] = point
    assert set(points) == {P + "records.extracted", P + "records.loaded", P + "records.failed", P + "step.duration"}
    values = {name: {key: point.get("value") for key, point in got.items()} for name, got in points.items()}
    assert values[P + "records.extracted"] == {
        (WF, "customers", "extract"): CUSTOMERS,
        (WF, "orders", "extract"): ORDERS,
    }
    assert values[P + "records.loaded"] == {(WF, "customers", "load"): CUSTOMERS, (WF, "orders", "load"): ORDERS}
    every_step = {(WF, tp, step) for tp in ("customers", "orders") for step in STEPS}
    assert values[P + "records.failed"] == dict.fromkeys(every_step, 0)
    durations = points[P + "step.duration"]
    assert set(durations) == every_step and all(p["count"] == 1 and p["sum"] > 0 for p in durations.values())


def test_a_metric_that_cannot_be_sent_never_fails_the_task(store, caplog):
    """The step's row cannot be read (the store lost its tables): step_ended logs a warning and returns."""
    from flowlink.store.db import utcnow
    from flowlink_airflow import metrics

    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE snapshot_steps")
    log = logging.getLogger("test_metrics")
    with caplog.at_level(logging.WARNING, logger="test_metrics"):
        metrics.step_ended(store, WF, "run-1", "customers", "extract", utcnow(), log)
    assert "flowlink: the metrics of customers extract were not sent:" in caplog.text
    assert "no such table: snapshot_steps" in caplog.text


def test_under_the_scheduler_each_task_process_sends_its_steps_metrics(tmp_path):
    """Airflow standalone (scheduler, LocalExecutor: each task in a process of its own, whose task runner sets up
    Airflow's metrics) with ``statsd_on``: a run of the example started through the REST API sends each touchpoint's
    counts, and a duration per step."""
    shop = DemoShop()
    shop.start()
    create_erp(tmp_path / "erp.db", customers=8, orders=6)
    with StatsdDaemon(tmp_path / "statsd") as daemon:
        env = demo_connections(tmp_path / "erp.db", shop.url) | {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(daemon.udp_port),
        }
        server = AirflowServer(tmp_path, env)
        try:
            server.put_live(manual_example(tmp_path))
            r = server.api("POST", f"/api/v2/dags/{WF}/dagRuns", json={"logical_date": None, "conf": {}})
            assert r.ok, r.text
            run_id = r.json()["dag_run_id"]
            state = wait_for(
                f"run {run_id}",
                lambda: (s := server.run_state(WF, run_id)) in ("success", "failed") and s,
                timeout=240,
                every=1,
            )
            assert state == "success"
            timers = received(daemon, named("step.duration", "orders", "load"))
        finally:
            server.stop()
            shop.stop()
        counters = daemon.counters()
    assert {name: n for name, n in counters.items() if name.count(".") > 3} == {
        named("records.extracted", "customers"): 8,
        named("records.extracted", "orders"): 6,
        named("records.loaded", "customers"): 8,
        named("records.loaded", "orders"): 6,
        **{named("records.failed", tp, step): 0 for tp in ("customers", "orders") for step in STEPS},
    }
    assert {name: len(values) for name, values in timers.items()} == {
        P + "step.duration": 6,
        **{named("step.duration", tp, step): 1 for tp in ("customers", "orders") for step in STEPS},
    }
