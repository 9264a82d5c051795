"""Automatic retry of Failed records. No Airflow here: dags/flowlink_retry.py calls `plan` and starts the runs.

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

from sqlalchemy import func, select

from flowlink import publish, settings
from flowlink.errors import plural
from flowlink.store import Store
from flowlink.store.db import utcnow
from flowlink.store.tables import bucket, environments, resyncs, steps

log = logging.getLogger(__name__)

DEFAULTS = {"max_tries": 4, "wait_minutes": 60, "batch_size": 500, "every": "hourly"}
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


def _environment_row(store: Store, name: str | None) -> dict | None:
    q = select(environments)
    q = q.where(environments.c.name == name) if name else q.where(environments.c.is_primary.is_(True))
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    return dict(row._mapping) if row else None


def _spec_retry(spec: dict | None) -> dict:
    section = (spec or {}).get("retry") or {}
    return {k: v for k, v in section.items() if k in DEFAULTS and v is not None}


def policy(store: Store, workflow: str | publish.Artifact, environment: str | None = None) -> Policy:
    """The effective retry settings of a workflow: its environment's (the one it is live in, else the primary),
    overridden key by key by the spec's `retry:` section. A workflow that is not live uses its latest published
    spec, if any."""
    if isinstance(workflow, publish.Artifact):
        art, env_name = workflow, environment or _environment_of(workflow.path)
    else:
        art, env_name = _live(workflow)
        env_name = environment or env_name
        if art is None:
            try:
                art = publish.published(workflow)
            except Exception:  # noqa: BLE001 - never published: the environment's settings alone
                art = None
    env = _environment_row(store, env_name)
    values = dict(DEFAULTS)
    if env is not None:
        values.update(max_tries=env["retry_max_tries"], wait_minutes=env["retry_wait_minutes"],
                      batch_size=env["retry_batch_size"], every=env["retry_every"])
    own = _spec_retry(art.spec if art else None)
    values.update(own)
    return Policy(**values, environment=env["name"] if env else None, from_spec=tuple(sorted(own)),
                  last_retry_at=env["last_retry_at"] if env else None)


def _due(every: str, last: dt.datetime | None, now: dt.datetime) -> bool:
    """A pass is due hourly, or daily (the last one about a day ago), or if there was none."""
    return last is None or now - last >= PERIOD[every] - SLACK


def _last_retry_of(store: Store, workflow: str) -> dt.datetime | None:
    q = select(func.max(resyncs.c.requested_at)).where(resyncs.c.workflow == workflow, resyncs.c.kind == "retry")
    with store.engine.connect() as conn:
        return conn.execute(q).scalar()


def workflow_due(store: Store, workflow: str, pol: Policy, now: dt.datetime | None = None) -> bool:
    """Due by the environment's pass, or, when the spec sets its own `every`, by the workflow's last retry."""
    now = now or utcnow()
    if "every" in pol.from_spec:
        return _due(pol.every, _last_retry_of(store, workflow), now)
    return _due(pol.every, pol.last_retry_at, now)


# ------------------------------------------------------------------ records

def eligible(store: Store, workflow: str, touchpoint: str, pol: Policy, now: dt.datetime | None = None) -> list[str]:
    """Source ids a retry would send now: Failed, fewer tries than the maximum, their last try at least the wait
    ago; oldest failures first, at most the batch size."""
    now = now or utcnow()
    q = (select(bucket.c.source_id)
         .where(bucket.c.workflow == workflow, bucket.c.touchpoint == touchpoint, bucket.c.status == "failed",
                bucket.c.tries < pol.max_tries, bucket.c.updated_at <= now - pol.wait)
         .order_by(bucket.c.updated_at, bucket.c.id).limit(pol.batch_size))
    with store.engine.connect() as conn:
        return list(conn.execute(q).scalars())


def exhausted(store: Store, workflow: str | None = None) -> list[dict]:
    """Records that stay Failed because they reached their workflow's maximum tries (for the alerts): workflow,
    touchpoint, source_id, tries, max_tries, message, updated_at; by workflow, touchpoint, oldest first."""
    if workflow is None:
        q = select(bucket.c.workflow).where(bucket.c.status == "failed").group_by(bucket.c.workflow)
        with store.engine.connect() as conn:
            names = sorted(conn.execute(q).scalars())
    else:
        names = [workflow]
    out: list[dict] = []
    for name in names:
        limit = policy(store, name).max_tries
        q = (select(bucket.c.workflow, bucket.c.touchpoint, bucket.c.source_id, bucket.c.tries, bucket.c.message,
                    bucket.c.updated_at)
             .where(bucket.c.workflow == name, bucket.c.status == "failed", bucket.c.tries >= limit)
             .order_by(bucket.c.touchpoint, bucket.c.updated_at, bucket.c.id))
        with store.engine.connect() as conn:
            out += [{**r._mapping, "max_tries": limit} for r in conn.execute(q)]
    return out


def open_request(store: Store, workflow: str, touchpoint: str, now: dt.datetime | None = None) -> dict | None:
    """A resync request (retry or manual) of the touchpoint whose run has not finished the touchpoint yet:
    queued (no step recorded), or still running. Its records must not be chosen again meanwhile."""
    now = now or utcnow()
    q = (select(resyncs).where(resyncs.c.workflow == workflow, resyncs.c.touchpoint == touchpoint,
                               resyncs.c.requested_at >= now - OPEN_FOR).order_by(resyncs.c.id.desc()))
    with store.engine.connect() as conn:
        for req in conn.execute(q).all():
            if req.run_id is None:
                if req.requested_at >= now - TRIGGER_GRACE:
                    return dict(req._mapping)
                continue
            ran = conn.execute(select(steps.c.step, steps.c.status, steps.c.ended_at).where(
                steps.c.workflow == workflow, steps.c.run_id == req.run_id, steps.c.touchpoint == touchpoint)).all()
            finished = any(s.status == "failed" for s in ran) or any(s.step == "load" and s.ended_at for s in ran)
            if not finished:
                return dict(req._mapping)
    return None


# ------------------------------------------------------------------ a retry pass

def run_id_for(resync_id: int, now: dt.datetime) -> str:
    """The Airflow run id of a retry run: tells retries apart in the Airflow UI."""
    return f"retry__{now.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M:%S}+00:00__{resync_id}"


def plan(store: Store, now: dt.datetime | None = None, *, force: bool = False) -> list[dict]:
    """One retry pass over every live workflow: for each touchpoint with eligible records, record a resync
    request of kind 'retry'. Returns what to trigger: [{"workflow", "touchpoint", "resync_id", "run_id",
    "count", "conf"}]. Environments whose pass was due get their last_retry_at set. `force`: ignore hourly/daily."""
    from flowlink_airflow.dag_factory.graph import live_files
    from flowlink import actions, deployments

    now = now or utcnow()
    planned: list[dict] = []
    passed: set[str] = set()
    folder = settings.live_dir()
    seen: set[str] = set()
    for path in live_files(folder):  # as the DAG factory reads them
        try:
            art = publish.read_artifact(path)
        except Exception as exc:  # noqa: BLE001 - a broken live file is reported by the DAG factory
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
                log.info("retry: %s.%s waits for resync #%s (run %s) to finish", workflow, name, busy["id"], busy["run_id"])
                continue
            ids = eligible(store, workflow, name, pol, now)
            if not ids:
                continue
            resync_id = actions.record_resync(store, workflow, name, ids, kind="retry")
            planned.append({"workflow": workflow, "touchpoint": name, "resync_id": resync_id, "count": len(ids),
                            "run_id": run_id_for(resync_id, now), "conf": {"resync_id": resync_id, "retry": True}})
            log.info("retry: %s.%s: resync #%d of %d failed records (max %d tries, wait %d min)", workflow, name,
                     resync_id, len(ids), pol.max_tries, pol.wait_minutes)
    if passed:
        with store.engine.begin() as conn:
            conn.execute(environments.update().where(environments.c.name.in_(sorted(passed))).values(last_retry_at=now))
    return planned


def trigger_kwargs(planned: list[dict]) -> list[dict]:
    """TriggerDagRunOperator arguments, one mapped task per planned retry run."""
    return [{"trigger_dag_id": p["workflow"], "trigger_run_id": p["run_id"], "conf": p["conf"],
             "note": f"automatic retry #{p['resync_id']}: {plural(p['count'], 'failed ' + p['touchpoint'] + ' record')}"}
            for p in planned]


def settle(store: Store, planned: list[dict], triggered: list[str]) -> list[dict]:
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

