"""What a user can do with a workflow. The CLI (and later the API and the UI pages) call these, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flowlink import deployments, runs
from flowlink import publish as publishing
from flowlink.errors import FlowlinkError
from flowlink.schedule import summary
from flowlink.spec import Schedule
from flowlink.store import Store, bucket, feeds, state


@dataclass(frozen=True)
class Published:
    result: publishing.PublishResult
    schedule_change: str | None  # "every minute -> daily at 06:00 (UTC)" when the schedule changed


def publish_workflow(store: Store, spec_path: str | Path) -> Published:
    """Publish a spec: a new version only if its content changed. Deploying puts a version live."""
    name = _name_of(spec_path)
    before = publishing.published(name) if name and publishing.versions(name) else None
    result = publishing.publish(spec_path)
    art = result.artifact
    old = summary(Schedule.model_validate(before.spec.get("schedule") or {})) if before else None
    new = summary(Schedule.model_validate(art.spec.get("schedule") or {}))
    change = f"{old} -> {new}" if old is not None and old != new else None
    if result.created:
        with store.engine.begin() as conn:
            feeds.add(store, "publish", f"published {art.workflow} v{art.version} (sha256 {art.sha256[:12]})", art.workflow, conn)
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
        raise FlowlinkError(f"workflow {workflow!r} is not live: publish and deploy it first (flowlink deploy {workflow})")
    return art


def resync_records(store: Store, workflow: str, touchpoint: str, *, ids: list[str] | None = None,
                   failed: bool = False) -> list[str]:
    """The source ids a resync would send again: all failed ones, or the given ones (each must be in the bucket)."""
    art = live_workflow(workflow)
    names = [tp["name"] for tp in art.spec["touchpoints"]]
    if touchpoint not in names:
        raise FlowlinkError(f"workflow {workflow!r} has no touchpoint {touchpoint!r} (it has: {', '.join(names)})")
    if failed == bool(ids):
        raise FlowlinkError("choose the records: either --failed or --id ID...")
    if failed:
        chosen = bucket.source_ids(store, workflow, touchpoint, status="failed")
        if not chosen:
            raise FlowlinkError(f"no failed records in the bucket of {workflow}.{touchpoint}: nothing to resync")
        return chosen
    chosen = list(dict.fromkeys(str(i) for i in ids))
    known = set(bucket.source_ids(store, workflow, touchpoint, among=chosen))
    unknown = [i for i in chosen if i not in known]
    if unknown:
        raise FlowlinkError(f"not in the bucket of {workflow}.{touchpoint}: {', '.join(unknown[:20])}")
    return chosen


def request_resync(store: Store, workflow: str, touchpoint: str, *, ids: list[str] | None = None,
                   failed: bool = False) -> tuple[int, list[str]]:
    """Record which bucket records a resync run must send again; returns (resync id, source ids).

    The caller starts the run with conf {"resync_id": id}, then calls resync_started (or cancel_resync)."""
    deployments.refuse_while_pending(store, workflow, "resync")
    chosen = resync_records(store, workflow, touchpoint, ids=ids, failed=failed)
    return record_resync(store, workflow, touchpoint, chosen), chosen


def record_resync(store: Store, workflow: str, touchpoint: str, source_ids: list[str], kind: str = "manual") -> int:
    """kind: manual (a user chose the records) or retry (the automatic retry of failed records, flowlink/retry.py)."""
    with store.engine.begin() as conn:
        return state.create_resync(workflow, touchpoint, source_ids, conn, kind=kind)


def resync_started(store: Store, resync_id: int, run_id: str) -> None:
    """The resync run is queued: note its run id and tell the feeds."""
    req = state.resync(store, resync_id)
    what, tag = ("automatic retry", "retry") if req.get("kind") == "retry" else ("resync", "resync")
    with store.engine.begin() as conn:
        state.attach_run(resync_id, run_id, conn)
        feeds.add(store, tag, f"{what} #{resync_id} of {len(req['source_ids'])} {req['touchpoint']} records: run {run_id}",
                  req["workflow"], conn)


def cancel_resync(store: Store, resync_id: int) -> None:
    """Take back a resync request whose run could not be started."""
    state.delete_resync(store, resync_id)


def resync(store: Store, workflow: str, touchpoint: str, *, ids: list[str] | None = None, failed: bool = False) -> tuple[int, list[str], str]:
    """Choose records, record the request and start the run limited to them; returns (resync id, ids, run id)."""
    deployments.refuse_while_pending(store, workflow, "resync")
    chosen = resync_records(store, workflow, touchpoint, ids=ids, failed=failed)
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


def _tracked(store: Store, deployment: dict) -> dict:
    """Start the Airflow run that tracks a deployment; without it the deployment is taken back."""
    try:
        deployment["run_id"] = runs.trigger(runs.TRACKER_DAG, {"deployment_id": deployment["id"]})
    except Exception as exc:
        deployments.cancel(store, deployment["id"])
        raise FlowlinkError(f"could not start the deployment tracker: {exc}") from None
    return deployment


def deploy(store: Store, workflow: str, version: int | None = None) -> dict:
    """Deploy the latest (or a given) published version to the primary environment, tracked by an Airflow run."""
    deployments.check_deploy(store, workflow, version)
    runs.require_dag(runs.TRACKER_DAG)
    return _tracked(store, deployments.deploy(store, workflow, version))


def undeploy(store: Store, workflow: str) -> dict:
    """Undeploy a workflow (its agent removes the installed file), tracked by an Airflow run."""
    deployments.check_undeploy(store, workflow)
    runs.require_dag(runs.TRACKER_DAG)
    return _tracked(store, deployments.undeploy(store, workflow))
