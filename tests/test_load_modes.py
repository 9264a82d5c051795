"""Load method create_or_update against json-server 0.17 (a REST API from the npm registry that nobody here wrote: it
creates with POST answering its own id, updates by that id, answers 404 for an unknown one). The demo ERP (SQLite) goes
through the real steps (flowlink.sync extract -> transform -> load, a real store); json-server's request log counts
what was sent."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from examples.demo_erp import create as create_erp
from examples.demo_erp import touch
from flowlink import publish
from flowlink.connectors.base import Action
from flowlink.connectors.rest import RestTarget
from flowlink.connectors.sql import SqlSource
from flowlink.mapping import output_types
from flowlink.store import bucket
from flowlink.sync import RecordsFailed, RunContext, extract, load, transform
from flowlink.transform import Transformer
from tests.npm_servers import JsonServer

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "erp_to_api.yaml"
N = 30  # ERP customers
WF = "erp_to_api"


class Api:
    """The example workflow erp_to_api (load changes given per test) from a fresh demo ERP to json-server, run step by
    step as the operators do."""

    def __init__(self, home: Path, store, server: JsonServer, **load: object):
        self.store, self.server, self.erp_file = store, server, home / "erp.db"
        create_erp(self.erp_file, customers=N, orders=0)
        spec = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        spec["touchpoints"][0]["load"].update(load)
        spec["touchpoints"][0]["batch_size"] = 8  # several batches
        self.spec = home / "erp_to_api.yaml"
        self.spec.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        self.runs = 0

    def run(self, resync: list[str] | None = None) -> str | None:
        """Extract, transform and load; the RecordsFailed message, or None when every record loaded."""
        art = publish.publish(self.spec).artifact
        tp = art.workflow_model().touchpoint("customers")
        self.runs += 1
        ctx = RunContext(
            self.store,
            art,
            f"run-{self.runs}",
            resync={"touchpoint": "customers", "source_ids": resync} if resync else None,
        )
        transformer = Transformer(art.stylesheets["customers"], output_types(tp), tp.extract.key)
        transformed = transform(ctx, tp, transformer, extract(ctx, tp, lambda: SqlSource(f"sqlite:///{self.erp_file}")))
        try:
            load(ctx, tp, lambda: RestTarget(self.server.url, retries=1, backoff=0.01), transformed)
        except RecordsFailed as exc:
            return str(exc)
        return None

    def erp(self) -> dict[str, dict]:
        """erp id -> the customer as the API should hold it (its own id aside)."""
        with sqlite3.connect(self.erp_file) as db:
            rows = db.execute("SELECT id, first_name, last_name, email, country_code FROM customers").fetchall()
        return {
            str(i): {"erp_id": str(i), "name": f"{first} {last}", "email": email.lower(), "country": country}
            for i, first, last, email, country in rows
        }

    def held(self) -> dict[str, dict]:
        """erp id -> the API's record; fails if the API holds an e-mail twice."""
        records = self.server.records()
        twice = [e for e, n in Counter(r["email"] for r in records).items() if n > 1]
        assert not twice, f"e-mails held twice: {twice}"
        return {r["erp_id"]: r for r in records if "erp_id" in r}

    def bucket(self) -> dict[str, dict]:
        return {r["source_id"]: r for r in bucket.rows(self.store, WF, touchpoint="customers", limit=1000)}

    def change(self, ids: list[int], prefix: str = "New") -> None:
        """Change these customers' first names in the ERP (and their updated_at: the next run reads them)."""
        with sqlite3.connect(self.erp_file) as db:
            db.executemany("UPDATE customers SET first_name = ? || first_name WHERE id = ?", [(prefix, i) for i in ids])
        db.close()
        touch(self.erp_file, "customers", ids)


@pytest.fixture
def server(tmp_path):
    with JsonServer(tmp_path / "json-server", quiet=False) as s:
        yield s


@pytest.fixture
def api(home, store, server):
    return lambda **load: Api(home, store, server, **load)


def without_id(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "id"}


