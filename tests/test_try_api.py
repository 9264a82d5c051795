"""The Try page's REST API (plugins/api/tries.py): check a draft, try a touchpoint on samples fetched by a real
flowlink_try Airflow run, re-run only the transform on edited mappings, follow a try once, publish a draft.

Users log in with real Airflow JWTs (SimpleAuthManager roles viewer, user, admin; "outsider" is a user-role login the
auth manager refuses on the DAG of WF, as in tests/test_api_security.py). The source is a SQLite file reached through
the example's Airflow connection (an AIRFLOW_CONN_* variable), the store a SQLite file in a per-test FLOWLINK_HOME.
"""

from __future__ import annotations

import json
import sqlite3
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from flowlink import publish, tries
from flowlink.deployments import add_environment
from flowlink.states import TryStatus
from flowlink.store import feeds
from flowlink.store import tries as try_rows
from tests.airflow_env import REPO
from tests.airflow_helpers import load_dags
from tests.test_api_security import _outsider_manager

SPEC = REPO / "examples" / "erp_to_shop.yaml"
TEXT = SPEC.read_text()
WF, OTHER = "erp_to_shop", "crm_to_erp"
NAME_RULE = "{target: name, xpath: \"concat(first_name, ' ', last_name)\"}"
ROWS = [  # id, first_name, last_name, email, country_code, updated_at
    (7, "Ada", "Lovelace", "  Ada.Lovelace@Example.COM ", "FR", "2024-05-01T10:00:00Z"),
    (8, "Jürgen", "Müller", "jm@example.de", "DE", "2024-05-02T10:00:00Z"),
    (9, "Ann", "Smith", "ann@example.com", "GB", "2024-05-03T10:00:00Z"),
]


def source_record(row: tuple) -> dict:
    return dict(zip(["id", "first_name", "last_name", "email", "country_code", "updated_at"], row, strict=True))


@pytest.fixture
def world(home, store, app, airflow_db, monkeypatch, tmp_path):
    """WF and OTHER published (not live), the environment prod, the example's source as a SQLite file with ROWS, a
    client and a JWT per login."""
    from airflow.api_fastapi.app import _AuthManagerState
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = _outsider_manager()
    monkeypatch.setattr(_AuthManagerState, "instance", manager)
    erp = tmp_path / "erp.db"
    with sqlite3.connect(erp) as db:
        db.execute(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT, "
            "country_code TEXT, updated_at TEXT)"
        )
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", ROWS)
    db.close()
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_ERP", json.dumps({"conn_type": "sqlite", "host": str(erp)}))
    add_environment(store, "prod", "cloud")
    art = publish.publish(SPEC).artifact
    other = home / f"{OTHER}.yaml"
    other.write_text(TEXT.replace(f"name: {WF}", f"name: {OTHER}"))
    publish.publish(other)
    logins = {role: SimpleAuthManagerUser(username=role, role=role) for role in ("viewer", "user", "admin")}
    logins["outsider"] = SimpleAuthManagerUser(username="outsider", role="user")
    logins["other"] = SimpleAuthManagerUser(username="other", role="user")
    jwt = {name: manager.generate_jwt(u) for name, u in logins.items()}
    client = TestClient(app)  # a server error raises here: no 500 goes unnoticed

    def call(who: str, method: str, url: str, body=None):
        return client.request(method, url, json=body, headers={"Authorization": f"Bearer {jwt[who]}"})

    return SimpleNamespace(store=store, call=call, artifact=art, home=home)


def stored_tries(store) -> list[try_rows.Try]:
    import sqlalchemy as sa

    from flowlink.store.tables import tries as table

    with store.engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.select(table.c.id))]
    return [t for t in (try_rows.get(store, i) for i in ids) if t is not None]


def customers_of(result: dict) -> dict[str, dict]:
    return {r["key"]: r for r in result["records"]}


# ------------------------------------------------------------------ check


