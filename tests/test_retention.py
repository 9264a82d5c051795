"""Retention: a purge removes exactly what is older than N days (snapshots with their batch files, Success bucket
rows, feeds), on a SQLite file and on a real PostgreSQL server; the maintenance DAG and `flowlink purge`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from flowlink import retention, settings, staging
from flowlink.errors import FlowlinkError
from flowlink.recordxml import RecordWriter
from flowlink.store import Store, feeds, snapshots
from flowlink.store.tables import bucket, data_log, steps
from flowlink.store.tables import feeds as feeds_table
from tests.airflow_helpers import REPO, load_dags, run_dag

WF, OTHER = "erp_to_shop", "crm_to_erp"
DAYS = 15
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
CUT = NOW - dt.timedelta(days=DAYS)
MINUTE = dt.timedelta(minutes=1)
STEPS = ("extract", "transform", "load")


@pytest.fixture
def store(store_url, home):
    """An empty store on SQLite or PostgreSQL (store_url); staging in `home`."""
    s = Store.open(store_url)
    yield s
    s.dispose()


# ------------------------------------------------------------------ seeding rows and files at known ages


def add_run(
    store,
    workflow: str,
    run_id: str,
    last: dt.datetime,
    *,
    first: dt.datetime | None = None,
    ended: bool = True,
    log_rows: int = 3,
    listed_extra: list[str] = (),
) -> Path:
    """A run of one touchpoint: extract, transform and load, the load ending at `last` (or started then and still
    running); extract ends at `first`. Batch files: one per extract and transform (the load lists the transform's),
    and a leftover .tmp nobody lists: 3 files in the run folder. `log_rows` data-log rows per transform and load."""
    folder = staging.run_folder(workflow, run_id)
    ends = {"extract": first or last - 2 * MINUTE, "transform": last - MINUTE, "load": last}
    files = {}
    for step in ("extract", "transform"):
        files[step] = folder / "customers" / step / "batch-00001.xml"
        staging.write_batch(files[step], RecordWriter("id").write([{"id": i} for i in range(2)]).document)
    (folder / "customers" / "transform" / "batch-00002.xml.tmp").write_text("half a batch")
    rows = []
    for step in STEPS:
        end = ends[step]
        still_running = step == "load" and not ended
        listed = [str(files[step if step != "load" else "transform"])] + (list(listed_extra) if step == "load" else [])
        rows.append(
            dict(
                workflow=workflow,
                run_id=run_id,
                version=1,
                touchpoint="customers",
                step=step,
                status="running" if still_running else "success",
                started_at=end if still_running else end - dt.timedelta(seconds=30),
                ended_at=None if still_running else end,
                count_in=2,
                count_out=2,
                count_failed=0,
                files=json.dumps(listed),
            )
        )
    log = [
        dict(
            workflow=workflow,
            run_id=run_id,
            touchpoint="customers",
            step=step,
            source_id=str(i),
            status="success",
            tries=1,
            logged_at=ends[step],
        )
        for step in ("transform", "load")
        for i in range(log_rows)
    ]
    with store.engine.begin() as conn:
        conn.execute(steps.insert(), rows)
        conn.execute(data_log.insert(), log)
    return folder


def add_bucket(store, workflow: str, source_id: str, status: str, updated: dt.datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            bucket.insert().values(
                workflow=workflow,
                touchpoint="customers",
                source_id=source_id,
                status=status,
                tries=1,
                created_at=updated - dt.timedelta(days=1),
                updated_at=updated,
            )
        )


def add_feed(store, at: dt.datetime, message: str, workflow: str | None = None) -> None:
    with store.engine.begin() as conn:
        conn.execute(feeds_table.insert().values(at=at, tag="publish", workflow=workflow, message=message))


def seed(store, home: Path, cut: dt.datetime) -> dict:
    """Rows and files a minute either side of the cut-off (and far from it); returns what a purge must remove."""
    outside = home / "outside" / "keep.jsonl"
    outside.parent.mkdir(parents=True)
    outside.write_text('{"id": 1}\n')
    old_ts = (cut - 3 * MINUTE).isoformat()
    folders = {
        "gone": [
            add_run(
                store,
                WF,
                f"scheduled__{old_ts}",
                cut - MINUTE,  # lists a file outside staging and a missing one
                listed_extra=[str(outside), str(settings.staging_dir() / WF / "no-such-run" / "gone.jsonl")],
            ),
            add_run(store, WF, "manual__never-ended", cut - MINUTE, ended=False),  # its last step's start counts
            add_run(store, WF, "big", cut - dt.timedelta(days=40), log_rows=20),  # more rows than one small batch
            add_run(store, OTHER, "big", cut - dt.timedelta(days=10)),  # same run id, other workflow
        ],
        "kept": [
            add_run(store, WF, "new", cut + MINUTE),
            add_run(store, WF, "straddles", cut + MINUTE, first=cut - dt.timedelta(hours=5)),  # goes whole, later
            add_run(store, WF, "running", cut + MINUTE, ended=False),
            add_run(store, OTHER, "new", cut + MINUTE),
        ],
    }
    for status in ("success", "failed", "unprocessed", "skipped"):
        add_bucket(store, WF, f"{status}-new", status, cut + MINUTE)
        add_bucket(store, WF, f"{status}-old", status, cut - MINUTE)
        add_bucket(store, WF, f"{status}-ancient", status, cut - dt.timedelta(days=400))
    for i in range(3):
        add_bucket(store, WF, f"success-old-{i}", "success", cut - dt.timedelta(hours=i + 1))
        add_bucket(store, OTHER, f"success-old-{i}", "success", cut - dt.timedelta(days=i + 1))
    add_bucket(store, OTHER, "success-new", "success", cut + dt.timedelta(days=1))
    for i in range(3):
        add_feed(store, cut - MINUTE - dt.timedelta(days=i), f"old {WF} {i}", WF)
    for i in range(2):
        add_feed(store, cut - MINUTE - dt.timedelta(hours=i), f"old global {i}")
    add_feed(store, cut + MINUTE, f"new {WF}", WF)
    add_feed(store, cut + MINUTE, "new global")
    zero = dict.fromkeys(retention.KINDS, 0)
    expected = {
        WF: {
            **zero,
            "snapshots": 3,
            "steps": 9,
            "data_log": 6 + 6 + 40,
            "files": 9,
            "folders": 3,
            "bucket": 5,
            "feeds": 3,
        },
        OTHER: {**zero, "snapshots": 1, "steps": 3, "data_log": 6, "files": 3, "folders": 1, "bucket": 3},
        None: {**zero, "feeds": 2},
    }
    return {"expected": expected, "folders": folders, "outside": outside}


def contents(store) -> dict:
    """Every row of the tables a purge touches, and every staged file."""
    out = {}
    with store.engine.connect() as conn:
        for table in (steps, data_log, bucket, feeds_table):
            out[table.name] = sorted(tuple(str(v) for v in r) for r in conn.execute(sa.select(table)))
    root = settings.staging_dir()
    out["files"] = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    return out


def totals(expected: dict) -> dict:
    return {k: sum(c[k] for c in expected.values()) for k in retention.KINDS}


def by_workflow(result: dict) -> dict:
    return {w.pop("workflow"): w for w in (dict(x) for x in result["workflows"])}


# ------------------------------------------------------------------ purge, plan


@pytest.mark.parametrize("small_batches", [False, True], ids=["batches-of-1000", "batches-of-2"])
def test_a_purge_removes_exactly_what_is_older_than_n_days(store, home, monkeypatch, small_batches):
    if small_batches:  # many transactions: the result must be the same
        monkeypatch.setattr(retention, "BATCH", 2)
        monkeypatch.setattr(retention, "ROWS", 5)
    seeded = seed(store, home, CUT)
    planned = retention.plan(store, DAYS, now=NOW)
    assert planned["cutoff"] == CUT and planned["days"] == DAYS
    assert by_workflow(planned) == seeded["expected"]
    assert planned["total"] == totals(seeded["expected"])

    done = retention.purge(store, DAYS, now=NOW)
    assert by_workflow(done) == seeded["expected"]  # what went is what the plan said
    assert done["total"] == planned["total"] and done["seconds"] >= 0

    with store.engine.connect() as conn:
        assert set(conn.execute(sa.select(steps.c.workflow, steps.c.run_id).distinct()).all()) == {
            (WF, "new"),
            (WF, "straddles"),
            (WF, "running"),
            (OTHER, "new"),
        }
        assert conn.execute(sa.select(sa.func.count()).select_from(steps)).scalar() == 12  # 4 whole runs
        assert set(conn.execute(sa.select(data_log.c.workflow, data_log.c.run_id).distinct()).all()) == {
            (WF, "new"),
            (WF, "straddles"),
            (WF, "running"),
            (OTHER, "new"),
        }
        assert conn.execute(sa.select(sa.func.count()).select_from(data_log)).scalar() == 4 * 6
        left = set(conn.execute(sa.select(bucket.c.workflow, bucket.c.source_id)).all())
    # Failed, Unprocessed and Skipped stay whatever their age; Success goes once older than N days
    assert left == (
        {(WF, f"{st}-{age}") for st in ("failed", "unprocessed", "skipped") for age in ("new", "old", "ancient")}
        | {(WF, "success-new"), (OTHER, "success-new")}
    )
    assert [e["message"].split(":")[0] for e in feeds.entries(store, tag="retention")] == [
        "purge ended",
        "purge started",
    ]
    assert sorted(e["message"] for e in feeds.entries(store) if e["tag"] == "publish") == [f"new {WF}", "new global"]

    for folder in seeded["folders"]["gone"]:
        assert not folder.exists()
    for folder in seeded["folders"]["kept"]:
        assert len([p for p in folder.rglob("*") if p.is_file()]) == 3
    assert seeded["outside"].read_text() == '{"id": 1}\n'  # listed by a purged run, but not in the staging folder

    again = retention.purge(store, DAYS, now=NOW)  # nothing is left to go
    assert again["total"] == dict.fromkeys(retention.KINDS, 0)


def test_a_dry_run_changes_nothing_and_reports_what_the_purge_then_removes(store, home):
    seeded = seed(store, home, CUT)
    before = contents(store)
    first, second = retention.plan(store, DAYS, now=NOW), retention.plan(store, DAYS, now=NOW)
    assert contents(store) == before
    assert first == second and by_workflow(first) == seeded["expected"]
    done = retention.purge(store, DAYS, now=NOW)
    assert {k: v for k, v in done.items() if k != "seconds"} == first
    assert contents(store) != before


def test_start_and_end_are_written_to_the_feeds(store, home):
    seed(store, home, CUT)
    retention.purge(store, DAYS, now=NOW)
    entries = feeds.entries(store, tag="retention")
    assert [e["message"].split(":")[0] for e in entries] == ["purge ended", "purge started"]  # newest first
    when = f"older than 15 days (before {CUT:%Y-%m-%d %H:%M:%S} UTC)"
    counts = (
        "4 snapshots (12 steps, 58 data-log rows, 12 batch files in 4 run folders), "
        "8 Success bucket rows, 5 feeds entries"
    )
    assert entries[1]["message"] == f"purge started: {when}: {counts} to go"
    assert entries[0]["message"].startswith(f"purge ended: {when}: {counts} removed in ")
    assert all(e["workflow"] is None for e in entries)


def test_the_purges_own_start_entry_stays_when_everything_is_old(store, home):
    """A `now` far ahead makes every row old, including the feeds the purge itself writes as it starts."""
    seed(store, home, CUT)
    done = retention.purge(store, 1, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=3650))
    assert done["total"]["snapshots"] == 8 and done["total"]["feeds"] == 7
    assert [e["message"].split(":")[0] for e in feeds.entries(store)] == ["purge ended", "purge started"]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(steps)).scalar() == 0
        assert {st for (st,) in conn.execute(sa.select(bucket.c.status).distinct())} == {
            "failed",
            "unprocessed",
            "skipped",
        }
    assert [p for p in settings.staging_dir().rglob("*") if p.is_file()] == []


def test_a_purge_that_stops_says_so_in_the_feeds(store, home, monkeypatch):
    seed(store, home, CUT)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(retention, "_purge_rows", broken)
    with pytest.raises(RuntimeError, match="went away"):
        retention.purge(store, DAYS, now=NOW)
    stopped = feeds.entries(store, tag="retention")[0]["message"]
    assert stopped.startswith("purge stopped: older than 15 days") and "the database went away" in stopped
    assert (
        "4 snapshots (12 steps, 58 data-log rows, 12 batch files in 4 run folders)" in stopped
    )  # gone before it stopped


def test_nothing_outside_the_staging_folder_is_removed(home):
    """Listed paths that lead out of the staging folder (.., a link) are left; a link in a run folder goes, its
    target stays."""
    store = Store.open()
    try:
        outside = home / "outside"
        outside.mkdir()
        (outside / "a.jsonl").write_text("a")
        (outside / "b.jsonl").write_text("b")
        escape = str(staging.run_folder(WF, "old") / ".." / ".." / ".." / "outside" / "a.jsonl")
        link_out = settings.staging_dir() / WF / "link-out.jsonl"
        folder = add_run(store, WF, "old", CUT - MINUTE, listed_extra=[escape, str(link_out)])
        link_out.symlink_to(outside / "a.jsonl")
        (folder / "customers" / "extract" / "link.jsonl").symlink_to(outside / "b.jsonl")
        done = retention.purge(store, DAYS, now=NOW)
        assert (done["total"]["snapshots"], done["total"]["files"], done["total"]["folders"]) == (1, 4, 1)
        assert not folder.exists() and link_out.is_symlink()
        assert (outside / "a.jsonl").read_text() == "a" and (outside / "b.jsonl").read_text() == "b"
    finally:
        store.dispose()


def test_batch_files_on_object_storage_are_purged(home, monkeypatch):
    monkeypatch.setenv("FLOWLINK_STAGING_DIR", f"file://{home}/objects")
    store = Store.open()
    try:
        gone = add_run(store, WF, "old", CUT - MINUTE)
        kept = add_run(store, WF, "new", CUT + MINUTE)
        assert str(gone).startswith("file://")
        planned = retention.plan(store, DAYS, now=NOW)
        assert (planned["total"]["files"], planned["total"]["folders"]) == (3, 1)
        done = retention.purge(store, DAYS, now=NOW)
        assert (done["total"]["snapshots"], done["total"]["files"], done["total"]["folders"]) == (1, 3, 1)
        assert not (home / "objects" / WF / "old").exists()
        assert len([p for p in (home / "objects" / WF / "new").rglob("*") if p.is_file()]) == 3
        assert kept.exists()
    finally:
        store.dispose()


# ------------------------------------------------------------------ the retention period


def test_retention_days_comes_from_the_environment_and_is_checked(monkeypatch, home):
    monkeypatch.delenv("FLOWLINK_RETENTION_DAYS", raising=False)
    assert settings.retention_days() == 15
    monkeypatch.setenv("FLOWLINK_RETENTION_DAYS", " 7 ")
    assert settings.retention_days() == 7
    for bad in ("0", "-3", "1.5", "two", "36501"):
        monkeypatch.setenv("FLOWLINK_RETENTION_DAYS", bad)
        with pytest.raises(
            FlowlinkError,
            match=rf"FLOWLINK_RETENTION_DAYS must be a whole number from 1 to 36,500 \(days\), "
            rf"not '{bad}'",
        ):
            settings.retention_days()
    store = Store.open()
    try:
        for bad in (0, -1, 2.5, True, "x"):
            with pytest.raises(FlowlinkError, match="the retention period must be a whole number"):
                retention.plan(store, bad)
            with pytest.raises(FlowlinkError, match="the retention period must be a whole number"):
                retention.purge(store, bad)
        assert feeds.entries(store) == []  # a refused purge writes nothing
    finally:
        store.dispose()


# ------------------------------------------------------------------ the maintenance DAG


def test_the_maintenance_dag_loads_and_a_real_run_purges(home, monkeypatch, airflow_db):
    monkeypatch.setenv("FLOWLINK_RETENTION_DAYS", "3")
    now = dt.datetime.now(dt.UTC)
    cut = now - dt.timedelta(days=3)
    store = Store.open()
    try:
        gone = add_run(store, WF, "old", cut - dt.timedelta(hours=1))
        kept = add_run(store, WF, "new", cut + dt.timedelta(hours=1))
        add_bucket(store, WF, "s-old", "success", cut - dt.timedelta(hours=1))
        add_bucket(store, WF, "f-old", "failed", cut - dt.timedelta(days=30))
        add_bucket(store, WF, "s-new", "success", cut + dt.timedelta(hours=1))

        bag = load_dags()
        assert not bag.import_errors, bag.import_errors
        dag = bag.get_dag("flowlink_maintenance")
        assert dag.task_ids == ["purge"] and dag.catchup is False and dag.tags == {"flowlink"}
        assert dag.is_paused_upon_creation is False
        assert dag.schedule == "@daily"

        dag_run, states = run_dag("flowlink_maintenance")
        assert dag_run.state == "success", states
        assert not gone.exists() and kept.exists()
        assert {r["run_id"] for r in snapshots.runs(store, WF)} == {"new"}
        with store.engine.connect() as conn:
            assert set(conn.execute(sa.select(bucket.c.source_id)).scalars()) == {"f-old", "s-new"}
        assert [e["message"].split(":")[0] for e in feeds.entries(store, tag="retention")] == [
            "purge ended",
            "purge started",
        ]
        assert "older than 3 days" in feeds.entries(store, tag="retention")[0]["message"]
    finally:
        store.dispose()


# ------------------------------------------------------------------ flowlink purge


def flowlink(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLINK_")}
    environ.update(FLOWLINK_HOME=str(home), COLUMNS="250", **env)
    environ.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "flowlink.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=REPO,
        timeout=120,
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return done


def test_flowlink_purge_prints_what_goes_and_exits_right(home):
    now = dt.datetime.now(dt.UTC)
    store = Store.open()
    try:
        add_run(store, WF, "old", now - dt.timedelta(days=3, hours=1))
        add_run(store, WF, "new", now - dt.timedelta(days=3) + dt.timedelta(hours=1))
        add_bucket(store, OTHER, "s-old", "success", now - dt.timedelta(days=20))
        add_feed(store, now - dt.timedelta(days=4), "old global")

        dry = flowlink(home, "purge", "--days", "3", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        lines = [" ".join(ln.replace("│", " ").replace("┃", " ").split()) for ln in dry.stdout.splitlines()]
        assert lines[0].startswith("Would purge (dry run, nothing changed): older than 3 days, before ")
        assert "workflow snapshots steps data log batch files run folders success rows feeds" in lines
        assert f"{WF} 1 3 6 3 1 0 0" in lines and f"{OTHER} 0 0 0 0 0 1 0" in lines
        assert "(no workflow) 0 0 0 0 0 0 1" in lines and "total 1 3 6 3 1 1 1" in lines
        assert len(snapshots.runs(store, WF)) == 2 and feeds.entries(store, tag="retention") == []

        # the default comes from FLOWLINK_RETENTION_DAYS (here 30: nothing is that old)
        dry30 = flowlink(home, "purge", "--dry-run", "--json", FLOWLINK_RETENTION_DAYS="30")
        assert dry30.returncode == 0 and json.loads(dry30.stdout)["total"] == {**dict.fromkeys(retention.KINDS, 0)}

        done = flowlink(home, "purge", "--days", "3", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["days"] == 3 and result["total"] == {
            "snapshots": 1,
            "steps": 3,
            "data_log": 6,
            "files": 3,
            "folders": 1,
            "bucket": 1,
            "feeds": 1,
        }
        assert [r["run_id"] for r in snapshots.runs(store, WF)] == ["new"]
        assert len(feeds.entries(store, tag="retention")) == 2

        table = flowlink(home, "purge", "--days", "3")
        assert table.returncode == 0 and table.stdout.startswith("Purged: older than 3 days")

        for bad in ("0", "-1", "x", "2.5"):
            refused = flowlink(home, "purge", "--days", bad)
            assert refused.returncode == 2 and refused.stdout == ""
            assert refused.stderr.startswith("usage: flowlink purge")
            assert (
                f"argument --days: the number of days must be a whole number from 1 to 36,500 (days), not '{bad}'"
                in refused.stderr
            )
        env_bad = flowlink(home, "purge", "--dry-run", FLOWLINK_RETENTION_DAYS="fortnight")
        assert env_bad.returncode == 1
        assert env_bad.stderr.strip() == (
            "flowlink purge: FLOWLINK_RETENTION_DAYS must be a whole number from 1 to 36,500 (days), not 'fortnight'"
        )
    finally:
        store.dispose()