@pytest.mark.parametrize("update", ["put", "patch"])
def test_created_once_then_updated_by_the_stored_id(api, server, update):
    """First sync: each ERP customer is looked up by e-mail, then created with one POST; the bucket keeps the API's
    id. A second run of the unchanged ERP sends nothing; 10 changed customers give exactly 10 updates (PUT or PATCH
    /customers/{the API's id}), no look-up, no POST. A try whose results were lost (the same records written again
    without their ids) finds them by e-mail and updates them: nothing is created twice."""
    flow = api(update=update)
    assert flow.run() is None
    first = server.requests()  # (before this test's own reads)
    expected = flow.erp()
    held = flow.held()
    assert {i: without_id(r) for i, r in held.items()} == expected  # each customer once, with its mapped fields
    assert Counter(m for m, _, _ in first) == {"GET": N, "POST": N}
    assert all(status == (200 if m == "GET" else 201) for m, _, status in first)
    rows = flow.bucket()
    assert {i: (r["status"], r["destination_id"]) for i, r in rows.items()} == {
        i: ("success", str(held[i]["id"])) for i in expected
    }

    sent = len(server.requests())
    assert flow.run() is None  # nothing changed in the ERP
    assert len(server.requests()) == sent

    changed = list(range(3, 23, 2))
    flow.change(changed)
    sent = len(server.requests())
    assert flow.run() is None
    updates = server.requests()[sent:]
    method = update.upper()
    assert sorted(updates) == sorted((method, f"/customers/{held[str(i)]['id']}", 200) for i in changed)
    after = flow.held()
    assert {i: without_id(r) for i, r in after.items()} == flow.erp()
    assert all(after[str(i)]["name"].startswith("New") and after[str(i)]["id"] == held[str(i)]["id"] for i in changed)

    # The connector alone, as a retry whose earlier try created records without recording them
    tp = publish.publish(flow.spec).artifact.workflow_model().touchpoint("customers")
    records = [without_id(after[i]) for i in ("1", "2")]
    sent = len(server.requests())
    with RestTarget(server.url) as target:
        results = target.write(tp.load, records)
    assert [(r.ok, r.action, r.destination_id) for r in results] == [
        (True, Action.UPDATED, str(after[i]["id"])) for i in ("1", "2")
    ]
    assert server.methods(sent) == {"GET": 2, method: 2}
    assert len(server.records()) == N


def test_records_already_in_the_target_are_matched_by_email_not_duplicated(api, server):
    """Before the first sync the API holds 5 of the ERP's customers (same e-mail, another name, its own ids 501-505)
    and one customer the ERP does not know. The first sync must update those 5 by their ids (GET, then PUT
    /customers/50x), create the others, and leave the stranger alone."""
    flow = api()
    erp = flow.erp()
    known = {str(i): 500 + i for i in range(1, 6)}
    for i, own in known.items():
        requests.post(
            f"{server.url}/customers", json={"id": own, "email": erp[i]["email"], "name": "Old Name"}, timeout=10
        ).raise_for_status()
    stranger = requests.post(
        f"{server.url}/customers", json={"email": "stranger@example.org", "name": "S"}, timeout=10
    ).json()
    sent = len(server.requests())

    assert flow.run() is None
    log = server.requests()[sent:]
    held = flow.held()
    assert {i: without_id(r) for i, r in held.items()} == erp
    assert {i: held[i]["id"] for i in known} == known
    assert len(server.records()) == N + 1 and stranger in server.records()
    assert Counter(m for m, _, _ in log) == {"GET": N, "PUT": len(known), "POST": N - len(known)}
    assert sorted(p for m, p, _ in log if m == "PUT") == sorted(f"/customers/{own}" for own in known.values())
    assert {i: r["destination_id"] for i, r in flow.bucket().items()} == {i: str(r["id"]) for i, r in held.items()}


def delete_two(flow: Api, server: JsonServer) -> dict[str, int]:
    """Delete the customers the API holds as ids 2 and 5 (not the newest: json-server gives a new record the highest
    id + 1, so it would give the newest id deleted again); erp id -> its old API id."""
    old = {r["id"]: i for i, r in flow.held().items()}
    for own in (2, 5):
        requests.delete(f"{server.url}/customers/{own}", timeout=10).raise_for_status()
    return {old[2]: 2, old[5]: 5}


