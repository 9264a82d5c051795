"""Retention: what is older than N days leaves the store and the staging folder.

Three kinds of things go once they are older than N days (FLOWLINK_RETENTION_DAYS, default 15):

* **Snapshots** with their data packets: a run's snapshot steps, its data-log rows and its staged batch files
  (the files its steps list, and its run folder ``staging/<workflow>/<run>/``). A snapshot's age is the time of
  its last step end (a step that never ended counts with its start), so a run goes only when all of it is old.
* **Success rows of the resync bucket**, by ``updated_at`` (the last time a run touched the record).
* **Feeds**, by ``at``.

Failed and Unprocessed bucket rows are never purged, whatever their age: they wait for a resync or the next run
to resolve them. Skipped rows stay too: a Skipped record is one the mapping produced nothing for, so it never
reached the target; it stays visible and can be resynced once the mapping changes (it then becomes Success and
ages out like any other). Bucket rows are one per record, not per run, so keeping them does not grow with time.
Watermarks, resync requests, environments and deployments are not touched.

"Older than N days" is strict: what is older than ``now - N days`` goes, what is exactly that old stays.

``plan()`` tells what would go, per workflow; ``purge()`` deletes exactly that (the cut-off is computed once):

* in bounded transactions: bucket and feed rows 1,000 ids at a time; snapshots whole, as many runs per
  transaction as fit in 10,000 steps + data-log rows (a larger run goes alone), so a big purge never holds one
  huge lock, and a snapshot is never half deleted;
* each transaction re-checks what it deletes (a run someone restarts, a record a run just touched, is no
  longer old and stays);
* a snapshot's files go after its rows are committed (a missing file is fine; files outside the staging
  folder are never touched); should a purge stop in between, the rows are gone and the run folder is left;
* a feeds entry (tag ``retention``) is written at the start, with what is planned, and at the end, with what
  went (or why it stopped).

No Airflow here: the maintenance DAG (flowlink_airflow.dag_factory.maintenance) and ``flowlink purge`` call these.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from flowlink import settings, staging
from flowlink.errors import FlowlinkError
from flowlink.store import bucket, feeds, snapshots
from flowlink.store.db import Store, utcnow

TAG = "retention"
KINDS = ("snapshots", "steps", "data_log", "files", "folders", "bucket", "feeds")
LABELS = {
    "snapshots": "snapshots",
    "steps": "steps",
    "data_log": "data log",
    "files": "batch files",
    "folders": "run folders",
    "bucket": "success rows",
    "feeds": "feeds",
}
BATCH = 1_000  # bucket and feed ids per transaction
ROWS = 10_000  # steps + data-log rows per snapshot transaction (one run always goes whole)
log = logging.getLogger(__name__)


class Result(TypedDict):
    """What a purge removed, or what plan() would: the counts of each kind (KINDS), in all and per workflow (each
    {"workflow": name or None, kind: n, ...}; None: feeds of no workflow); a purge adds "seconds"."""

    days: int
    cutoff: dt.datetime
    total: dict[str, int]
    workflows: list[dict[str, Any]]
    seconds: NotRequired[float]


def _check_days(days: Any) -> int:
    return settings.check_retention_days(days, "the retention period")


def cutoff(days: int, now: dt.datetime | None = None) -> dt.datetime:
    """What is older than this goes."""
    now = now or utcnow()
    if now.tzinfo is None:
        raise FlowlinkError("the time to purge from must carry a time zone")
    return now - dt.timedelta(days=days)


class _Counts:
    """kind -> number, per workflow (None: feeds of no workflow)."""

    def __init__(self) -> None:
        self.by_workflow: dict[str | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))

    def add(self, workflow: str | None, kind: str, n: int) -> None:
        if n:
            self.by_workflow[workflow][kind] += n

    def total(self) -> dict[str, int]:
        return {k: sum(c[k] for c in self.by_workflow.values()) for k in KINDS}

    def result(self, days: int, cut: dt.datetime, seconds: float | None = None) -> Result:
        order = sorted(self.by_workflow, key=lambda w: (w is None, w or ""))
        result = Result(
            days=days, cutoff=cut, total=self.total(), workflows=[{"workflow": w, **self.by_workflow[w]} for w in order]
        )
        if seconds is not None:
            result["seconds"] = seconds
        return result


# ------------------------------------------------------------------ staged files


def _is_local(path: Any) -> bool:
    return isinstance(path, Path)


def _inside(path: Any, root: Any) -> bool:
    """Whether a listed file lies in the staging folder (symlinks and .. resolved): nothing else is ever removed."""
    if _is_local(path) != _is_local(root):
        return False
    if _is_local(path):
        return path.resolve().is_relative_to(root.resolve())
    return str(path).startswith(str(root).rstrip("/") + "/") and "/../" not in str(path) + "/"


def _key(path: Any) -> str:
    """One name per file, however its folder was spelled (a link to it stays a file of its own)."""
    if _is_local(path):
        return os.path.join(os.path.realpath(path.parent), path.name)
    return str(path)


def _staged(workflow: str, run_id: str, listed: set[str]) -> tuple[list[Any], Any | None]:
    """A snapshot's batch files that exist (the listed ones in the staging folder, everything in its run folder),
    and its run folder if it exists."""
    root = settings.staging_dir()
    folder = staging.run_folder(workflow, run_id)
    found: dict[str, Any] = {}
    for name in sorted(listed):
        path = staging.as_path(name)
        try:
            if _inside(path, root) and (path.is_file() or path.is_symlink()):
                found[_key(path)] = path
        except OSError:
            continue
    if _is_local(folder):
        if folder.is_symlink() or not folder.is_dir():
            return list(found.values()), None
        for top, _dirs, files in os.walk(folder):  # never follows links out of the folder
            for f in files:
                found[_key(Path(top, f))] = Path(top, f)
        return list(found.values()), folder
    try:
        if not folder.exists():
            return list(found.values()), None
        for path in folder.rglob("*"):
            if path.is_file():
                found[_key(path)] = path
    except FileNotFoundError:
        return list(found.values()), None
    return list(found.values()), folder


def _remove(files: list[Any], folder: Any | None) -> tuple[int, int]:
    """Remove the files, then the run folder; returns how many of each went. A missing one is fine; one that cannot
    be removed (permissions, ...) is logged and left, and the purge goes on (its rows are gone already)."""
    removed = 0
    for path in files:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("retention: cannot remove the batch file %s: %s", path, exc)
    if folder is None:
        return removed, 0
    try:
        if _is_local(folder):
            shutil.rmtree(folder)
        else:
            folder.fs.rm(folder.path, recursive=True)
        return removed, 1
    except FileNotFoundError:
        return removed, 0
    except OSError as exc:
        log.warning("retention: cannot remove the run folder %s: %s", folder, exc)
        return removed, 0


# ------------------------------------------------------------------ plan and purge


def plan(store: Store, older_than_days: int, now: dt.datetime | None = None) -> Result:
    """What a purge would remove, changing nothing: {"days", "cutoff", "total": {kind: n},
    "workflows": [{"workflow", kind: n, ...}]} with the kinds snapshots, steps, data_log (rows), files and
    folders (the staged batch files and run folders that exist), bucket (Success rows) and feeds."""
    days = _check_days(older_than_days)
    cut = cutoff(days, now)
    counts = _Counts()
    runs = snapshots.old_runs(store, cut)
    by_workflow: dict[str, list[str]] = defaultdict(list)
    for (w, r), (steps, logged) in runs.items():
        counts.add(w, "snapshots", 1)
        counts.add(w, "steps", steps)
        counts.add(w, "data_log", logged)
        by_workflow[w].append(r)
    listed: dict[tuple[str, str], set[str]] = {}
    for w, run_ids in by_workflow.items():
        for r, names in snapshots.listed_files(store, w, run_ids).items():
            listed[w, r] = names
    for w, n in bucket.old_success_counts(store, cut).items():
        counts.add(w, "bucket", n)
    for fw, n in feeds.old_counts(store, cut).items():
        counts.add(fw, "feeds", n)
    for w, r in runs:
        files, folder = _staged(w, r, listed.get((w, r), set()))
        counts.add(w, "files", len(files))
        counts.add(w, "folders", 1 if folder is not None else 0)
    return counts.result(days, cut)


def summary(total: dict[str, int]) -> str:
    """One line of counts, as the feeds entries say them."""
    return (
        f"{total['snapshots']:,} snapshots ({total['steps']:,} steps, {total['data_log']:,} data-log rows, "
        f"{total['files']:,} batch files in {total['folders']:,} run folders), "
        f"{total['bucket']:,} Success bucket rows, {total['feeds']:,} feeds entries"
    )


def _snapshot_batches(runs: dict[tuple[str, str], tuple[int, int]]) -> Iterator[tuple[str, list[str]]]:
    """Runs in transactions of one workflow each, at most BATCH runs and ROWS rows (a larger run alone)."""
    batch: list[str] = []
    workflow, rows = "", 0
    for (w, r), (steps, logged) in sorted(runs.items()):
        size = steps + logged
        if batch and (w != workflow or len(batch) >= BATCH or rows + size > ROWS):
            yield workflow, batch
            batch, rows = [], 0
        workflow = w
        batch.append(r)
        rows += size
    if batch:
        yield workflow, batch


def _purge_snapshots(store: Store, cut: dt.datetime, counts: _Counts) -> None:
    for workflow, run_ids in _snapshot_batches(snapshots.old_runs(store, cut)):
        gone = snapshots.delete_old_runs(store, workflow, run_ids, cut)
        counts.add(workflow, "snapshots", len(gone.run_ids))
        counts.add(workflow, "steps", gone.steps)
        counts.add(workflow, "data_log", gone.data_log)
        for run_id in gone.run_ids:  # the rows are committed: now the files
            files, folder = _staged(workflow, run_id, gone.files.get(run_id, set()))
            removed, folders = _remove(files, folder)
            counts.add(workflow, "files", removed)
            counts.add(workflow, "folders", folders)


def _purge_rows(delete: Callable[[int], tuple[int | None, dict[str | None, int]]], counts: _Counts, kind: str) -> None:
    """Delete BATCH rows at a time (``delete(after id)``, one transaction each) until none is left."""
    after: int | None = 0
    while after is not None:
        after, gone = delete(after)
        for w, n in gone.items():
            counts.add(w, kind, n)


def purge(store: Store, days: int, now: dt.datetime | None = None) -> Result:
    """Remove what plan() shows (the same cut-off), in bounded transactions; returns what went, as plan() does,
    with "seconds". Writes a feeds entry (tag retention) at the start and at the end."""
    days = _check_days(days)
    cut = cutoff(days, now)
    planned = plan(store, days, now)
    when = f"older than {days} days (before {cut.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC)"
    # this entry is not purged, even when a `now` ahead makes it old
    start_id = feeds.add(store, TAG, f"purge started: {when}: {summary(planned['total'])} to go")
    counts = _Counts()
    started = time.perf_counter()
    try:
        _purge_snapshots(store, cut, counts)
        _purge_rows(lambda after: bucket.delete_old_success(store, cut, after=after, limit=BATCH), counts, "bucket")
        _purge_rows(
            lambda after: feeds.delete_old(store, cut, keep=start_id, after=after, limit=BATCH), counts, "feeds"
        )
    except Exception as exc:
        feeds.add(store, TAG, f"purge stopped: {when}: {exc}; gone so far: {summary(counts.total())}")
        raise
    seconds = round(time.perf_counter() - started, 3)
    feeds.add(store, TAG, f"purge ended: {when}: {summary(counts.total())} removed in {seconds:.1f} s")
    return counts.result(days, cut, seconds)


def table(result: Result) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows (per workflow, then the total) for showing a plan or a purge."""
    columns = ["workflow", *(LABELS[k] for k in KINDS)]
    rows = [[w["workflow"] or "(no workflow)", *(w[k] for k in KINDS)] for w in result["workflows"]]
    rows.append(["total", *(result["total"][k] for k in KINDS)])
    return columns, rows