def test_check_names_every_problem_of_a_draft_at_its_yaml_path(world):
    """A draft with a bad value in a mapping rule and a bad load method: 200 with both problems at their YAML paths,
    the name and the touchpoints as far as they can be read; a valid draft has no problem; text that is not YAML is
    one problem at the top with its line and column; YAML nested too deep is a problem, not a server error."""
    bad = TEXT.replace("trim: true", "trim: maybe").replace(
        "method: upsert\n      key: customer_id", "method: sideways\n      key: customer_id"
    )
    r = world.call("viewer", "POST", "/api/v1/tries/check", {"draft": bad})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["workflow"] == WF and got["touchpoints"] == ["customers", "orders"]
    assert [p["path"] for p in got["problems"]] == ["touchpoints[0].mapping[2].trim", "touchpoints[0].load.method"]
    assert "valid boolean" in got["problems"][0]["message"]
    assert "'upsert', 'insert' or 'create_or_update'" in got["problems"][1]["message"]

    good = world.call("viewer", "POST", "/api/v1/tries/check", {"draft": TEXT}).json()
    assert good == {"workflow": WF, "touchpoints": ["customers", "orders"], "problems": []}

    broken = world.call("viewer", "POST", "/api/v1/tries/check", {"draft": "name: x\n  touchpoints: [\n"}).json()
    assert broken["workflow"] is None and broken["touchpoints"] == []
    (problem,) = broken["problems"]
    assert problem["path"] == "" and problem["message"].startswith("invalid YAML: line 2, column ")

    deep = world.call("viewer", "POST", "/api/v1/tries/check", {"draft": "[" * 50_000}).json()
    assert deep["problems"] == [{"path": "", "message": "invalid YAML: nested too deeply"}]

    huge = world.call("viewer", "POST", "/api/v1/tries/check", {"draft": "#" * 200_001})
    assert huge.status_code == 422


def test_a_draft_keeps_the_published_xslt_file_of_a_workflow_the_user_may_read(world):
    """A touchpoint with its own XSLT file: a draft has no folder to read it from, so it keeps the stylesheet of the
    latest published version naming the same file, for a user who may read that version; for the outsider (no read
    access to WF) the check names the problem at touchpoints[0].xslt and reveals nothing of the published one."""
    folder = world.home / "with_xslt"
    folder.mkdir()
    (folder / "customers.xsl").write_text(world.artifact.stylesheets["customers"])
    start, end = TEXT.index("    mapping:\n"), TEXT.index("    load:\n")
    text = TEXT[:start] + "    xslt: customers.xsl\n" + TEXT[end:]
    (folder / f"{WF}.yaml").write_text(text)
    assert publish.publish(folder / f"{WF}.yaml").artifact.version == 2

    assert world.call("user", "POST", "/api/v1/tries/check", {"draft": text}).json()["problems"] == []
    outsider = world.call("outsider", "POST", "/api/v1/tries/check", {"draft": text}).json()
    assert [p["path"] for p in outsider["problems"]] == ["touchpoints[0].xslt"]
    assert "a draft cannot read the file customers.xsl" in outsider["problems"][0]["message"]
    body = {"draft": text, "touchpoint": "customers", "records": [source_record(ROWS[0])]}
    r = world.call("user", "POST", "/api/v1/tries/transform", body)
    assert r.status_code == 200, r.text
    assert customers_of(r.json())["7"]["output"][0]["name"] == "Ada Lovelace"


# ------------------------------------------------------------------ transform


