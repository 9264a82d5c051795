"""Automatic retry of Failed records. No Airflow here: the retry DAG (flowlink_airflow.dag_factory.retry) calls
`plan` and starts the runs.

Settings come from the environment the workflow is live in (`flowlink env set NAME --retry-...`; a workflow in
the live folder's root uses the primary environment), each overridable by the spec's `retry:` section:

* max_tries (default 4): tries of a record in all, the sync that failed it included (3 retries);
* wait_minutes (60): how long a failed record waits after its last try before it is eligible again;
* batch_size (500): at most this many records per retry run (oldest failures first);
* every (hourly | daily): how often a retry pass looks at the workflow.

A retry is a resync request of kind 'retry' and an Airflow run of the workflow's DAG with conf
{"resync_id": N, "retry": true}: it sends only those records (flowlink/sync.py) and each try counts (`tries`).
A record that reaches max_tries stays Failed, is not picked up again (`exhausted` lists it for the alerts),
until a user resyncs it or the source changes it (a normal sync starts its tries afresh).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from flowlink import publish, settings
from flowlink.errors import plural
from flowlink.states import RecordStatus, ResyncKind, Step, StepStatus
from flowlink.store import Store, bucket, snapshots, state
from flowlink.store.bucket import FailedRow
from flowlink.store.db import utcnow
from flowlink.store.state import Resync

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {"max_tries": 4, "wait_minutes": 60, "batch_size": 500, "every": "hourly"}
PERIOD = {"hourly": dt.timedelta(hours=1), "daily": dt.timedelta(days=1)}
# The retry DAG runs hourly and a pass takes a moment: a pass is due this much before a full period has passed,
# so "daily" stays at about the same hour instead of slipping an hour every day.
SLACK = dt.timedelta(minutes=5)
# A resync request whose run has not finished its touchpoint keeps the touchpoint out of further retry passes
# (its records are not chosen twice). Runs that never report (cleared, marked failed while queued) stop
# counting after OPEN_FOR; a request whose run was never attached, after TRIGGER_GRACE.
OPEN_FOR = dt.timedelta(days=1)
TRIGGER_GRACE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Policy:
    """The retry settings a workflow runs with, and where they came from."""

    max_tries: int
    wait_minutes: int
    batch_size: int
    every: str
    environment: str | None = None  # whose settings apply (None: no environment, the defaults)
    from_spec: tuple[str, ...] = ()  # the keys the spec's retry section set
    last_retry_at: dt.datetime | None = field(default=None, compare=False)  # the environment's last retry pass

    @property
    def wait(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.wait_minutes)


class PlannedRetry(TypedDict):
    """A retry run to start: the resync request recorded for it, its run id and conf (an XCom of the retry DAG)."""

    workflow: str
    touchpoint: str
    resync_id: int
    run_id: str
    count: int  # records chosen
    conf: dict[str, Any]  # {"resync_id": N, "retry": True}


class ExhaustedRecord(FailedRow):
    """A Failed record at its workflow's maximum tries."""

    max_tries: int


# ------------------------------------------------------------------ settings


def _live(workflow: str) -> tuple[publish.Artifact | None, str | None]:
    """The live version of a workflow and the environment whose folder it is installed in (None: the root)."""
    art = publish.live(workflow)
    if art is None:
        return None, None
    return art, _environment_of(art.path)


def _environment_of(path: Path) -> str | None:
    folder = settings.live_dir()
    return path.parent.name if path.parent.resolve() != folder.resolve() else None


def _spec_retry(spec: dict[str, Any] | None) -> dict[str, Any]:
    section = (spec or {}).get("retry") or {}
    return {k: v for k, v in section.items() if k in DEFAULTS and v is not None}


def policy(store: Store, workflow: str | publish.Artifact, environment: str | None = None) -> Policy:
    """The effective retry settings of a workflow: its environment's (the one it is live in, else the primary),
    overridden key by key by the spec's `retry:` section. A workflow that is not live uses its latest published
    spec, if any."""
    art: publish.Artifact | None
    if isinstance(workflow, publish.Artifact):
        art, env_name = workflow, environment or _environment_of(workflow.path)
    else:
        art, env_name = _live(workflow)
        env_name = environment or env_name
        if art is None:
            try:
                art = publish.published(workflow)
            except Exception:  # never published: the environment's settings alone
                art = None
    env = state.retry_settings(store, env_name)
    values = dict(DEFAULTS)
    if env is not None:
        values.update(
            max_tries=env["max_tries"],
            wait_minutes=env["wait_minutes"],
            batch_size=env["batch_size"],
            every=env["every"],
        )
    own = _spec_retry(art.spec if art else None)
    values.update(own)
    return Policy(
        **values,
        environment=env["environment"] if env else None,
        from_spec=tuple(sorted(own)),
        last_retry_at=env["last_retry_at"] if env else None,
    )


def _due(every: str, last: dt.datetime | None, now: dt.datetime) -> bool:
    """A pass is due hourly, or daily (the last one about a day ago), or if there was none."""
    return last is None or now - last >= PERIOD[every] - SLACK


def workflow_due(store: Store, workflow: str, pol: Policy, now: dt.datetime | None = None) -> bool:
    """Due by the environment's pass, or, when the spec sets its own `every`, by the workflow's last retry."""
    now = now or utcnow()
    if "every" in pol.from_spec:
        return _due(pol.every, state.last_request(store, workflow, ResyncKind.RETRY), now)
    return _due(pol.every, pol.last_retry_at, now)


# ------------------------------------------------------------------ records