@pytest.mark.reliability("Faults", "A record deleted in the target (an update answers 404), create_or_update")
def test_a_record_deleted_in_the_target_is_created_again(api, server, observe):
    """After the first sync, 2 customers are deleted in the API and changed in the ERP. With on_missing: create,
    the next run's PUT /customers/{old id} answers 404; the record is looked up (none found) and created again with a
    new id, which the bucket keeps; a third change updates it by the new id."""
    flow = api(on_missing="create")
    assert flow.run() is None
    old = delete_two(flow, server)
    flow.change([int(i) for i in old])
    sent = len(server.requests())
    assert flow.run() is None
    log = server.requests()[sent:]
    held = flow.held()
    assert {i: without_id(r) for i, r in held.items()} == flow.erp() and len(server.records()) == N
    new = {i: held[i]["id"] for i in old}
    assert sorted(new.values()) == [N + 1, N + 2]
    assert sorted(log) == sorted(
        [("PUT", f"/customers/{old[i]}", 404) for i in new]
        + [("GET", f"/customers?email={held[i]['email'].replace('@', '%40')}", 200) for i in new]
        + [("POST", "/customers", 201) for _ in new]
    )
    rows = flow.bucket()
    assert {i: (rows[i]["status"], rows[i]["destination_id"]) for i in new} == {
        i: ("success", str(new[i])) for i in new
    }

    first = next(iter(new))
    flow.change([int(first)])
    sent = len(server.requests())
    assert flow.run() is None
    assert server.requests()[sent:] == [("PUT", f"/customers/{new[first]}", 200)]
    observe(
        f"2 of {N} customers deleted in json-server: the next run's PUT answered 404, each was looked up and "
        f"created again (ids {', '.join(f'{old[i]}->{new[i]}' for i in new)}), the bucket keeps the new ids and "
        f"the next change is a PUT by the new id; {len(server.records())} records, e-mails once each"
    )


@pytest.mark.reliability("Faults", "A record deleted in the target, on_missing: fail")
def test_a_record_deleted_in_the_target_fails_when_the_spec_says_so(api, server, observe):
    """As above with on_missing: fail: the 2 deleted customers are Failed with a message naming the method and path
    and saying why; the other changed customer is updated; nothing is created."""
    flow = api(on_missing="fail")
    assert flow.run() is None
    old = delete_two(flow, server)
    other = next(i for i in ("1", "2", "3") if i not in old)
    flow.change([int(i) for i in [*old, other]])
    sent = len(server.requests())
    message = flow.run()
    assert server.methods(sent) == {"PUT": 3}
    assert message.startswith("customers: 2 records failed")
    rows = flow.bucket()
    failed = {i: r["message"] for i, r in rows.items() if r["status"] == "failed"}
    assert failed == {
        i: f"PUT /customers/{old[i]}: HTTP 404: {{}}; the record is no longer in the target (load.on_missing: fail)"
        for i in old
    }
    assert rows[other]["status"] == "success" and flow.held()[other]["name"].startswith("New")
    assert len(server.records()) == N - 2
    observe(
        f"PUT answered 404 for the 2 deleted customers: Failed with {failed[next(iter(old))]!r}; the third "
        f"changed customer updated; nothing created"
    )


@pytest.mark.reliability("Bad input", "The look-up (match) finds 2 records in the target")
def test_a_match_finding_two_records_fails_that_record_only(api, server, observe):
    """The API holds customer 3's e-mail twice before the first sync. That record fails with a message naming the
    look-up and the count; nothing is written for it; every other customer is created."""
    flow = api()
    email = flow.erp()["3"]["email"]
    for name in ("One", "Two"):
        requests.post(f"{server.url}/customers", json={"email": email, "name": name}, timeout=10).raise_for_status()
    sent = len(server.requests())
    message = flow.run()
    assert server.methods(sent) == {"GET": N, "POST": N - 1}
    assert message.startswith("customers: 1 record")  # failed, in the resync bucket
    rows = flow.bucket()
    failed = {i: r["message"] for i, r in rows.items() if r["status"] == "failed"}
    path = f"/customers?email={email.replace('@', '%40')}"
    assert failed == {"3": f"GET {path}: 2 records match, so the record is not written (at most 1 may)"}
    assert rows["3"]["destination_id"] is None
    assert len(server.records()) == N + 1
    observe(f"customer 3 Failed with {failed['3']!r}; {N - 1} others created once each")


def test_upsert_against_an_api_that_updates_by_its_own_id_names_method_and_path(api, server):
    """The issue's first try: upsert (PUT /customers/{key}) against json-server fails every record with 404; each
    message says which request it was."""
    flow = api(method="upsert", id_field=None, match=None, update=None, on_missing=None)
    message = flow.run()
    assert message.startswith(f"customers: {N} records failed")
    failed = {i: r["message"] for i, r in flow.bucket().items()}
    assert failed == {str(i): f"PUT /customers/{i}: HTTP 404: {{}}" for i in range(1, N + 1)}
