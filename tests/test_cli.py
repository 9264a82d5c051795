"""The `flowlink` command, run for real in a subprocess against a throwaway FLOWLINK_HOME."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from tests.airflow_helpers import REPO, load_dags

EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"
WF = "erp_to_shop"


def flowlink(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m flowlink.cli ARGS` with FLOWLINK_HOME=home and this session's AIRFLOW_* settings."""
    env = {k: v for k, v in os.environ.items() if k != "FLOWLINK_STORE_URL"}
    env["FLOWLINK_HOME"] = str(home)
    env["COLUMNS"] = "250"  # wide rich tables: one line per row
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "flowlink.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or home.parent,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout, done.stdout
    return done


def ok(home: Path, *args: str) -> str:
    done = flowlink(home, *args)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def fails(home: Path, *args: str, code: int = 1) -> str:
    done = flowlink(home, *args)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done.stderr


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "flowlink-home"


def spec_variant(tmp_path: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """A copy of the example spec with some text replaced (each replacement must apply)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def bad_spec(tmp_path) -> Path:
    return spec_variant(
        tmp_path, "bad.yaml", ("concat(first_name, ' ', last_name)", "concat(first_name, ' ', last_name")
    )


# ---------------------------------------------------------------- validate, schema


def test_validate_an_ok_spec(home):
    assert ok(home, "validate", EXAMPLE) == f"{EXAMPLE}: ok (erp_to_shop, 2 touchpoints)\n"


def test_validate_a_bad_spec_names_file_yaml_path_and_reason(home, bad_spec):
    done = flowlink(home, "validate", bad_spec)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f"{bad_spec}: touchpoints[0].mapping[1].xpath: invalid XPath 1.0 expression "
        f"\"concat(first_name, ' ', last_name\": syntax error: '(' is not closed"
    )


def test_validate_several_files_reports_each(home, tmp_path, bad_spec):
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("name: [unclosed\n")
    done = flowlink(home, "validate", EXAMPLE, bad_spec, not_yaml, tmp_path / "missing.yaml")
    assert done.returncode == 1
    assert done.stdout == f"{EXAMPLE}: ok (erp_to_shop, 2 touchpoints)\n"
    errors = done.stderr.splitlines()
    assert len(errors) == 3, errors
    assert errors[0].startswith(f"{bad_spec}: touchpoints[0].mapping[1].xpath: invalid XPath 1.0 expression")
    assert errors[1].startswith(f"{not_yaml}: (top): invalid YAML: line 2, column 1:")
    assert errors[2] == f"{tmp_path / 'missing.yaml'}: (top): cannot read file: No such file or directory"
    # one good file among them is still reported ok, and one bad file alone fails
    assert flowlink(home, "validate", bad_spec, EXAMPLE).returncode == 1


def test_schema_is_json_schema_of_a_workflow(home):
    schema = json.loads(ok(home, "schema"))
    assert schema["title"] == "Flowlink workflow"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"name", "source", "target", "schedule", "touchpoints"} <= set(schema["properties"])
    assert {"name", "source", "target", "touchpoints"} <= set(schema["required"])
    assert schema["properties"]["touchpoints"]["type"] == "array"


# ---------------------------------------------------------------- generate, preview


def test_generate_writes_stylesheets_that_transform_records(home, tmp_path):
    out_dir = tmp_path / "xslt"
    stdout = ok(home, "generate", EXAMPLE, "--out", out_dir)
    assert stdout.splitlines() == [f"customers: {out_dir / 'customers.xslt'}", f"orders: {out_dir / 'orders.xslt'}"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["customers.xslt", "orders.xslt"]
    transform = etree.XSLT(etree.parse(str(out_dir / "customers.xslt")))
    record = etree.fromstring(
        "<records><record key='7'><id>7</id><first_name>Ada</first_name><last_name>Lovelace</last_name>"
        "<email>ADA@Example.ORG</email><country_code>FR</country_code></record></records>"
    )
    result = transform(record).getroot()
    assert [(r.get("key"), [(f.tag, f.text) for f in r]) for r in result] == [
        (
            "7",
            [
                ("customer_id", "7"),
                ("name", "Ada Lovelace"),
                ("email", "ada@example.org"),
                ("country", "France"),
                ("channel", "erp"),
            ],
        )
    ]
    etree.XSLT(etree.parse(str(out_dir / "orders.xslt")))

    summary = ok(home, "generate", EXAMPLE)  # without --out: a summary, nothing written
    assert re.fullmatch(
        r"customers: ok \(5 mapping rules, \d+ bytes\)\norders: ok \(4 mapping rules, \d+ bytes\)\n", summary
    )
    assert not home.exists()


def test_generate_a_bad_spec_fails_without_writing(home, tmp_path, bad_spec):
    err = fails(home, "generate", bad_spec, "--out", tmp_path / "xslt")
    assert f"{bad_spec}: touchpoints[0].mapping[1].xpath" in err
    assert not (tmp_path / "xslt").exists()


def test_preview_of_a_file_and_of_the_published_workflow_print_the_same_xslt(home, tmp_path):
    ok(home, "generate", EXAMPLE, "--out", tmp_path / "xslt")
    generated = (tmp_path / "xslt" / "customers.xslt").read_text(encoding="utf-8")
    from_file = ok(home, "preview", EXAMPLE, "customers")
    assert from_file == generated + "\n"
    assert "Traceback" not in fails(home, "preview", WF, "customers")  # not published yet
    assert fails(home, "preview", WF, "customers").strip() == (
        "flowlink preview: workflow 'erp_to_shop' has not been published (flowlink publish FILE)"
    )
    ok(home, "publish", EXAMPLE)
    assert ok(home, "preview", WF, "customers") == from_file
    assert ok(home, "preview", WF, "orders") == ok(home, "preview", EXAMPLE, "orders") != from_file


def test_preview_of_an_unknown_touchpoint_lists_the_touchpoints(home):
    assert fails(home, "preview", EXAMPLE, "invoices").strip() == (
        "flowlink preview: workflow 'erp_to_shop' has no touchpoint 'invoices' (it has: customers, orders)"
    )
    ok(home, "publish", EXAMPLE)
    assert fails(home, "preview", WF, "invoices").strip() == (
        "flowlink preview: workflow 'erp_to_shop' has no touchpoint 'invoices' (it has: customers, orders)"
    )


# ---------------------------------------------------------------- publish, feeds


def feeds_json(home: Path, *args: str) -> list[dict]:
    return json.loads(ok(home, "feeds", "--json", *args))


def test_publish_versions_read_only_files_and_feeds(home, tmp_path):
    first = ok(home, "publish", EXAMPLE)
    v1 = home / "published" / WF / f"{WF}-v0001.json"
    assert re.fullmatch(
        rf"{WF}: published v1 sha256 [0-9a-f]{{64}}\n  file: {re.escape(str(v1))}\n"
        rf"  deploy it: flowlink deploy {WF}\n",
        first,
    )
    again = ok(home, "publish", EXAMPLE)
    assert again.startswith(f"{WF}: unchanged, still v1 sha256 ")
    assert "unchanged" in again and "schedule:" not in again

    changed = spec_variant(
        tmp_path,
        "erp_to_shop.yaml",
        ("description: Customers and their orders", "description: All customers and orders"),
    )
    second = ok(home, "publish", changed)
    assert second.startswith(f"{WF}: published v2 sha256 ")
    assert "schedule:" not in second
    v2 = home / "published" / WF / f"{WF}-v0002.json"
    assert sorted(p.name for p in (home / "published" / WF).iterdir()) == [v1.name, v2.name]
    for path in (v1, v2):
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
    docs = [json.loads(p.read_text()) for p in (v1, v2)]
    assert [d["version"] for d in docs] == [1, 2]
    assert docs[0]["content"]["spec"]["description"].startswith("Customers and their orders")
    assert docs[1]["content"]["spec"]["description"].startswith("All customers and orders")
    assert docs[0]["sha256"] != docs[1]["sha256"]
    assert not (home / "live").exists()  # publishing puts nothing live: deploying does

    entries = feeds_json(home)
    assert [(e["tag"], e["workflow"], e["message"]) for e in entries] == [
        ("publish", WF, f"published {WF} v2 (sha256 {docs[1]['sha256'][:12]})"),
        ("schedule", WF, f"{WF} scheduled: every minute, never ends"),
        ("publish", WF, f"published {WF} v1 (sha256 {docs[0]['sha256'][:12]})"),
    ]
    assert [e["tag"] for e in feeds_json(home, "--tag", "publish")] == ["publish", "publish"]
    assert len(feeds_json(home, "--workflow", WF, "--limit", "2")) == 2
    assert feeds_json(home, "--workflow", "other") == []
    table = ok(home, "feeds", "--workflow", WF)
    assert f"published {WF} v2" in table and f"{WF} scheduled: every minute, never ends" in table

    # a new schedule is a new version and a "schedule" feed entry saying old -> new
    rescheduled = spec_variant(tmp_path, "rescheduled.yaml", ("interval: 1", "interval: 5"))
    third = ok(home, "publish", rescheduled)
    assert third.startswith(f"{WF}: published v3 ")
    assert "  schedule: every minute, never ends -> every 5 minutes, never ends\n" in third
    schedule = feeds_json(home, "--tag", "schedule")
    assert [e["message"] for e in schedule] == [
        f"schedule of {WF} changed: every minute, never ends -> every 5 minutes, never ends",
        f"{WF} scheduled: every minute, never ends",
    ]
    assert json.loads(ok(home, "workflows", "--json")) == {"live": [], "broken": []}


def test_publish_of_an_invalid_spec_writes_nothing(home, bad_spec):
    err = fails(home, "publish", bad_spec)
    assert err.startswith(
        f"flowlink publish: {bad_spec}: touchpoints[0].mapping[1].xpath: invalid XPath 1.0 expression"
    )
    assert not (home / "published").exists()
    assert not (home / "live").exists()
    assert feeds_json(home) == []
    assert fails(home, "publish", home.parent / "nope.yaml").strip() == (
        f"flowlink publish: {home.parent / 'nope.yaml'}: (top): cannot read file: No such file or directory"
    )
    assert not (home / "published").exists()


# ---------------------------------------------------------------- an empty store


# A workflow no other test runs in Airflow: the session's Airflow database is shared, and `flowlink runs` lists
# Airflow's runs of a workflow as well as those the store holds.
ALONE = "store_only"


def test_commands_on_an_empty_store(home):
    assert json.loads(ok(home, "bucket", ALONE, "--json")) == {"total": 0, "rows": []}
    table = ok(home, "bucket", ALONE, "--status", "failed")
    assert f"Resync bucket of {ALONE}: 0 of 0" in table
    assert json.loads(ok(home, "runs", ALONE, "--json")) == []
    assert f"Runs of {ALONE}" in ok(home, "runs", ALONE)
    assert feeds_json(home) == []
    assert "Feeds" in ok(home, "feeds")
    assert json.loads(ok(home, "workflows", "--json")) == {"live": [], "broken": []}
    assert ok(home, "db-upgrade") == f"store sqlite:///{home / 'flowlink.db'} at revision 0007\n"
    assert fails(home, "snapshot", "manual__2024-01-01T00:00:00+00:00").strip() == (
        "flowlink snapshot: no snapshot for run 'manual__2024-01-01T00:00:00+00:00' (see `flowlink runs WORKFLOW`)"
    )
    assert "no snapshot for run 'x'" in fails(home, "snapshot", "x", "--workflow", ALONE, "--json")


def test_bucket_runs_and_snapshot_show_the_store(home, monkeypatch, airflow_db):
    monkeypatch.setenv("FLOWLINK_HOME", str(home))
    from flowlink.store import Store, bucket, snapshots
    from flowlink.store.bucket import Outcome

    store = Store.open()
    try:
        snapshots.start_step(store, ALONE, "run-1", 1, "customers", "load")
        bucket.mark_unprocessed(store, ALONE, "customers", "run-1", ["1", "2", "3"], resync=False)
        bucket.record(
            store,
            ALONE,
            "customers",
            "run-1",
            "load",
            [Outcome("1", "success", "D1"), Outcome("2", "failed", None, "HTTP 422: email taken")],
        )
        snapshots.finish_step(
            store,
            ALONE,
            "run-1",
            "customers",
            "load",
            status="failed",
            count_in=3,
            count_out=1,
            count_failed=1,
            files=["a.jsonl"],
            message="1 record failed",
        )
    finally:
        store.dispose()

    listed = json.loads(ok(home, "bucket", ALONE, "--json", "--limit", "2", "--offset", "1"))
    assert listed["total"] == 3
    assert [(r["source_id"], r["status"], r["tries"], r["message"]) for r in listed["rows"]] == [
        ("2", "failed", 1, "HTTP 422: email taken"),
        ("3", "unprocessed", 0, None),
    ]
    failed = json.loads(ok(home, "bucket", ALONE, "--status", "failed", "--json"))
    assert failed["total"] == 1 and failed["rows"][0]["source_id"] == "2"
    assert "HTTP 422: email taken" in ok(home, "bucket", ALONE, "--touchpoint", "customers")

    runs = json.loads(ok(home, "runs", ALONE, "--json"))
    assert [(r["run_id"], r["version"], r["failed_steps"], r["failed_records"]) for r in runs] == [("run-1", 1, 1, 1)]
    assert runs[0]["status"] == "failed"  # Airflow does not know run-1: the snapshot's failed step says it
    assert re.search(r"run-1 .* failed", ok(home, "runs", ALONE))
    snap = json.loads(ok(home, "snapshot", "run-1", "--json"))
    assert [(s["step"], s["status"], s["files"], s["message"]) for s in snap["steps"]] == [
        ("load", "failed", ["a.jsonl"], "1 record failed")
    ]
    assert [(d["source_id"], d["status"]) for d in snap["data_log"]] == [("1", "success"), ("2", "failed")]
    table = ok(home, "snapshot", "run-1", "--limit", "1")
    assert "Snapshot of run run-1" in table and "Data log (1 of 2)" in table


# ---------------------------------------------------------------- resync


def put_live(home: Path, monkeypatch) -> None:
    """What the agent's install step does (deployments are tested in tests/test_deployments.py)."""
    from flowlink import publish

    monkeypatch.setenv("FLOWLINK_HOME", str(home))
    publish.make_live(publish.published(WF))


def test_resync_mistakes(home, monkeypatch):
    assert fails(home, "resync", WF, "--touchpoint", "customers", "--failed").strip() == (
        f"flowlink resync: workflow '{WF}' is not live: publish and deploy it first (flowlink deploy {WF})"
    )
    ok(home, "publish", EXAMPLE)
    assert fails(home, "resync", WF, "--touchpoint", "customers", "--failed").strip() == (
        f"flowlink resync: workflow '{WF}' is not live: publish and deploy it first (flowlink deploy {WF})"
    )
    put_live(home, monkeypatch)
    assert fails(home, "resync", WF, "--touchpoint", "invoices", "--failed").strip() == (
        f"flowlink resync: workflow '{WF}' has no touchpoint 'invoices' (it has: customers, orders)"
    )
    err = fails(home, "resync", WF, "--touchpoint", "customers", code=2)
    assert (
        err.startswith("usage: flowlink resync")
        and "one of the arguments --failed --unprocessed --id is required" in err
    )
    err = fails(home, "resync", WF, "--touchpoint", "customers", "--failed", "--id", "1", code=2)
    assert "not allowed with argument" in err
    assert fails(home, "resync", WF, "--touchpoint", "customers", "--failed").strip() == (
        f"flowlink resync: no failed records in the bucket of {WF}.customers: nothing to resync"
    )
    assert fails(home, "resync", WF, "--touchpoint", "customers", "--id", "41", "42").strip() == (
        f"flowlink resync: not in the bucket of {WF}.customers: 41, 42"
    )
    assert [e["tag"] for e in feeds_json(home, "--tag", "resync")] == []  # no request was recorded


def test_resync_queues_an_airflow_run_for_the_failed_records(home, monkeypatch, airflow_db):
    ok(home, "publish", EXAMPLE)
    put_live(home, monkeypatch)

    from flowlink.store import Store, bucket, state
    from flowlink.store.bucket import Outcome

    store = Store.open()
    try:
        ids = [str(i) for i in range(1, 9)]
        bucket.mark_unprocessed(store, WF, "customers", "scheduled__1", ids, resync=False)
        bucket.record(
            store,
            WF,
            "customers",
            "scheduled__1",
            "load",
            [
                Outcome(i, "failed", None, "HTTP 500") if i in ("3", "5", "8") else Outcome(i, "success", f"D{i}")
                for i in ids
            ],
        )
        bucket.mark_unprocessed(store, WF, "orders", "scheduled__1", ["o1", "o2"], resync=False)
        bucket.record(store, WF, "orders", "scheduled__1", "load", [Outcome("o1", "failed", None, "no customer")])

        bag = load_dags()  # Airflow learns the DAG from the live file in this FLOWLINK_HOME
        assert WF in bag.dag_ids, (bag.dag_ids, bag.import_errors)

        done = flowlink(home, "resync", WF, "--touchpoint", "customers", "--failed")
        assert done.returncode == 0 and done.stderr == ""  # no "[info] creating dag run" from Airflow
        match = re.fullmatch(r"resync #(\d+): 3 customers records, run (\S+)\n", done.stdout)
        stdout = done.stdout
        assert match, stdout
        resync_id, run_id = int(match[1]), match[2]

        request = state.resync(store, resync_id)
        assert (request["workflow"], request["touchpoint"], request["source_ids"]) == (WF, "customers", ["3", "5", "8"])
        assert bucket.counts(store, WF)[("customers", "failed")] == 3  # the bucket itself is untouched until the run
    finally:
        store.dispose()

    from airflow.models import DagRun
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    runs = {r.run_id: r for r in DagRun.find(dag_id=WF)}
    assert run_id in runs, sorted(runs)
    run = runs[run_id]
    assert run.state == DagRunState.QUEUED
    assert run.run_type == DagRunType.MANUAL
    assert run.conf == {"resync_id": resync_id}
    assert (
        feeds_json(home, "--tag", "resync")[0]["message"] == f"resync #{resync_id} of 3 customers records: run {run_id}"
    )
    assert state.resync(store, resync_id)["run_id"] == run_id

    # by id: only the chosen records, each once
    stdout = ok(home, "resync", WF, "--touchpoint", "orders", "--id", "o2", "o1", "o2")
    second_id, second_run = re.fullmatch(r"resync #(\d+): 2 orders records, run (\S+)\n", stdout).groups()
    assert int(second_id) == resync_id + 1
    monkeypatch.setenv("FLOWLINK_HOME", str(home))
    store = Store.open()
    try:
        assert state.resync(store, int(second_id))["source_ids"] == ["o2", "o1"]
    finally:
        store.dispose()
    second = [r for r in DagRun.find(dag_id=WF) if r.run_id == second_run]
    assert len(second) == 1 and second[0].conf == {"resync_id": int(second_id)}


def test_resync_of_a_dag_airflow_does_not_know_says_so(home, tmp_path, airflow_db, monkeypatch):
    spec = spec_variant(tmp_path, "unknown.yaml", ("name: erp_to_shop", "name: never_parsed_flow"))
    ok(home, "publish", spec)
    from flowlink import publish

    monkeypatch.setenv("FLOWLINK_HOME", str(home))
    publish.make_live(publish.published("never_parsed_flow"))
    from flowlink.store import Store, bucket
    from flowlink.store.bucket import Outcome

    store = Store.open(f"sqlite:///{home / 'flowlink.db'}")  # one failed record: the request gets as far as Airflow
    try:
        bucket.record(store, "never_parsed_flow", "customers", "r1", "load", [Outcome("1", "failed")])
    finally:
        store.dispose()
    err = fails(home, "resync", "never_parsed_flow", "--touchpoint", "customers", "--failed")
    assert err.strip().splitlines()[-1] == (
        "flowlink resync: Airflow does not know the DAG 'never_parsed_flow' yet: "
        "is the dag-processor running (or run `airflow dags reserialize`)?"
    )


def test_runs_show_airflows_state_or_say_it_cannot_be_read(home, monkeypatch, airflow_db, tmp_path):
    """A run Airflow has queued shows as queued without an end time, though its first step has ended; with Airflow's
    database out of reach the status is unknown, said once on stderr."""
    ok(home, "publish", EXAMPLE)
    put_live(home, monkeypatch)
    load_dags()
    from flowlink import airflow_adapter as airflow_runs
    from flowlink.store import Store, snapshots

    run_id = airflow_runs.trigger(WF, {})
    store = Store.open()
    try:
        snapshots.start_step(store, WF, run_id, 1, "customers", "extract")
        snapshots.finish_step(store, WF, run_id, "customers", "extract", status="success", count_in=3, count_out=3)
    finally:
        store.dispose()
    listed = {r["run_id"]: r for r in json.loads(ok(home, "runs", WF, "--json"))}  # other tests' runs too
    assert [listed[run_id][k] for k in ("status", "ended_at", "version")] == ["queued", None, 1]

    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'nowhere' / 'airflow.db'}")
    done = flowlink(home, "runs", WF)
    assert done.returncode == 0
    assert done.stderr.startswith("flowlink runs: status unknown: cannot read Airflow's metadata database (")
    assert done.stderr.count("\n") == 1
    assert re.search(rf"{re.escape(run_id)} .* unknown", done.stdout)
    unknown = json.loads(flowlink(home, "runs", WF, "--json").stdout)  # the runs with a snapshot: this one
    assert [(r["run_id"], r["status"], r["ended_at"]) for r in unknown] == [(run_id, None, None)]