def eligible(store: Store, workflow: str, touchpoint: str, pol: Policy, now: dt.datetime | None = None) -> list[str]:
    """Source ids a retry would send now: Failed, fewer tries than the maximum, their last try at least the wait
    ago; oldest failures first, at most the batch size."""
    now = now or utcnow()
    return bucket.failed_ready(
        store, workflow, touchpoint, below_tries=pol.max_tries, tried_before=now - pol.wait, limit=pol.batch_size
    )


def exhausted(store: Store, workflow: str | None = None) -> list[ExhaustedRecord]:
    """Records that stay Failed because they reached their workflow's maximum tries (for the alerts): workflow,
    touchpoint, source_id, tries, max_tries, message, updated_at; by workflow, touchpoint, oldest first."""
    names = bucket.workflows_with(store, RecordStatus.FAILED) if workflow is None else [workflow]
    out: list[ExhaustedRecord] = []
    for name in names:
        limit = policy(store, name).max_tries
        out += [ExhaustedRecord(**r, max_tries=limit) for r in bucket.failed_at_tries(store, name, limit)]
    return out


def open_request(store: Store, workflow: str, touchpoint: str, now: dt.datetime | None = None) -> Resync | None:
    """A resync request (retry or manual) of the touchpoint whose run has not finished the touchpoint yet:
    queued (no step recorded), or still running. Its records must not be chosen again meanwhile."""
    now = now or utcnow()
    for req in state.resyncs_since(store, workflow, touchpoint, now - OPEN_FOR):
        if req["run_id"] is None:
            if req["requested_at"] >= now - TRIGGER_GRACE:
                return req
            continue
        ran = snapshots.run_steps(store, workflow, req["run_id"], touchpoint)
        finished = any(s["status"] == StepStatus.FAILED for s in ran) or any(
            s["step"] == Step.LOAD and s["ended_at"] for s in ran
        )
        if not finished:
            return req
    return None


# ------------------------------------------------------------------ a retry pass


def run_id_for(resync_id: int, now: dt.datetime) -> str:
    """The Airflow run id of a retry run: tells retries apart in the Airflow UI."""
    return f"retry__{now.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S}+00:00__{resync_id}"


def plan(store: Store, now: dt.datetime | None = None, *, force: bool = False) -> list[PlannedRetry]:
    """One retry pass over every live workflow: for each touchpoint with eligible records, record a resync
    request of kind 'retry'. Returns what to trigger: [{"workflow", "touchpoint", "resync_id", "run_id",
    "count", "conf"}]. Environments whose pass was due get their last_retry_at set. `force`: ignore hourly/daily."""
    from flowlink import actions, deployments
    from flowlink.live import live_files

    now = now or utcnow()
    planned: list[PlannedRetry] = []
    passed: set[str] = set()
    folder = settings.live_dir()
    seen: set[str] = set()
    for path in live_files(folder):  # as the DAG factory reads them
        try:
            art = publish.read_artifact(path)
        except Exception as exc:  # a broken live file is reported by the DAG factory
            log.warning("retry: skipped %s: %s", path, exc)
            continue
        workflow = art.workflow
        if workflow in seen or path.stem != workflow:  # the DAG factory refuses these too
            continue
        seen.add(workflow)
        pol = policy(store, art)
        if not force and not workflow_due(store, workflow, pol, now):
            log.info("retry: %s is not due (%s, last pass %s)", workflow, pol.every, pol.last_retry_at)
            continue
        if pol.environment and "every" not in pol.from_spec:
            passed.add(pol.environment)
        try:
            deployments.refuse_while_pending(store, workflow, "retry")
        except deployments.RuleError as exc:
            log.info("retry: %s", exc)
            continue
        for tp in art.spec["touchpoints"]:
            name = tp["name"]
            busy = open_request(store, workflow, name, now)
            if busy is not None:
                log.info(
                    "retry: %s.%s waits for resync #%s (run %s) to finish", workflow, name, busy["id"], busy["run_id"]
                )
                continue
            ids = eligible(store, workflow, name, pol, now)
            if not ids:
                continue
            resync_id = actions.record_resync(store, workflow, name, ids, kind=ResyncKind.RETRY)
            planned.append(
                PlannedRetry(
                    workflow=workflow,
                    touchpoint=name,
                    resync_id=resync_id,
                    count=len(ids),
                    run_id=run_id_for(resync_id, now),
                    conf={"resync_id": resync_id, "retry": True},
                )
            )
            log.info(
                "retry: %s.%s: resync #%d of %d failed records (max %d tries, wait %d min)",
                workflow,
                name,
                resync_id,
                len(ids),
                pol.max_tries,
                pol.wait_minutes,
            )
    state.retry_passed(store, sorted(passed), now)
    return planned


def trigger_kwargs(planned: list[PlannedRetry]) -> list[dict[str, Any]]:
    """TriggerDagRunOperator arguments, one mapped task per planned retry run."""
    return [
        {
            "trigger_dag_id": p["workflow"],
            "trigger_run_id": p["run_id"],
            "conf": p["conf"],
            "note": f"automatic retry #{p['resync_id']}: {plural(p['count'], 'failed ' + p['touchpoint'] + ' record')}",
        }
        for p in planned
    ]


def settle(store: Store, planned: list[PlannedRetry], triggered: list[str]) -> list[PlannedRetry]:
    """After the triggers: note the run of each request that was started; take back the others (their records
    are chosen again by the next pass). Returns the requests whose run could not be started."""
    from flowlink import actions

    failed = []
    for p in planned:
        if p["run_id"] in triggered:
            actions.resync_started(store, p["resync_id"], p["run_id"])
        else:
            actions.cancel_resync(store, p["resync_id"])
            failed.append(p)
    return failed