def test_transform_shows_the_output_of_the_edited_mapping_on_the_samples(world):
    """The samples a page has, transformed by the published version (a viewer may) and then by a draft whose name
    rule is changed to the upper-cased last name in a new field (the user may: edit permission): the output fields
    follow the mapping, and what the load would send follows them. No source is read (the records are the body's)."""
    records = [source_record(r) for r in ROWS[:2]]
    body = {"workflow": WF, "touchpoint": "customers", "records": records}
    started = time.perf_counter()
    r = world.call("viewer", "POST", "/api/v1/tries/transform", body)
    published_took = time.perf_counter() - started
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["workflow"], got["version"], got["touchpoint"]) == (WF, 1, "customers")
    assert "<xsl:stylesheet" in got["stylesheet"]
    ada = customers_of(got)["7"]
    assert ada["status"] == "ready" and ada["source"]["first_name"] == "Ada"
    assert ada["output"] == [
        {
            "customer_id": "7",
            "name": "Ada Lovelace",
            "email": "ada.lovelace@example.com",
            "country": "France",
            "channel": "erp",
        }
    ]
    (request,) = ada["requests"]
    assert (request["target"], request["method"], request["where"]) == ("rest", "PUT", "/customers/7")
    assert request["body"]["name"] == "Ada Lovelace"

    draft = TEXT.replace(NAME_RULE, "{target: surname, source: last_name, case: upper}")
    assert draft != TEXT
    edited = {"draft": draft, "touchpoint": "customers", "records": records}
    started = time.perf_counter()
    r = world.call("user", "POST", "/api/v1/tries/transform", edited)
    draft_took = time.perf_counter() - started
    assert r.status_code == 200, r.text
    got = customers_of(r.json())
    assert r.json()["version"] is None
    assert got["7"]["output"][0]["surname"] == "LOVELACE" and "name" not in got["7"]["output"][0]
    assert got["8"]["output"][0]["surname"] == "MÜLLER" and got["8"]["output"][0]["country"] == "Germany"
    assert got["7"]["requests"][0]["body"]["surname"] == "LOVELACE"
    print(f"transform: published {published_took * 1000:.0f} ms, draft {draft_took * 1000:.0f} ms (2 records)")

    refused = world.call("viewer", "POST", "/api/v1/tries/transform", edited)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"you may not try a draft of or publish {WF}: that needs edit permission on the Airflow DAG {WF}"
    )
    outsider = world.call("outsider", "POST", "/api/v1/tries/transform", body)
    assert outsider.status_code == 403 and f"read access to the Airflow DAG {WF}" in outsider.json()["detail"]


def test_transform_refuses_bad_input_clearly(world):
    """An unknown touchpoint names the touchpoints there are; an invalid draft is 400 with its problems; no records,
    too many, a record that is no object, or a draft with a version are refused before anything runs (422)."""
    records = [source_record(ROWS[0])]
    r = world.call(
        "viewer", "POST", "/api/v1/tries/transform", {"workflow": WF, "touchpoint": "nowhere", "records": records}
    )
    assert r.status_code == 400
    assert r.json()["detail"] == f"workflow '{WF}' has no touchpoint 'nowhere' (it has: customers, orders)"
    bad = TEXT.replace("case: lower", "case: sideways")
    r = world.call(
        "user", "POST", "/api/v1/tries/transform", {"draft": bad, "touchpoint": "customers", "records": records}
    )
    assert r.status_code == 400
    assert [p["path"] for p in r.json()["problems"]] == ["touchpoints[0].mapping[2].case"]
    assert r.json()["detail"].startswith("draft: touchpoints[0].mapping[2].case: ")
    for body in (
        {"workflow": WF, "touchpoint": "customers", "records": []},
        {"workflow": WF, "touchpoint": "customers", "records": records * 101},
        {"workflow": WF, "touchpoint": "customers", "records": [1]},
        {"draft": TEXT, "version": 1, "touchpoint": "customers", "records": records},
        {"workflow": WF, "draft": TEXT, "touchpoint": "customers", "records": records},
        {"touchpoint": "customers", "records": records},
    ):
        assert world.call("admin", "POST", "/api/v1/tries/transform", body).status_code == 422, body


# ------------------------------------------------------------------ POST /tries