def test_one_of_a_kind_is_singular(home, tmp_path):
    spec = tmp_path / "single.yaml"
    spec.write_text(
        "name: single\nsource: {type: sql, connection: a}\ntarget: {type: rest, connection: b}\n"
        "touchpoints:\n  - name: only\n    extract: {table: t, key: id}\n"
        "    mapping: [{target: id, source: id}]\n    load: {endpoint: /x, key: id}\n"
    )
    assert ok(home, "validate", spec) == f"{spec}: ok (single, 1 touchpoint)\n"
    assert re.fullmatch(r"only: ok \(1 mapping rule, \d+ bytes\)\n", ok(home, "generate", spec))
    from flowlink.errors import plural

    assert [plural(n, "record") for n in (0, 1, 2)] == ["0 records", "1 record", "2 records"]
    assert plural(1, "try", "tries") == "1 try" and plural(3, "try", "tries") == "3 tries"


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", WF, "--timeout", "5"], "--timeout goes with --wait"),
        (["run", WF, "--wait", "--timeout", "0"], "argument --timeout: 0 is not more than 0 seconds"),
        (
            ["resync", WF, "--touchpoint", "c", "--failed", "--wait", "--timeout", "soon"],
            "'soon' is not a number of seconds",
        ),
    ],
)
def test_wait_arguments(home, args, message):
    assert message in fails(home, *args, code=2)


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "args, message",
    [
        (["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
        ([], "the following arguments are required: COMMAND"),
        (["bucket", WF, "--status", "bogus"], "argument --status: invalid choice: 'bogus'"),
        (["bucket", WF, "--limit", "many"], "argument --limit: 'many' is not a whole number"),
        (["publish"], "the following arguments are required: FILE"),
        (["validate", "x.yaml", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_arguments_exit_2_with_usage(home, args, message):
    done = flowlink(home, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: flowlink")
    assert message in done.stderr
    assert not home.exists()  # nothing was opened or written
