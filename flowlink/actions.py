"""What a user can do with a workflow: publish, deploy, undeploy, execute, resync, list runs. The CLI, the REST API
and the UI pages call these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, cast

from flowlink import airflow_adapter as runs
from flowlink import deployments
from flowlink import publish as publishing
from flowlink.errors import FlowlinkError, plural
from flowlink.schedule import summary
from flowlink.spec import Schedule, Workflow
from flowlink.states import RecordStatus, ResyncKind, RunKind
from flowlink.store import Store, bucket, feeds, snapshots, state


@dataclass(frozen=True)
class Published:
    result: publishing.PublishResult
    schedule_change: str | None  # "every minute -> daily at 06:00 (UTC)" when the schedule changed


def publish_workflow(store: Store, spec_path: str | Path) -> Published:
    """Publish a spec: a new version only if its content changed. Deploying puts a version live."""
    return _published(store, _name_of(spec_path), lambda: publishing.publish(spec_path))


def publish_draft(store: Store, content: dict[str, Any]) -> Published:
    """Publish a compiled draft (publish.draft_content: the Try page), told to the feeds as publish_workflow tells."""
    return _published(store, content["spec"]["name"], lambda: publishing.publish_content(content))


def _published(store: Store, name: str | None, publish: Callable[[], publishing.PublishResult]) -> Published:
    before = publishing.published(name) if name and publishing.versions(name) else None
    result = publish()
    art = result.artifact
    old = summary(Schedule.model_validate(before.spec.get("schedule") or {})) if before else None
    new = summary(Schedule.model_validate(art.spec.get("schedule") or {}))
    change = f"{old} -> {new}" if old is not None and old != new else None
    if result.created:
        with store.transaction() as conn:
            feeds.add(
                store,
                "publish",
                f"published {art.workflow} v{art.version} (sha256 {art.sha256[:12]})",
                art.workflow,
                conn,
            )
            if change:
                feeds.add(store, "schedule", f"schedule of {art.workflow} changed: {change}", art.workflow, conn)
            elif before is None:
                feeds.add(store, "schedule", f"{art.workflow} scheduled: {new}", art.workflow, conn)
    return Published(result, change)


def _name_of(spec_path: str | Path) -> str | None:
    """The workflow name in a spec file, read leniently (validation comes with publishing)."""
    import yaml

    try:
        data = yaml.safe_load(Path(spec_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and publishing.VERSION_FILE.match(f"{name}-v0001.json") else None


def live_workflow(workflow: str) -> publishing.Artifact:
    art = publishing.live(workflow)
    if art is None:
        raise FlowlinkError(
            f"workflow {workflow!r} is not live: publish and deploy it first (flowlink deploy {workflow})"
        )
    return art


def unprocessed_runs(store: Store, workflow: str, touchpoint: str) -> tuple[dict[str, int], dict[str, int]]:
    """The runs that left records of a touchpoint Unprocessed, as (ended, not ended): run id -> how many records.

    A run has ended when Airflow's state for it is success or failed, or Airflow no longer knows it; a run still
    queued or running may load its records yet, so they are not resynced."""
    left = bucket.unprocessed_runs(store, workflow, touchpoint)
    if not left:
        return {}, {}
    ids = sorted(left)
    known: dict[str, runs.AirflowRun] = {}
    for i in range(0, len(ids), 1000):
        known.update(runs.dag_runs(workflow, ids[i : i + 1000]))
    ended = {r: n for r, n in left.items() if r not in known or known[r].ended}
    return ended, {r: n for r, n in left.items() if r not in ended}


def nothing_unprocessed(workflow: str, touchpoint: str, running: dict[str, int]) -> str:
    """Why --unprocessed finds nothing to resync: what was looked for, and the records runs not ended yet hold."""
    busy = (
        f" ({sum(running.values())} wait for runs not ended yet, which may still load them: "
        f"{', '.join(sorted(running)[:5])})"
        if running
        else ""
    )
    return f"no unprocessed records of ended runs in the bucket of {workflow}.{touchpoint}{busy}: nothing to resync"


def resync_records(
    store: Store,
    workflow: str,
    touchpoint: str,
    *,
    ids: list[str] | None = None,
    failed: bool = False,
    unprocessed: bool = False,
) -> list[str]:
    """The source ids a resync would send again: all failed ones, the Unprocessed ones that runs which have ended
    left behind (unprocessed_runs), or the given ones (each must be in the bucket)."""
    art = live_workflow(workflow)
    names = [tp["name"] for tp in art.spec["touchpoints"]]
    if touchpoint not in names:
        raise FlowlinkError(f"workflow {workflow!r} has no touchpoint {touchpoint!r} (it has: {', '.join(names)})")
    if [failed, unprocessed, bool(ids)].count(True) != 1:
        raise FlowlinkError("choose the records: one of --failed, --unprocessed or --id ID...")
    if failed:
        chosen = bucket.source_ids(store, workflow, touchpoint, status=RecordStatus.FAILED)
        if not chosen:
            raise FlowlinkError(f"no failed records in the bucket of {workflow}.{touchpoint}: nothing to resync")
        return chosen
    if unprocessed:
        ended, running = unprocessed_runs(store, workflow, touchpoint)
        chosen = (
            bucket.source_ids(store, workflow, touchpoint, status=RecordStatus.UNPROCESSED, runs=sorted(ended))
            if ended
            else []
        )
        if not chosen:
            raise FlowlinkError(nothing_unprocessed(workflow, touchpoint, running))
        return chosen
    chosen = list(dict.fromkeys(str(i) for i in ids or []))
    known = set(bucket.source_ids(store, workflow, touchpoint, among=chosen))
    unknown = [i for i in chosen if i not in known]
    if unknown:
        raise FlowlinkError(f"not in the bucket of {workflow}.{touchpoint}: {', '.join(unknown[:20])}")
    return chosen


def request_resync(
    store: Store,
    workflow: str,
    touchpoint: str,
    *,
    ids: list[str] | None = None,
    failed: bool = False,
    unprocessed: bool = False,
) -> tuple[int, list[str]]:
    """Record which bucket records a resync run must send again; returns (resync id, source ids).

    The caller starts the run with conf {"resync_id": id}, then calls resync_started (or cancel_resync)."""
    deployments.refuse_while_pending(store, workflow, "resync")
    chosen = resync_records(store, workflow, touchpoint, ids=ids, failed=failed, unprocessed=unprocessed)
    return record_resync(store, workflow, touchpoint, chosen), chosen


def record_resync(
    store: Store, workflow: str, touchpoint: str, source_ids: list[str], kind: ResyncKind = ResyncKind.MANUAL
) -> int:
    """kind: manual (a user chose the records) or retry (the automatic retry of failed records, flowlink/retry.py)."""
    with store.transaction() as conn:
        return state.create_resync(workflow, touchpoint, source_ids, conn, kind=kind)


def resync_started(store: Store, resync_id: int, run_id: str) -> None:
    """The resync run is queued: note its run id and tell the feeds."""
    req = state.resync(store, resync_id)
    what, tag = ("automatic retry", "retry") if req.get("kind") == "retry" else ("resync", "resync")
    with store.transaction() as conn:
        state.attach_run(resync_id, run_id, conn)
        feeds.add(
            store,
            tag,
            f"{what} #{resync_id} of {plural(len(req['source_ids']), req['touchpoint'] + ' record')}: run {run_id}",
            req["workflow"],
            conn,
        )


def cancel_resync(store: Store, resync_id: int) -> None:
    """Take back a resync request whose run could not be started."""
    state.delete_resync(store, resync_id)


def resync(
    store: Store,
    workflow: str,
    touchpoint: str,
    *,
    ids: list[str] | None = None,
    failed: bool = False,
    unprocessed: bool = False,
) -> tuple[int, list[str], str]:
    """Choose records, record the request and start the run limited to them; returns (resync id, ids, run id)."""
    deployments.refuse_while_pending(store, workflow, "resync")
    chosen = resync_records(store, workflow, touchpoint, ids=ids, failed=failed, unprocessed=unprocessed)
    runs.require_dag(workflow)
    resync_id = record_resync(store, workflow, touchpoint, chosen)
    try:
        run_id = runs.trigger(workflow, {"resync_id": resync_id})
    except Exception as exc:
        cancel_resync(store, resync_id)  # nothing half-written: no request without its run
        raise FlowlinkError(f"could not start the resync run: {exc}") from None
    resync_started(store, resync_id, run_id)
    return resync_id, chosen, run_id


def execute(store: Store, workflow: str) -> str:
    """Run a deployed workflow now (the product's Execute); refused while a deployment is pending."""
    deployments.refuse_while_pending(store, workflow, "execute")
    live_workflow(workflow)
    runs.require_dag(workflow)
    run_id = runs.trigger(workflow, {})
    feeds.add(store, "execute", f"{workflow} executed by hand: run {run_id}", workflow)
    return run_id


def _tracked(store: Store, deployment: deployments.Deployment) -> deployments.StartedDeployment:
    """Start the Airflow run that tracks a deployment; without it the deployment is taken back."""
    try:
        run_id = runs.trigger(runs.TRACKER_DAG, {"deployment_id": deployment["id"]})
    except Exception as exc:
        deployments.cancel(store, deployment["id"])
        raise FlowlinkError(f"could not start the deployment tracker: {exc}") from None
    return deployments.StartedDeployment(**deployment, run_id=run_id)


def deploy(store: Store, workflow: str, version: int | None = None) -> deployments.StartedDeployment:
    """Deploy the latest (or a given) published version to the primary environment, tracked by an Airflow run.
    Refused when Airflow lacks a connection the version names."""
    deployments.check_deploy(store, workflow, version)
    runs.require_dag(runs.TRACKER_DAG)
    require_connections(publishing.published(workflow, version).workflow_model())
    return _tracked(store, deployments.deploy(store, workflow, version))


def require_connections(wf: Workflow) -> None:
    """Refuse a workflow whose source or target connection Airflow does not have, naming each."""
    from flowlink.check import missing_connections

    missing = missing_connections(wf)
    if missing:
        roles = [
            f"{app.connection!r} ({role}.connection)"
            for role, app in (("source", wf.source), ("target", wf.target))
            if app.connection in missing
        ]
        raise FlowlinkError(
            f"deploy refused: Airflow has no connection {' and no '.join(dict.fromkeys(roles))}: add it "
            f"(airflow connections add NAME --conn-json '...') or publish a spec naming one it has; "
            f"`flowlink check {wf.name}` checks the whole setup"
        )


class RunListing(TypedDict):
    """A run in `flowlink runs`: its snapshot's summary (snapshots.RunSummary) and Airflow's state as status."""

    run_id: str
    version: int | None
    started_at: dt.datetime | None  # None: queued, not started
    ended_at: dt.datetime | None
    failed_steps: int
    running_steps: int
    failed_records: int
    kind: RunKind
    status: str | None  # queued, running, success, failed; None when Airflow cannot be read


def _listed(summary: snapshots.RunSummary, status: str | None, ended_at: dt.datetime | None) -> RunListing:
    return cast(RunListing, {**summary, "status": status, "ended_at": ended_at})


def run_list(store: Store, workflow: str, limit: int = 20) -> tuple[list[RunListing], str | None]:
    """The workflow's newest runs with Airflow's state of each (queued, running, success, failed) as "status":
    the runs with a snapshot and the runs Airflow has that started no step yet. Returns (rows, problem): when
    Airflow's metadata database cannot be read, every status is None and ``problem`` says why. A run Airflow no
    longer knows (its DAG deleted) has ended: failed if a step failed or never finished, else success."""
    summaries = {r["run_id"]: r for r in snapshots.runs(store, workflow, limit=limit)}
    try:
        known = runs.dag_runs(workflow, list(summaries)) if summaries else {}
        newest = runs.dag_runs(workflow, limit=limit)
    except runs.AirflowUnreadable as exc:
        # no end time either: one from the snapshot may be before later steps run
        return [_listed(r, None, None) for r in summaries.values()], str(exc)
    known.update(newest)
    rows: dict[str, RunListing] = {}
    for run_id, r in summaries.items():
        run = known.get(run_id)
        if run is not None:
            rows[run_id] = _listed(r, run.state, run.end_date if run.ended else None)
        else:
            rows[run_id] = _listed(r, "failed" if r["failed_steps"] or r["running_steps"] else "success", r["ended_at"])
    for run_id, run in newest.items():
        if run_id not in summaries:
            rows[run_id] = RunListing(
                run_id=run_id,
                version=None,
                started_at=run.start_date or run.queued_at,
                ended_at=run.end_date if run.ended else None,
                failed_steps=0,
                running_steps=0,
                failed_records=0,
                kind=snapshots.run_kind(store, workflow, run_id),
                status=run.state,
            )
    ordered = sorted(rows.values(), key=lambda r: _utc(r["started_at"]), reverse=True)
    return ordered[:limit], None


def airflow_states(workflow: str, run_ids: list[str]) -> dict[str, str]:
    """Airflow's state of each of these runs it knows (queued, running, success, failed); {} when its metadata
    database cannot be read (the caller then tells the state from the snapshot)."""
    try:
        return {run_id: run.state for run_id, run in runs.dag_runs(workflow, run_ids).items()} if run_ids else {}
    except runs.AirflowUnreadable:
        return {}


def _utc(when: dt.datetime | None) -> dt.datetime:
    if when is None:
        return dt.datetime.max.replace(tzinfo=dt.UTC)  # not started yet: newest
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


def wait_for_run(
    store: Store, workflow: str, run_id: str, *, timeout: float | None, progress=None, every: float = 2.0
) -> tuple[runs.AirflowRun, list[str]]:
    """Wait until Airflow's run has ended (runs.wait); returns it and, when it failed, why: each failed step's
    message from the snapshot ("customers.load: 3 records failed"), else the failed Airflow tasks."""
    run = runs.wait(workflow, run_id, timeout=timeout, progress=progress, every=every)
    if run.state == "success":
        return run, []
    reasons = [
        f"{s['touchpoint']}.{s['step']}: {s['message'] or 'failed'}"
        for s in snapshots.run_steps(store, workflow, run_id)
        if s["status"] == "failed"
    ]
    if not reasons:
        failed = [
            t for t, state in runs.task_states(workflow, run_id).items() if state in ("failed", "upstream_failed")
        ]
        reasons = [f"Airflow task {t} failed before any Flowlink step: see its log in Airflow" for t in failed[:5]]
    return run, reasons or [f"the run ended {run.state}"]


def undeploy(store: Store, workflow: str) -> deployments.StartedDeployment:
    """Undeploy a workflow (its agent removes the installed file), tracked by an Airflow run."""
    deployments.check_undeploy(store, workflow)
    runs.require_dag(runs.TRACKER_DAG)
    return _tracked(store, deployments.undeploy(store, workflow))
