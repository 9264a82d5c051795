"""The Flowlink store on a SQLite file and on a real PostgreSQL server: migrations, bucket, snapshots, feeds, state."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from flowlink.errors import FlowlinkError
from flowlink.states import RecordStatus, ResyncKind, RunKind, Step, StepStatus
from flowlink.store import Store, bucket, feeds, snapshots, state
from flowlink.store.bucket import Outcome
from flowlink.store.tables import metadata

TABLES = {
    "alembic_version",
    "bucket",
    "watermarks",
    "snapshot_steps",
    "data_log",
    "feeds",
    "resyncs",
    "environments",
    "agent_tokens",
    "deployments",
    "deployment_log",
    "alert_channels",
    "alerts_sent",
    "tries",
}
WF = "erp_to_shop"


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    yield s
    s.dispose()


def _bucket_rows(store, workflow=WF, touchpoint="customers") -> dict[str, dict]:
    return {r["source_id"]: r for r in bucket.rows(store, workflow, touchpoint=touchpoint, limit=10_000)}


# ---------------------------------------------------------------- migrations


def test_open_migrates_to_head_and_a_second_open_is_a_no_op(store_url, monkeypatch):
    bare = Store.open(store_url, migrate=False)
    assert bare.revision() is None
    assert sa.inspect(bare.engine).get_table_names() == []
    bare.dispose()

    first = Store.open(store_url)
    assert first.revision() == "0007"
    inspector = sa.inspect(first.engine)
    assert set(inspector.get_table_names()) == TABLES
    assert {ix["name"] for ix in inspector.get_indexes("bucket")} >= {"ix_bucket_status", "ix_bucket_updated"}
    assert {ix["name"] for ix in inspector.get_indexes("snapshot_steps")} >= {"ix_snapshot_run"}
    assert {ix["name"] for ix in inspector.get_indexes("data_log")} == {"ix_data_log_run"}
    assert {ix["name"] for ix in inspector.get_indexes("feeds")} == {"ix_feeds_at"}
    with first.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == ["0007"]
        # the migration creates exactly the tables the code uses
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    feeds.add(first, "publish", "kept across opens", WF)
    first.dispose()

    def no_migration(*args, **kwargs):
        raise AssertionError("a store at head must not run a migration")

    monkeypatch.setattr(command, "upgrade", no_migration)
    second = Store.open(store_url)
    assert second.revision() == "0007"
    assert [e["message"] for e in feeds.entries(second)] == ["kept across opens"]
    with second.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    second.dispose()


def test_first_opens_from_several_processes_at_once_migrate_once(store_url):
    """The CLI, the scheduler and workers may open a new store together: one migrates, the others wait and see it done."""
    code = "import sys; from flowlink.store import Store; s = Store.open(sys.argv[1]); print(s.revision()); s.dispose()"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert [(rc, out.strip()) for rc, out, _err in results] == [(0, "0007")] * 6, [err[-500:] for _, _, err in results]


def test_open_reports_an_unusable_store_as_a_flowlink_error(tmp_path):
    (tmp_path / "a-file-not-a-dir").write_text("x")
    with pytest.raises(FlowlinkError, match="cannot create the folder of the Flowlink store .*a-file-not-a-dir"):
        Store.open(f"sqlite:///{tmp_path / 'a-file-not-a-dir'}/flowlink.db")
    with pytest.raises(FlowlinkError, match="cannot use the Flowlink store URL"):
        Store.open("not a url")
    with pytest.raises(FlowlinkError, match=r"cannot use the Flowlink store URL 'nosuchdb://u:\*\*\*@h/db'"):
        Store.open("nosuchdb://u:secret@h/db")  # the password is not shown
    (tmp_path / "garbage.db").write_bytes(b"this is not a SQLite database" * 100)
    with pytest.raises(FlowlinkError, match="cannot migrate the Flowlink store"):
        Store.open(f"sqlite:///{tmp_path / 'garbage.db'}")


# ---------------------------------------------------------------- resync bucket


def test_bucket_statuses_tries_and_destination_ids(store):
    bucket.mark_unprocessed(store, WF, "customers", "run-1", ["1", "2", "3"], resync=False)
    rows = _bucket_rows(store)
    assert sorted(rows) == ["1", "2", "3"]
    assert {(r["status"], r["tries"], r["last_run"], r["destination_id"], r["message"]) for r in rows.values()} == {
        ("unprocessed", 0, "run-1", None, None)
    }

    bucket.record(
        store,
        WF,
        "customers",
        "run-1",
        "load",
        [
            Outcome("1", "success", "D-1"),
            Outcome("2", "failed", None, "HTTP 500: boom"),
            Outcome("3", "skipped", message="unchanged"),
        ],
    )
    rows = _bucket_rows(store)
    assert [rows[i]["status"] for i in "123"] == [RecordStatus.SUCCESS, RecordStatus.FAILED, RecordStatus.SKIPPED]
    assert {type(r["status"]) for r in rows.values()} == {RecordStatus}  # the enum, not the stored text
    assert (rows["1"]["status"], rows["1"]["destination_id"], rows["1"]["tries"], rows["1"]["message"]) == (
        "success",
        "D-1",
        1,
        None,
    )
    assert (rows["2"]["status"], rows["2"]["destination_id"], rows["2"]["tries"], rows["2"]["message"]) == (
        "failed",
        None,
        1,
        "HTTP 500: boom",
    )
    assert (rows["3"]["status"], rows["3"]["tries"], rows["3"]["message"]) == ("skipped", 1, "unchanged")

    # a later failure without a destination id keeps the one the record got before; tries count up
    bucket.record(store, WF, "customers", "run-1", "load", [Outcome("1", "failed", None, "HTTP 409")])
    rows = _bucket_rows(store)
    assert (rows["1"]["status"], rows["1"]["destination_id"], rows["1"]["tries"], rows["1"]["message"]) == (
        "failed",
        "D-1",
        2,
        "HTTP 409",
    )

    # a normal re-extract starts the tries afresh (and keeps the destination id)
    bucket.mark_unprocessed(store, WF, "customers", "run-2", ["1", "2"], resync=False)
    rows = _bucket_rows(store)
    assert (
        rows["1"]["status"],
        rows["1"]["tries"],
        rows["1"]["destination_id"],
        rows["1"]["message"],
        rows["1"]["last_run"],
    ) == ("unprocessed", 0, "D-1", None, "run-2")
    assert (rows["2"]["status"], rows["2"]["tries"], rows["2"]["message"]) == ("unprocessed", 0, None)
    assert (rows["3"]["status"], rows["3"]["tries"], rows["3"]["last_run"]) == (
        "skipped",
        1,
        "run-1",
    )  # not extracted again
    bucket.record(store, WF, "customers", "run-2", "load", [Outcome("2", "failed", None, "HTTP 502")])
    assert _bucket_rows(store)["2"]["tries"] == 1

    # a resync keeps counting
    bucket.mark_unprocessed(store, WF, "customers", "run-3", ["2"], resync=True)
    assert (_bucket_rows(store)["2"]["status"], _bucket_rows(store)["2"]["tries"]) == ("unprocessed", 1)
    bucket.record(store, WF, "customers", "run-3", "load", [Outcome("2", "success", "D-2")])
    row = _bucket_rows(store)["2"]
    assert (row["status"], row["tries"], row["destination_id"], row["message"], row["last_run"]) == (
        "success",
        2,
        "D-2",
        None,
        "run-3",
    )

    # the data log of each run holds each outcome with the tries it had then
    log = snapshots.snapshot(store, "run-1")["data_log"]
    assert [(d["source_id"], d["step"], d["status"], d["destination_id"], d["tries"], d["message"]) for d in log] == [
        ("1", "load", "success", "D-1", 1, None),
        ("2", "load", "failed", None, 1, "HTTP 500: boom"),
        ("3", "load", "skipped", None, 1, "unchanged"),
        ("1", "load", "failed", None, 2, "HTTP 409"),
    ]
    assert [(d["source_id"], d["tries"]) for d in snapshots.snapshot(store, "run-3")["data_log"]] == [("2", 2)]

    # a record never extracted (no unprocessed row) still lands in the bucket with one try
    bucket.record(store, WF, "orders", "run-3", "load", [Outcome("o-9", "failed", None, "no customer")])
    assert [(r["source_id"], r["status"], r["tries"]) for r in bucket.rows(store, WF, touchpoint="orders")] == [
        ("o-9", "failed", 1)
    ]
    bucket.record(store, WF, "orders", "run-3", "load", [])  # nothing to write is fine
    assert bucket.counts(store, WF) == {
        ("customers", "unprocessed"): 1,
        ("customers", "success"): 1,
        ("customers", "skipped"): 1,
        ("orders", "failed"): 1,
    }


def test_bucket_counts_rows_source_ids_filters_and_paging_over_2000_records(store):
    ids = [f"C{i:05d}" for i in range(2000)]
    failed = [sid for i, sid in enumerate(ids) if i % 3 == 0]
    bucket.mark_unprocessed(store, WF, "customers", "run-1", ids, resync=False)
    bucket.record(
        store,
        WF,
        "customers",
        "run-1",
        "load",
        [
            Outcome(sid, "failed", None, f"bad {sid}") if i % 3 == 0 else Outcome(sid, "success", f"D{sid}")
            for i, sid in enumerate(ids)
        ],
    )
    bucket.mark_unprocessed(store, WF, "orders", "run-1", [f"O{i}" for i in range(10)], resync=False)
    bucket.mark_unprocessed(store, "other_flow", "customers", "run-x", ids[:5], resync=False)
    bucket.record(store, "other_flow", "customers", "run-x", "load", [Outcome(sid, "failed") for sid in ids[:5]])

    assert len(failed) == 667
    assert bucket.counts(store, WF) == {
        ("customers", "failed"): 667,
        ("customers", "success"): 1333,
        ("orders", "unprocessed"): 10,
    }
    assert bucket.counts(store, "other_flow") == {("customers", "failed"): 5}
    assert bucket.counts(store, "nobody") == {}
    assert bucket.count(store, WF) == 2010
    assert bucket.count(store, WF, touchpoint="customers") == 2000
    assert bucket.count(store, WF, status="failed") == 667
    assert bucket.count(store, WF, touchpoint="orders", status="failed") == 0
    assert bucket.count(store, WF, touchpoint="orders", status="unprocessed") == 10

    # rows: ordered by touchpoint, then the order records came in; paged with limit/offset
    assert [r["source_id"] for r in bucket.rows(store, WF)] == ids[:100]  # default limit 100
    everything = bucket.rows(store, WF, limit=5000)
    assert [(r["touchpoint"], r["source_id"]) for r in everything] == [("customers", s) for s in ids] + [
        ("orders", f"O{i}") for i in range(10)
    ]
    pages = [bucket.rows(store, WF, touchpoint="customers", limit=700, offset=o) for o in (0, 700, 1400, 2100)]
    assert [len(p) for p in pages] == [700, 700, 600, 0]
    assert [r["source_id"] for p in pages for r in p] == ids
    failed_rows = bucket.rows(store, WF, touchpoint="customers", status="failed", limit=10, offset=660)
    assert [r["source_id"] for r in failed_rows] == failed[660:]
    assert all(
        r["status"] == "failed" and r["message"] == f"bad {r['source_id']}" and r["destination_id"] is None
        for r in failed_rows
    )
    assert bucket.rows(store, WF, touchpoint="customers", status="success", limit=1)[0]["destination_id"] == "DC00001"
    assert bucket.rows(store, WF, touchpoint="nope") == []

    # source ids: all, one status, among given ids (more than one chunk), other workflows kept apart
    assert bucket.source_ids(store, WF, "customers") == ids
    assert bucket.source_ids(store, WF, "customers", status="failed") == failed
    among = ids[100:1300] + ["C99999", "nope"]
    assert bucket.source_ids(store, WF, "customers", among=among) == ids[100:1300]
    assert bucket.source_ids(store, WF, "customers", status="failed", among=among) == [
        s for s in failed if s in set(ids[100:1300])
    ]
    assert bucket.source_ids(store, WF, "customers", among=[]) == []
    assert bucket.source_ids(store, "other_flow", "customers", status="failed") == ids[:5]
    assert bucket.source_ids(store, WF, "orders", status="failed") == []


# ---------------------------------------------------------------- process snapshots


def test_snapshot_steps_runs_and_run_version(store):
    snapshots.start_step(store, WF, "run-a", 1, "customers", "extract")
    snapshots.finish_step(
        store,
        WF,
        "run-a",
        "customers",
        "extract",
        status="success",
        count_in=10,
        count_out=10,
        files=["staging/a/customers/extract/batch-00001.jsonl"],
    )
    snapshots.start_step(store, WF, "run-a", 1, "customers", "transform")
    snapshots.finish_step(
        store,
        WF,
        "run-a",
        "customers",
        "transform",
        status="failed",
        count_in=10,
        count_out=7,
        count_failed=3,
        message="3 records failed",
    )
    first_try = snapshots.snapshot(store, "run-a")["steps"][1]

    # the task is retried: its row starts afresh (same row, new values)
    time.sleep(0.01)
    snapshots.start_step(store, WF, "run-a", 1, "customers", "transform")
    retried = snapshots.snapshot(store, "run-a")["steps"]
    assert len(retried) == 2
    assert retried[1]["id"] == first_try["id"]
    assert (
        retried[1]["status"],
        retried[1]["ended_at"],
        retried[1]["count_in"],
        retried[1]["count_out"],
        retried[1]["count_failed"],
        retried[1]["files"],
        retried[1]["message"],
    ) == ("running", None, 0, 0, 0, [], None)
    assert retried[1]["started_at"] > first_try["started_at"]
    snapshots.finish_step(
        store,
        WF,
        "run-a",
        "customers",
        "transform",
        status="success",
        count_in=10,
        count_out=10,
        files=["t1.jsonl", "t2.jsonl"],
    )
    snapshots.start_step(store, WF, "run-a", 1, "customers", "load")
    snapshots.finish_step(
        store,
        WF,
        "run-a",
        "customers",
        "load",
        status="failed",
        count_in=10,
        count_out=8,
        count_failed=2,
        message="2 records failed",
    )
    bucket.record(
        store,
        WF,
        "customers",
        "run-a",
        "load",
        [Outcome("1", "success", "D1"), Outcome("2", "failed", None, "HTTP 422")],
    )

    time.sleep(0.01)
    for step in ("extract", "transform", "load"):  # run-b: a later version, every step fine
        snapshots.start_step(store, WF, "run-b", 2, "orders", step)
        snapshots.finish_step(store, WF, "run-b", "orders", step, status="success", count_in=4, count_out=4)
    time.sleep(0.01)
    snapshots.start_step(store, WF, "run-c", 2, "customers", "extract")  # still running
    snapshots.start_step(store, "other_flow", "run-a", 7, "customers", "extract")  # same run id, other workflow

    runs = snapshots.runs(store, WF)
    assert [r["run_id"] for r in runs] == ["run-c", "run-b", "run-a"]
    assert [(r["version"], r["failed_steps"], r["failed_records"]) for r in runs] == [(2, 0, 0), (2, 0, 0), (1, 1, 2)]
    assert [r["kind"] for r in runs] == [RunKind.SYNC] * 3 and snapshots.run_kind(store, WF, "run-a") is RunKind.SYNC
    assert runs[0]["ended_at"] is None
    assert runs[2]["ended_at"] >= runs[2]["started_at"]
    assert [r["run_id"] for r in snapshots.runs(store, WF, limit=2)] == ["run-c", "run-b"]
    assert [(r["run_id"], r["version"]) for r in snapshots.runs(store, "other_flow")] == [("run-a", 7)]
    assert snapshots.runs(store, "nobody") == []

    snap = snapshots.snapshot(store, "run-a", WF)
    assert snap["run_id"] == "run-a"
    assert [
        (
            s["touchpoint"],
            s["step"],
            s["status"],
            s["version"],
            s["count_in"],
            s["count_out"],
            s["count_failed"],
            s["files"],
            s["message"],
        )
        for s in snap["steps"]
    ] == [
        ("customers", "extract", "success", 1, 10, 10, 0, ["staging/a/customers/extract/batch-00001.jsonl"], None),
        ("customers", "transform", "success", 1, 10, 10, 0, ["t1.jsonl", "t2.jsonl"], None),
        ("customers", "load", "failed", 1, 10, 8, 2, [], "2 records failed"),
    ]
    assert all(s["ended_at"] is not None and s["ended_at"] >= s["started_at"] for s in snap["steps"])
    assert [(type(s["step"]), type(s["status"])) for s in snap["steps"]] == [(Step, StepStatus)] * 3
    assert {(type(d["step"]), type(d["status"])) for d in snap["data_log"]} == {(Step, RecordStatus)}
    assert [s["step"] for s in snapshots.run_steps(store, WF, "run-a", "customers")] == [
        Step.EXTRACT,
        Step.TRANSFORM,
        Step.LOAD,
    ]
    assert snapshots.run_steps(store, WF, "run-a", "orders") == []
    assert [(d["source_id"], d["status"], d["destination_id"], d["message"]) for d in snap["data_log"]] == [
        ("1", "success", "D1", None),
        ("2", "failed", None, "HTTP 422"),
    ]
    assert len(snapshots.snapshot(store, "run-a")["steps"]) == 4  # without a workflow: both workflows' run-a
    assert snapshots.snapshot(store, "run-a", "other_flow")["data_log"] == []
    assert snapshots.snapshot(store, "no-such-run") == {"run_id": "no-such-run", "steps": [], "data_log": []}

    assert snapshots.run_version(store, WF, "run-a") == 1
    assert snapshots.run_version(store, WF, "run-b") == 2
    assert snapshots.run_version(store, "other_flow", "run-a") == 7
    assert snapshots.run_version(store, WF, "no-such-run") is None


# ---------------------------------------------------------------- feeds


def test_feeds_newest_first_and_filtered(store):
    added = [
        ("publish", "wf_a", "published wf_a v1"),
        ("schedule", "wf_a", "wf_a scheduled: daily"),
        ("publish", "wf_b", "published wf_b v1"),
        ("resync", "wf_a", "resync of 3 records"),
        ("note", None, "global note"),
    ]
    for tag, workflow, message in added:
        feeds.add(store, tag, message, workflow)
    everything = feeds.entries(store)
    assert [(e["tag"], e["workflow"], e["message"]) for e in everything] == list(reversed(added))
    assert all(a["at"] >= b["at"] for a, b in itertools.pairwise(everything))
    assert [e["message"] for e in feeds.entries(store, workflow="wf_a")] == [
        "resync of 3 records",
        "wf_a scheduled: daily",
        "published wf_a v1",
    ]
    assert [e["message"] for e in feeds.entries(store, tag="publish")] == ["published wf_b v1", "published wf_a v1"]
    assert [e["message"] for e in feeds.entries(store, workflow="wf_a", tag="publish")] == ["published wf_a v1"]
    assert [e["message"] for e in feeds.entries(store, limit=2)] == ["global note", "resync of 3 records"]
    assert feeds.entries(store, workflow="wf_c") == []
    assert feeds.workflows(store) == {"wf_a", "wf_b"}
    # a user who may not read wf_a: every other entry, those of no workflow included
    assert [e["message"] for e in feeds.entries(store, hidden={"wf_a"})] == ["global note", "published wf_b v1"]
    assert feeds.count(store, hidden={"wf_a"}) == 2 and feeds.count(store, hidden={"wf_a", "wf_b"}) == 1
    assert feeds.count(store, tag="publish", hidden={"wf_b"}) == 1

    # on a caller's connection the entry belongs to the caller's transaction
    with pytest.raises(RuntimeError):
        with store.engine.begin() as conn:
            feeds.add(store, "publish", "rolled back", "wf_a", conn)
            raise RuntimeError("abort")
    with store.engine.begin() as conn:
        feeds.add(store, "publish", "committed", "wf_a", conn)
    assert [e["message"] for e in feeds.entries(store, tag="publish")] == [
        "committed",
        "published wf_b v1",
        "published wf_a v1",
    ]


# ---------------------------------------------------------------- sync state


def test_watermarks_round_trip(store):
    assert state.watermark(store, WF, "customers") is None
    state.save_watermark(store, WF, "customers", 42, "run-1")
    state.save_watermark(store, WF, "orders", "2024-03-01T12:00:00Z", "run-1")
    assert state.watermark(store, WF, "customers") == 42
    assert type(state.watermark(store, WF, "customers")) is int
    assert state.watermark(store, WF, "orders") == "2024-03-01T12:00:00Z"

    state.save_watermark(store, WF, "customers", "2024-03-02T08:30:00Z", "run-2")  # overwritten, another type
    state.save_watermark(store, WF, "orders", 10_000_000_001, "run-2")
    assert state.watermark(store, WF, "customers") == "2024-03-02T08:30:00Z"
    assert state.watermark(store, WF, "orders") == 10_000_000_001
    assert state.watermark(store, "other_flow", "customers") is None
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT workflow, touchpoint, run_id FROM watermarks ORDER BY touchpoint").all()
    assert [tuple(r) for r in rows] == [(WF, "customers", "run-2"), (WF, "orders", "run-2")]


def test_resync_requests_round_trip(store):
    with store.engine.begin() as conn:
        first = state.create_resync(WF, "customers", ["3", "7", "11"], conn)
        second = state.create_resync(WF, "orders", ["o-1"], conn)
    assert isinstance(first, int) and second > first
    got = state.resync(store, first)
    assert (got["id"], got["workflow"], got["touchpoint"], got["source_ids"], got["run_id"]) == (
        first,
        WF,
        "customers",
        ["3", "7", "11"],
        None,
    )
    assert got["requested_at"] is not None
    assert state.resync(store, second)["source_ids"] == ["o-1"]
    assert got["kind"] is ResyncKind.MANUAL
    with store.engine.begin() as conn:
        retry = state.create_resync(WF, "customers", ["7"], conn, kind=ResyncKind.RETRY)
        state.attach_run(retry, "retry__1", conn)
        with pytest.raises(FlowlinkError, match="resync kind must be manual or retry, got 'later'"):
            state.create_resync(WF, "customers", ["7"], conn, kind="later")
    assert state.resync_of_run(store, WF, "retry__1") == {**state.resync(store, retry), "kind": ResyncKind.RETRY}
    assert state.resync_of_run(store, WF, "no-such-run") is None
    assert [r["id"] for r in state.resyncs_since(store, WF, "customers", got["requested_at"])] == [retry, first]
    assert state.last_request(store, WF, ResyncKind.RETRY) == state.resync(store, retry)["requested_at"]
    assert state.last_request(store, "other_flow", ResyncKind.RETRY) is None

    with pytest.raises(RuntimeError):  # a request made in a failed transaction does not exist
        with store.engine.begin() as conn:
            lost = state.create_resync(WF, "customers", ["1"], conn)
            raise RuntimeError("abort")
    with pytest.raises(FlowlinkError, match=f"no resync request {lost}"):
        state.resync(store, lost)
    with pytest.raises(FlowlinkError, match="no resync request 999999"):
        state.resync(store, 999_999)