def test_start_try_refusals_come_before_anything_is_recorded(world):
    """A viewer may fetch samples of a published version but not of a draft (403 naming the edit permission); the
    outsider may not read WF (403); an unknown touchpoint names the touchpoints; an invalid draft is 400 with its
    problems; a published version that does not exist is 400. None of these records a try."""
    draft = {"draft": TEXT, "touchpoint": "customers"}
    r = world.call("viewer", "POST", "/api/v1/tries", draft)
    assert r.status_code == 403
    assert r.json()["detail"] == (
        f"you may not try a draft of or publish {WF}: that needs edit permission on the Airflow DAG {WF}"
    )
    r = world.call("outsider", "POST", "/api/v1/tries", {"workflow": WF, "touchpoint": "customers"})
    assert r.status_code == 403 and r.json()["detail"] == (
        f"you may not read {WF}: that needs read access to the Airflow DAG {WF}"
    )
    r = world.call("user", "POST", "/api/v1/tries", {"workflow": WF, "touchpoint": "nowhere"})
    assert r.status_code == 400 and "(it has: customers, orders)" in r.json()["detail"]
    r = world.call("user", "POST", "/api/v1/tries", {"draft": TEXT.replace("key: id", "key: 1d"), "touchpoint": "x"})
    assert r.status_code == 400
    assert {p["path"] for p in r.json()["problems"]} == {"touchpoints[0].extract.key", "touchpoints[1].extract.key"}
    r = world.call("viewer", "POST", "/api/v1/tries", {"workflow": WF, "version": 9, "touchpoint": "customers"})
    assert r.status_code == 400 and r.json()["detail"] == f"workflow {WF!r} has no published version 9"
    r = world.call("viewer", "POST", "/api/v1/tries", {"workflow": WF, "touchpoint": "customers", "limit": 101})
    assert r.status_code == 422
    assert stored_tries(world.store) == []


def test_a_try_runs_as_an_airflow_run_and_is_handed_over_once(world):
    """A viewer starts a try of the published version: 201, recorded for them, and a real flowlink_try run queued in
    Airflow with conf {try_id, queue: prod}; following it shows it queued. The run's task is then executed by Airflow
    (dag.test with that conf): GET hands over the samples of the real source with the mapping's output, once; the
    next GET is 404. Another user never sees it. A user's try of a draft for chosen ids runs the draft's mapping."""
    bag = load_dags()  # Airflow learns flowlink_try, as the dag-processor would
    r = world.call("viewer", "POST", "/api/v1/tries", {"workflow": WF, "touchpoint": "customers", "limit": 2})
    assert r.status_code == 201, r.text
    started = r.json()
    assert {k: started[k] for k in ("workflow", "version", "touchpoint", "environment", "status")} == {
        "workflow": WF,
        "version": 1,
        "touchpoint": "customers",
        "environment": "prod",
        "status": "queued",
    }
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=tries.TRY_DAG, run_id=started["run_id"]).one()
        assert run.conf == {"try_id": started["try_id"], "queue": "prod"} and run.state == "queued"
    (row,) = stored_tries(world.store)
    assert row["requested_by"] == "viewer" and row["limit"] == 2 and row["ids"] is None

    url = f"/api/v1/tries/{started['try_id']}"
    assert world.call("other", "GET", url).status_code == 404
    queued = world.call("viewer", "GET", url)
    assert queued.status_code == 200 and queued.json()["status"] == "queued" and queued.json()["result"] is None

    done = bag.get_dag(tries.TRY_DAG).test(run_conf={"try_id": started["try_id"], "queue": "prod"})
    assert {ti.task_id: ti.state for ti in done.get_task_instances()} == {"fetch": "success"}

    r = world.call("viewer", "GET", url)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "success" and got["error"] is None and got["run_id"] == started["run_id"]
    records = customers_of(got["result"])
    assert list(records) == ["9", "8"]  # the newest two by updated_at
    assert records["9"]["source"]["last_name"] == "Smith" and records["9"]["output"][0]["country"] == "Other"
    assert records["8"]["output"][0]["name"] == "Jürgen Müller"
    assert got["result"]["chosen"] == "the newest 2 records by updated_at"
    assert world.call("viewer", "GET", url).status_code == 404
    assert stored_tries(world.store) == []

    draft = TEXT.replace(NAME_RULE, "{target: surname, source: last_name, case: upper}")
    body = {"draft": draft, "touchpoint": "customers", "ids": ["7", "404"]}
    r = world.call("user", "POST", "/api/v1/tries", body)
    assert r.status_code == 201 and r.json()["version"] is None, r.text
    bag.get_dag(tries.TRY_DAG).test(run_conf={"try_id": r.json()["try_id"], "queue": "prod"})
    got = world.call("user", "GET", f"/api/v1/tries/{r.json()['try_id']}").json()
    records = customers_of(got["result"])
    assert got["result"]["version"] is None and list(records) == ["7", "404"]
    assert records["7"]["output"][0]["surname"] == "LOVELACE" and "name" not in records["7"]["output"][0]
    assert records["404"]["status"] == "failed" and records["404"]["source"] is None


