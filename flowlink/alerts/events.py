"""The events: records failed, run failed, deployment Unsuccessful, agent disconnected, scheduled runs blocked."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flowlink import retry
from flowlink.alerts.channels import channels_for
from flowlink.alerts.messages import links, message, scrub, workflow_secrets
from flowlink.alerts.sending import Delivery, environment_of, send
from flowlink.errors import plural
from flowlink.retry import ExhaustedRecord
from flowlink.spec import Schedule
from flowlink.states import AlertEvent, Step, StepFailure, StepStatus
from flowlink.store import Store
from flowlink.store import alerts as stored
from flowlink.store.db import utcnow
from flowlink.store.snapshots import RunSummary, StepRow

log = logging.getLogger("flowlink.alerts")

LISTED = 20  # records (or ticks) named in one alert; the bucket link shows them all


# ------------------------------------------------------------------ records that used up their tries


def exhausted(store: Store, workflow: str) -> list[ExhaustedRecord]:
    """Failed records that reached the maximum number of tries (flowlink/retry.py: the workflow's policy)."""
    return retry.exhausted(store, workflow=workflow)


# ------------------------------------------------------------------ event: records failed in a run


def _gave_up(store: Store, workflow: str, run_id: str, touchpoint: str) -> list[ExhaustedRecord]:
    """The touchpoint's records that failed in this run and so reached their maximum number of tries."""
    candidates = {r["source_id"]: r for r in exhausted(store, workflow) if r["touchpoint"] == touchpoint}
    if not candidates:
        return []
    ids = list(candidates)
    failed = stored.failed_in_run(store, workflow, run_id, touchpoint, ids)
    return [candidates[i] for i in ids if i in failed]


def records_failed(store: Store, workflow: str, run_id: str, touchpoint: str) -> list[Delivery]:
    """Records of a touchpoint failed in a run (its load step, before the task fails): one alert per run and
    touchpoint, with the counts, the first records and their reasons, and those at their maximum of tries.

    Sent by the step, not at the run's end: Airflow decides a run's state by its last tasks, so a touchpoint
    whose records failed is red while the run can end green (its later touchpoints loaded, or a resync or retry
    run skipped them). Never raises."""
    try:
        from flowlink.store import snapshots

        step = next(
            (
                s
                for s in snapshots.run_steps(store, workflow, run_id)
                if s["touchpoint"] == touchpoint and s["step"] == Step.LOAD
            ),
            None,
        )
        total, first = stored.failed_records(store, workflow, run_id, touchpoint, first=LISTED)
        gave_up = _gave_up(store, workflow, run_id, touchpoint) if total else []
        environment = environment_of(store, workflow)
        subject = f"[Flowlink] {workflow}: {plural(total, touchpoint + ' record')} failed in run {run_id}"
        lines = [
            f"{plural(total, touchpoint + ' record')} of workflow {workflow} failed in run {run_id}"
            + (f" (environment {environment})" if environment else "")
            + ". They wait in the resync bucket as Failed; the other records were loaded."
        ]
        if step:
            lines.append(
                f"Load: {step['count_in']} sent to the target, {step['count_out']} loaded, "
                f"{step['count_failed']} rejected"
                + (f", {total - step['count_failed']} failed before the load" if total > step["count_failed"] else "")
                + "."
            )
        lines.append(f"Records ({len(first)} of {total}):")
        lines += [f"  {r['source_id']}: {r['step']}, try {r['tries']}: {r['message'] or ''}" for r in first]
        if gave_up:
            lines.append("")
            lines.append(
                f"{len(gave_up)} of them reached the maximum number of tries and stay Failed (no more "
                f"automatic retries; resync them by hand once fixed):"
            )
            lines += [f"  {r['source_id']} after {plural(r['tries'], 'try', 'tries')}" for r in gave_up[:LISTED]]
        facts = {
            "run_id": run_id,
            "touchpoint": touchpoint,
            "failed_records": total,
            "load": {k: step[k] for k in ("count_in", "count_out", "count_failed")} if step else None,
            "records": first,
            "exhausted": [{k: r[k] for k in ("source_id", "tries")} for r in gave_up],
        }
        alert = message(
            AlertEvent.RECORDS_FAILED,
            subject=subject,
            lines=lines,
            facts=facts,
            link_map=links(workflow=workflow, run_id=run_id, touchpoint=touchpoint),
            workflow=workflow,
            environment=environment,
            secrets=workflow_secrets(workflow),
        )
        return send(
            store,
            AlertEvent.RECORDS_FAILED,
            f"records:{workflow}:{run_id}:{touchpoint}",
            alert,
            workflow=workflow,
            environment=environment,
        )
    except Exception as exc:
        log.error(
            "alerts: records of %s.%s failed in run %s, but the alert failed: %s", workflow, touchpoint, run_id, exc
        )
        return []


# ------------------------------------------------------------------ event: a run failed


def run_ended_failed(
    store: Store,
    workflow: str,
    run_id: str,
    *,
    reason: str | None = None,
    task_states: dict[str, str] | None = None,
    dag_id: str | None = None,
) -> list[Delivery]:
    """A workflow run failed (the DAG's on_failure_callback): a feeds entry (run_failed_feed) and the run_failed
    alert, unless every failure in it was failed records, which their load steps have alerted already
    (records_failed)."""
    from flowlink.store import snapshots

    run_steps = snapshots.run_steps(store, workflow, run_id)
    record_steps = [s for s in run_steps if s["status"] == StepStatus.FAILED and s["failure"] == StepFailure.RECORDS]
    other_steps = [
        s for s in run_steps if s["status"] in (StepStatus.FAILED, StepStatus.RUNNING) and s not in record_steps
    ]
    record_tasks = {f"{s['touchpoint']}.{s['step']}" for s in record_steps}
    other_tasks = sorted(t for t, st in (task_states or {}).items() if st == "failed" and t not in record_tasks)
    if record_steps and not other_steps and not other_tasks:
        return []
    run_failed_feed(store, workflow, run_id, other_steps, other_tasks)
    environment = environment_of(store, workflow)
    total, _ = stored.failed_records(store, workflow, run_id, first=0)
    subject = f"[Flowlink] {workflow}: run {run_id} failed"
    lines = [
        f"Run {run_id} of workflow {workflow}"
        + (f" (environment {environment})" if environment else "")
        + " failed"
        + (f" ({reason})" if reason else "")
        + "."
    ]
    for s in other_steps:
        lines.append(
            f"  {s['touchpoint']}.{s['step']}: {s['status']}: {s['message'] or 'no message (the task stopped)'}"
        )
    for t in other_tasks:
        if t not in {f"{s['touchpoint']}.{s['step']}" for s in other_steps}:
            lines.append(f"  {t}: failed before it recorded its step (see the task's log in Airflow)")
    if not other_steps and not other_tasks:
        lines.append("  No step recorded a failure: see the run in Airflow.")
    if total:
        lines.append(f"Besides, {plural(total, 'record')} failed in this run and wait in the resync bucket.")
    facts = {
        "run_id": run_id,
        "reason": reason,
        "failed_records": total,
        "failed_tasks": other_tasks,
        "failed_steps": [
            {k: s[k] for k in ("touchpoint", "step", "status", "count_in", "count_out", "count_failed", "message")}
            for s in other_steps
        ],
    }
    alert = message(
        AlertEvent.RUN_FAILED,
        subject=subject,
        lines=lines,
        facts=facts,
        link_map=links(workflow=workflow, run_id=run_id, dag_id=dag_id, bucket_page=bool(total)),
        workflow=workflow,
        environment=environment,
        secrets=workflow_secrets(workflow),
    )
    return send(
        store,
        AlertEvent.RUN_FAILED,
        f"run_failed:{workflow}:{run_id}",
        alert,
        workflow=workflow,
        environment=environment,
    )


def run_failed_feed(store: Store, workflow: str, run_id: str, steps: list[StepRow], tasks: list[str]) -> None:
    """One feeds entry (tag run_failed) for a run that failed for another reason than failed records: the run, each
    step that failed as a whole with its reason (or never ended), each task that failed before it recorded its step.
    Added once per run, however often the callback comes; never raises."""
    parts = [
        f"{s['touchpoint']}.{s['step']}: " + ((s["message"] or "").strip().splitlines() or ["no reason"])[0]
        if s["status"] == StepStatus.FAILED
        else f"{s['touchpoint']}.{s['step']}: the task stopped before the step ended"
        for s in steps
    ]
    shown = {f"{s['touchpoint']}.{s['step']}" for s in steps}
    parts += [
        f"{t}: failed before it recorded its step (see the task's log in Airflow)" for t in tasks if t not in shown
    ]
    text = scrub(
        f"run {run_id} failed: " + ("; ".join(parts) or "no step recorded a failure (see the run in Airflow)"),
        workflow_secrets(workflow),
    )
    try:
        stored.add_feed_once(store, "run_failed", text, workflow)
    except Exception as exc:
        log.error("the feeds entry for the failed run %s of %s could not be added: %s", run_id, workflow, exc)


# ------------------------------------------------------------------ event: a deployment became Unsuccessful


def deployment_unsuccessful(store: Store, d: Mapping[str, Any]) -> list[Delivery]:
    """The deployment tracker found deployment ``d`` Unsuccessful."""
    try:
        subject = f"[Flowlink] {d['action']} of {d['workflow']} v{d['version']} to {d['environment']} is Unsuccessful"
        lines = [
            f"Deployment {d['id']}: {d['action']} of {d['workflow']} v{d['version']} to environment "
            f"{d['environment']} is Unsuccessful: {d['message'] or 'no reason given'}.",
            f"Try {d['tries']}, started {d['started_at']:%Y-%m-%d %H:%M:%S} UTC, wait till "
            f"{d['wait_till']:%H:%M:%S} UTC.",
            "The previous version keeps running. Once the agent is fixed, deploy again "
            f"(flowlink deploy {d['workflow']}); the steps: flowlink deployment-log {d['workflow']}.",
        ]
        facts = {
            k: d.get(k)
            for k in (
                "id",
                "workflow",
                "environment",
                "action",
                "version",
                "tries",
                "started_at",
                "wait_till",
                "message",
            )
        }
        alert = message(
            AlertEvent.DEPLOYMENT_UNSUCCESSFUL,
            subject=subject,
            lines=lines,
            facts=facts,
            link_map=links(environment=d["environment"], deployments_page=True),
            workflow=d["workflow"],
            environment=d["environment"],
        )
        return send(
            store,
            AlertEvent.DEPLOYMENT_UNSUCCESSFUL,
            f"deployment:{d['id']}",
            alert,
            workflow=d["workflow"],
            environment=d["environment"],
        )
    except Exception as exc:
        log.error("alerts: deployment %s Unsuccessful, but the alert failed: %s", d.get("id"), exc)
        return []


# ------------------------------------------------------------------ event: an agent is disconnected


def check_agents(store: Store, now: dt.datetime | None = None) -> list[Delivery]:
    """Every enabled environment whose agent has been silent longer than its disconnect_alert_minutes: one alert
    per disconnection (the key is the last heartbeat: a new silence after the agent came back alerts again).
    An agent that never connected is not 'disconnected'."""
    now = now or utcnow()
    done: list[Delivery] = []
    for env in stored.enabled_environments(store):
        beat, minutes = env["last_heartbeat"], env["disconnect_alert_minutes"]
        if beat is None or now - beat <= dt.timedelta(minutes=minutes):
            continue
        silent = int((now - beat).total_seconds() // 60)
        subject = f"[Flowlink] agent of {env['name']} disconnected for {silent} minutes"
        lines = [
            f"The agent of environment {env['name']} ({env['kind']}) has not been heard from since "
            f"{beat:%Y-%m-%d %H:%M:%S} UTC: {silent} minutes (alert after {minutes}).",
            "Deployments to it stay Pending until their wait till and then become Unsuccessful. Check that "
            f"`flowlink agent --environment {env['name']}` runs and reaches the api-server's /flowlink.",
        ]
        facts = {
            "environment": env["name"],
            "kind": env["kind"],
            "last_heartbeat": beat,
            "silent_minutes": silent,
            "alert_after_minutes": minutes,
        }
        alert = message(
            AlertEvent.AGENT_DISCONNECTED,
            subject=subject,
            lines=lines,
            facts=facts,
            link_map=links(environments_page=True),
            environment=env["name"],
        )
        done += send(
            store,
            AlertEvent.AGENT_DISCONNECTED,
            f"agent:{env['name']}:{beat.isoformat()}",
            alert,
            environment=env["name"],
        )
    return done


# ------------------------------------------------------------------ event: a scheduled run could not start


def check_blocked_runs(
    store: Store,
    workflows: list[tuple[str, str | None, Schedule]],
    *,
    paused: Callable[[str], bool],
    count_runs: Callable[..., int],
    now: dt.datetime | None = None,
    grace: dt.timedelta = dt.timedelta(minutes=1),
    lookback: dt.timedelta = dt.timedelta(hours=1),
    most: int = 60,
) -> list[Delivery]:
    """Scheduled runs that could not start because the previous run was still running.

    Workflow DAGs have max_active_runs=1: while a run is active Airflow's scheduler does not create the next
    scheduled run at all (DagModel.exceeds_max_non_backfill), and without catchup that tick is skipped for good;
    no queued run is left to see. So for each run of the workflow active in the last ``lookback`` (its steps in
    the snapshot: first start to last end, or now while a step runs), every tick of the workflow's schedule
    inside that span and at least ``grace`` old is asked of Airflow (``count_runs(dag_id, logical_dates=[tick])``,
    the Task SDK in the alerts DAG): a tick without a run is a scheduled run that could not start. Paused DAGs
    (``paused(dag_id)``) are skipped: their ticks are not created anyway. One alert per blocking run, naming the
    ticks it blocked so far (at most ``most`` are asked); workflows without a channel for it, and runs every
    channel has heard of, cost no question to Airflow. ``workflows``: (workflow, environment, schedule)."""
    from flowlink.schedule import Ticks
    from flowlink.store import snapshots

    now = now or utcnow()
    done: list[Delivery] = []
    for workflow, environment, schedule in workflows:
        try:
            ticks = Ticks(schedule)
            candidates: list[tuple[RunSummary, list[dt.datetime]]] = []  # (run, its ticks): most runs have none
            for run in snapshots.run_page(store, workflow, limit=50):
                if not (run["running_steps"] or (run["ended_at"] and run["ended_at"] >= now - lookback)):
                    continue
                end = run["ended_at"] if not run["running_steps"] and run["ended_at"] else now
                during: list[dt.datetime] = []
                tick = ticks.next_tick_after(run["started_at"])
                while tick is not None and tick < end and tick <= now - grace and len(during) < most:
                    during.append(tick)
                    tick = ticks.next_tick_after(tick)
                if during:
                    candidates.append((run, during))
            wanted = {c["id"] for c in channels_for(store, workflow, environment, AlertEvent.RUN_BLOCKED)}
            candidates = [
                (run, during)
                for run, during in candidates
                if not wanted <= stored.had(store, f"blocked:{workflow}:{run['run_id']}")
            ]
            if not wanted or not candidates or paused(workflow):  # Airflow is asked only about ticks during a run
                continue
            for run, during in candidates:
                blocked = [t for t in during if not count_runs(workflow, logical_dates=[t])]
                if blocked:
                    done += _blocked_alert(store, workflow, environment, run, blocked)
        except Exception as exc:
            log.warning("alerts: cannot tell whether runs of %s were blocked: %s", workflow, exc)
    return done


def _blocked_alert(
    store: Store, workflow: str, environment: str | None, run: RunSummary, blocked: list[dt.datetime]
) -> list[Delivery]:
    first = blocked[0]
    state = "is still running" if run["running_steps"] else f"ran until {run['ended_at']:%H:%M:%S} UTC"
    subject = f"[Flowlink] {workflow}: the run scheduled at {first:%Y-%m-%d %H:%M} UTC could not start"
    lines = [
        f"The scheduled run of workflow {workflow} at {first:%Y-%m-%d %H:%M:%S} UTC could not start: the previous "
        f"run {run['run_id']} (started {run['started_at']:%Y-%m-%d %H:%M:%S} UTC) {state}.",
        f"Ticks without a run so far: {len(blocked)} ("
        + ", ".join(f"{t:%H:%M}" for t in blocked[:LISTED])
        + (", ..." if len(blocked) > LISTED else "")
        + ").",
        "Runs of a workflow never overlap and missed ticks are not caught up: the next run reads what they would "
        "have read. A run that often takes longer than the schedule's interval needs a longer interval, a "
        "smaller batch size or more workers.",
    ]
    facts = {
        "scheduled_for": first,
        "blocked_ticks": blocked[:LISTED],
        "blocked_count": len(blocked),
        "running_run_id": run["run_id"],
        "running_since": run["started_at"],
        "still_running": bool(run["running_steps"]),
    }
    alert = message(
        AlertEvent.RUN_BLOCKED,
        subject=subject,
        lines=lines,
        facts=facts,
        link_map=links(workflow=workflow, run_id=run["run_id"], snapshots_page=True, bucket_page=False),
        workflow=workflow,
        environment=environment,
    )
    return send(
        store,
        AlertEvent.RUN_BLOCKED,
        f"blocked:{workflow}:{run['run_id']}",
        alert,
        workflow=workflow,
        environment=environment,
    )
