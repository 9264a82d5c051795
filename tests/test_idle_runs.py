"""Idle runs cost little (issue 16): an extract that finds nothing new skips its touchpoint's transform and load, so
Airflow never starts their task processes; the touchpoints after it still run, the run is a success, and the
snapshot records the skipped steps. Runs with new records, resyncs and retries of chosen records run every step.
Task processes start light: the store opens without Alembic, and the scheduler preloads what the tasks import.

dag.test() runs of the example workflow (SQLite ERP -> demo shop on loopback), and real runs under Airflow standalone
(scheduler + LocalExecutor), where the skipped task instances show that no process ever started for them."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from examples.demo_erp import create as create_erp
from examples.demo_erp import touch
from examples.demo_shop import DemoShop
from flowlink.actions import publish_workflow, record_resync, request_resync
from flowlink.publish import make_live
from flowlink.states import ResyncKind, StepStatus
from flowlink.store import bucket, snapshots
from flowlink.sync import NOTHING_NEW
from tests.airflow_helpers import REPO, demo_connections, demo_world, manual_example, run_dag
from tests.live_server import AirflowServer, wait_for

WF = "erp_to_shop"
CUSTOMERS, ORDERS = 30, 40
TOUCHPOINTS = ("customers", "orders")
EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"


def steps_of(store, run_id: str) -> dict[tuple[str, str], dict]:
    return {(s["touchpoint"], s["step"]): s for s in snapshots.snapshot(store, run_id)["steps"]}


def total_writes(shop) -> int:
    return sum(shop.writes("customers").values()) + sum(shop.writes("orders").values())


def test_the_store_head_is_alembics_and_a_task_imports_no_alembic(tmp_path):
    """The store is opened without Alembic when it is at the newest revision (every task opens it): the head read
    from the migrations' file names is Alembic's head, and a process that imports what a task imports and opens a
    migrated store never imports Alembic."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from flowlink.store.db import MIGRATIONS, _head

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    assert _head() == script.get_current_head()
    for rev in script.walk_revisions():  # each file is named after its revision: NNNN_what.py
        assert rev.path is not None and Path(rev.path).name.split("_", 1)[0] == rev.revision, rev.path

    url = f"sqlite:///{tmp_path / 'store.db'}"
    code = (
        "import sys; from flowlink.store import Store; Store.open(sys.argv[1]).dispose();"  # migrates: Alembic
        "print('alembic' in sys.modules)"
    )
    migrated = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    assert migrated.stdout.splitlines()[-1] == "True"
    code = (
        "import sys; import flowlink_airflow.dag_factory.render, flowlink.sync, flowlink.publish;"
        "from flowlink.store import Store; s = Store.open(sys.argv[1]); print(s.revision()); s.dispose();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    )
    done = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-2:] == [_head(), "[]"], done.stdout  # before: Airflow's own log lines


PRELOAD_CHECK = """
import ast, importlib, json, pathlib, sys
from flowlink_airflow.preload import TASK_MODULES, preload
preload(TASK_MODULES)
before = set(sys.modules)
for path in sys.argv[1:]:
    for fn in ast.walk(ast.parse(pathlib.Path(path).read_text())):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "flowlink_airflow.lineage":  # only when a configured OpenLineage provider asks
                    continue
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if (node.module, alias.name) == ("flowlink", "alerts"):  # only when records failed
                        continue
                    if not hasattr(module, alias.name):
                        importlib.import_module(f"{node.module}.{alias.name}")
new = set(sys.modules) - before
print(json.dumps(sorted(m for m in new if m.split(".")[0] in ("flowlink", "flowlink_airflow", "requests", "lxml", "alembic"))))
"""