# ------------------------------------------------------------------ GET /tries/{id}


def test_an_ended_try_is_handed_over_once_and_only_to_its_user(world):
    """A try recorded in the store and finished with a result: another user gets 404 (and it stays); its user gets
    it with the result, then 404. A user who may no longer read the workflow is refused (403), and keeps the try."""
    content = {"spec": world.artifact.spec, "stylesheets": world.artifact.stylesheets}

    def recorded(user: str) -> int:
        try_id = try_rows.create(
            world.store,
            workflow=WF,
            version=1,
            touchpoint="customers",
            requested_by=user,
            environment=None,
            subject=content,
            limit=5,
            ids=None,
        )
        try_rows.finish(world.store, try_id, result=trial.as_dict())
        return try_id

    subject = tries.subject_of(content, "customers", 1)
    trial = tries.retransform(subject, [source_record(ROWS[0])])

    try_id = recorded("user")
    url = f"/api/v1/tries/{try_id}"
    other = world.call("other", "GET", url)
    assert other.status_code == 404 and other.json()["detail"].startswith(f"no try {try_id} of yours")
    r = world.call("user", "GET", url)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["try_id"] == try_id and got["status"] == "success" and got["error"] is None
    assert got["result"] == trial.as_dict() and got["result"]["records"][0]["output"][0]["name"] == "Ada Lovelace"
    assert world.call("user", "GET", url).status_code == 404

    outsiders = recorded("outsider")
    r = world.call("outsider", "GET", f"/api/v1/tries/{outsiders}")
    assert r.status_code == 403 and f"read access to the Airflow DAG {WF}" in r.json()["detail"]
    assert try_rows.get(world.store, outsiders)["status"] is TryStatus.SUCCESS
    assert world.call("user", "GET", "/api/v1/tries/0").status_code == 422


# ------------------------------------------------------------------ publish


def test_publish_a_draft_as_the_next_version(world):
    """The user publishes an edited draft: 201, a new read-only version file with the draft's mapping, and a feeds
    entry; publishing the same text again writes nothing (created false). A viewer is refused naming the edit
    permission, a draft of another name is 400, an invalid draft 400 with its problems."""
    draft = TEXT.replace(NAME_RULE, "{target: surname, source: last_name, case: upper}")
    url = f"/api/v1/workflows/{WF}/publish"
    refused = world.call("viewer", "POST", url, {"spec": draft})
    assert refused.status_code == 403 and "needs edit permission on the Airflow DAG" in refused.json()["detail"]
    assert len(publish.versions(WF)) == 1

    r = world.call("user", "POST", url, {"spec": draft})
    assert r.status_code == 201, r.text
    got = r.json()
    art = publish.published(WF)
    assert got == {"workflow": WF, "version": 2, "created": True, "sha256": art.sha256}
    assert art.path.name == f"{WF}-v0002.json" and not art.path.stat().st_mode & 0o222
    rules = art.spec["touchpoints"][0]["mapping"]
    assert {"surname", "customer_id"} <= {m["target"] for m in rules} and "name" not in {m["target"] for m in rules}
    assert "last_name" in art.stylesheets["customers"]
    entry = feeds.entries(world.store, limit=10)[0]
    assert entry["workflow"] == WF and entry["message"].startswith(f"published {WF} v2 ")

    again = world.call("admin", "POST", url, {"spec": draft})
    assert again.status_code == 201 and again.json() == {**got, "created": False}
    assert len(publish.versions(WF)) == 2

    r = world.call("user", "POST", f"/api/v1/workflows/{OTHER}/publish", {"spec": draft})
    assert r.status_code == 400
    assert r.json()["detail"] == f"the draft is workflow {WF!r}, not {OTHER!r}: publish it as {WF}, or rename it"
    r = world.call("user", "POST", url, {"spec": TEXT.replace("depends_on: [customers]", "depends_on: [nowhere]")})
    assert r.status_code == 400
    assert r.json()["problems"] == [{"path": "touchpoints[1].depends_on[0]", "message": "unknown touchpoint 'nowhere'"}]
    assert len(publish.versions(WF)) == 2 and len(publish.versions(OTHER)) == 1