def test_what_the_scheduler_preloads_leaves_the_operators_nothing_to_import():
    """The scheduler imports TASK_MODULES once (flowlink_airflow.preload), and its LocalExecutor workers fork
    every task process from it: after those, the imports inside the operators' and the hook's functions bring in
    nothing of Flowlink (but the alerts of the failure path and the OpenLineage report), requests, lxml or Alembic."""
    files = [str(p) for p in sorted((REPO / "plugins" / "operators").glob("*.py"))]
    files.append(str(REPO / "plugins" / "hooks" / "application.py"))
    done = subprocess.run([sys.executable, "-c", PRELOAD_CHECK, *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


@pytest.fixture
def demo(tmp_path, monkeypatch, airflow_db):
    with demo_world(tmp_path, monkeypatch, CUSTOMERS, ORDERS) as (erp, shop, store):
        make_live(publish_workflow(store, EXAMPLE).result.artifact)
        yield erp, shop, store


def test_a_run_with_nothing_new_skips_transform_and_load_and_succeeds(demo):
    """dag.test(): the first run loads everything; the second finds nothing new: each extract succeeds, each
    touchpoint's transform and load are skipped (orders still runs after skipped customers), the end task and the
    run succeed, and the snapshot says skipped (counts 0, the reason, no worker). One customer touched: only
    customers' transform and load run, and send that one record."""
    erp, shop, store = demo
    first, states = run_dag(WF)
    assert first.state == "success" and set(states.values()) == {"success"}, states
    assert len(shop.records("customers")) == CUSTOMERS and len(shop.records("orders")) == ORDERS
    before = total_writes(shop)

    idle, states = run_dag(WF)
    assert idle.state == "success", states
    assert states == {
        "customers.extract": "success",
        "customers.transform": "skipped",
        "customers.load": "skipped",
        "orders.extract": "success",
        "orders.transform": "skipped",
        "orders.load": "skipped",
        "all-loaded": "success",
    }
    assert total_writes(shop) == before
    steps = steps_of(store, idle.run_id)
    for tp in TOUCHPOINTS:
        assert (steps[(tp, "extract")]["status"], steps[(tp, "extract")]["count_out"]) == (StepStatus.SUCCESS, 0)
        for step in ("transform", "load"):
            row = steps[(tp, step)]
            assert (row["status"], row["message"], row["hostname"], row["queue"]) == (
                StepStatus.SKIPPED,
                NOTHING_NEW,
                None,
                None,
            )
            assert (row["count_in"], row["count_out"], row["count_failed"], row["files"]) == (0, 0, 0, [])
    assert snapshots.snapshot(store, idle.run_id)["data_log"] == []
    summary = next(r for r in snapshots.runs(store, WF) if r["run_id"] == idle.run_id)
    assert (summary["failed_steps"], summary["running_steps"], summary["failed_records"]) == (0, 0, 0)

    touch(erp, "customers", [3])
    partly, states = run_dag(WF)
    assert partly.state == "success", states
    assert (states["customers.load"], states["orders.transform"], states["orders.load"]) == (
        "success",
        "skipped",
        "skipped",
    )
    assert total_writes(shop) == before + 1 and shop.writes("customers")["3"] == 2
    assert steps_of(store, partly.run_id)[("customers", "load")]["count_out"] == 1


def test_resync_and_retry_runs_of_chosen_records_are_never_skipped(demo):
    """Nothing is new in the source, yet a resync (chosen by a user) and a retry (kind retry) of records that are
    there send them again; a resync whose chosen record is gone from the source runs its load, which fails the run
    with that record (it is not quietly skipped)."""
    erp, shop, store = demo
    assert run_dag(WF)[0].state == "success"
    assert run_dag(WF)[1]["customers.load"] == "skipped"  # nothing new

    resync_id, ids = request_resync(store, WF, "customers", ids=["4", "5"])
    run, states = run_dag(WF, conf={"resync_id": resync_id})
    assert run.state == "success", states
    assert (states["customers.transform"], states["customers.load"]) == ("success", "success")
    assert states["orders.extract"] == "skipped"  # a resync touches only its touchpoint
    assert steps_of(store, run.run_id)[("customers", "load")]["count_out"] == 2
    assert shop.writes("customers")["4"] == shop.writes("customers")["5"] == 2

    retry_id = record_resync(store, WF, "orders", ["7"], kind=ResyncKind.RETRY)
    run, states = run_dag(WF, conf={"resync_id": retry_id, "retry": True})
    assert run.state == "success" and states["orders.load"] == "success", states
    assert shop.writes("orders")["7"] == 2

    with sqlite3.connect(erp) as conn:
        conn.execute("DELETE FROM customers WHERE id = 6")
    resync_id, _ = request_resync(store, WF, "customers", ids=["6"])
    run, states = run_dag(WF, conf={"resync_id": resync_id})
    assert run.state == "failed" and states["customers.load"] == "failed", states
    assert states["customers.transform"] == "success" and states["all-loaded"] == "upstream_failed"
    row = next(r for r in bucket.rows(store, WF, touchpoint="customers", status="failed"))
    assert (row["source_id"], row["message"]) == ("6", "not found in the source")


# ----------------------------------------------------------------------------------- Airflow standalone (real runs)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """Airflow standalone with the example as a manual workflow (runs started through the REST API), the demo ERP
    and shop."""
    root = tmp_path_factory.mktemp("idle_runs")
    shop = DemoShop()
    shop.start()
    create_erp(root / "erp.db", customers=8, orders=6)
    server = AirflowServer(root, demo_connections(root / "erp.db", shop.url))
    try:
        server.put_live(manual_example(root))
        yield server, shop, root
    finally:
        server.stop()
        shop.stop()


def run_now(server, conf: dict | None = None) -> tuple[str, dict[str, dict]]:
    """Start a run through the REST API and wait for its end: (state, task id -> task instance)."""
    r = server.api("POST", f"/api/v2/dags/{WF}/dagRuns", json={"logical_date": None, "conf": conf or {}})
    assert r.ok, r.text
    run_id = r.json()["dag_run_id"]
    state = wait_for(
        f"run {run_id}",
        lambda: (s := server.run_state(WF, run_id)) in ("success", "failed") and s,
        timeout=240,
        every=1,
    )
    tis = server.api("GET", f"/api/v2/dags/{WF}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    return state, {ti["task_id"]: ti | {"run_id": run_id} for ti in tis}


def never_started(ti: dict) -> bool:
    """Airflow never queued the task instance nor started a process for it: no try, no pid, no worker."""
    return ti["state"] == "skipped" and ti["try_number"] == 0 and ti["pid"] is None and not ti["hostname"]


def ran(ti: dict) -> bool:
    return ti["state"] == "success" and ti["try_number"] == 1 and ti["pid"] is not None and bool(ti["hostname"])


def test_an_idle_run_under_the_scheduler_starts_no_transform_or_load(standalone):
    """Real runs under the scheduler and LocalExecutor. First run: every task runs. Second, nothing new: both
    extracts run (orders after customers' skipped load), both transforms and loads are skipped without ever being
    queued (try 0, no pid, no host), the end task and the run succeed; `flowlink snapshot` shows the skipped steps.
    Third, two customers touched: customers' transform and load run and send them, orders' are skipped. Fourth, a
    resync of chosen orders with nothing new in the source: its transform and load run and send them again."""
    server, shop, root = standalone
    state, tis = run_now(server)
    assert state == "success" and all(ran(ti) for t, ti in tis.items() if t != "all-loaded"), tis
    assert len(shop.records("customers")) == 8 and len(shop.records("orders")) == 6
    writes = total_writes(shop)

    state, tis = run_now(server)
    assert state == "success", tis
    assert ran(tis["customers.extract"]) and ran(tis["orders.extract"]), tis
    skipped = [f"{tp}.{step}" for tp in TOUCHPOINTS for step in ("transform", "load")]
    assert all(never_started(tis[t]) for t in skipped), {t: tis[t] for t in skipped}
    assert tis["all-loaded"]["state"] == "success" and total_writes(shop) == writes
    run_id = tis["all-loaded"]["run_id"]
    shown = server.flowlink_json("snapshot", run_id)
    got = {(s["touchpoint"], s["step"]): (s["status"], s["message"]) for s in shown["steps"]}
    assert got == {
        **{(tp, "extract"): ("success", None) for tp in TOUCHPOINTS},
        **{(tp, step): ("skipped", NOTHING_NEW) for tp in TOUCHPOINTS for step in ("transform", "load")},
    }

    touch(root / "erp.db", "customers", [2, 5])
    state, tis = run_now(server)
    assert state == "success", tis
    assert ran(tis["customers.transform"]) and ran(tis["customers.load"]), tis
    assert never_started(tis["orders.transform"]) and never_started(tis["orders.load"]), tis
    assert total_writes(shop) == writes + 2

    done = server.flowlink("resync", WF, "--touchpoint", "orders", "--id", "1", "3", "--wait", "--timeout", "200")
    assert done.stdout.rstrip().endswith(": success"), done.stdout
    resync_run = re.search(r"run (\S+)", done.stdout)
    assert resync_run is not None
    listed = server.api("GET", f"/api/v2/dags/{WF}/dagRuns/{resync_run[1]}/taskInstances").json()
    tis = {ti["task_id"]: ti for ti in listed["task_instances"]}
    assert ran(tis["orders.transform"]) and ran(tis["orders.load"]), tis
    assert shop.writes("orders")["1"] == shop.writes("orders")["3"] == 2
