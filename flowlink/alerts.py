"""Alerts: what happened (events), who hears of it (channels), and sending each alert once per channel.

Events and where they are detected:
    run_failed               a workflow run failed for another reason than failed records (the DAG's
                             on_failure_callback, plugins/notifiers/run.py -> ``run_ended_failed``)
    records_failed           records of a touchpoint failed in a run and wait in the resync bucket (its load step,
                             plugins/operators/base.py -> ``records_failed``: one alert per run and touchpoint)
    deployment_unsuccessful  the deployment tracker found a deployment Unsuccessful (plugins/sensors/deployment.py)
    agent_disconnected       an enabled environment's agent has been silent longer than its disconnect_alert_minutes
                             (dags/flowlink_alerts.py, every 5 minutes -> ``check_agents``)
    run_blocked              a scheduled run could not start because the previous run was still running
                             (dags/flowlink_alerts.py -> ``check_blocked_runs``)
and a daily summary per workflow (dags/flowlink_alerts.py, daily -> ``send_daily_summaries``).

Channels (table alert_channels) belong to an environment or to a workflow; a workflow's events go to its own
channels and to those of the environment it is deployed to. E-mail goes through Airflow's SMTP provider, webhooks
POST JSON to the URL of an Airflow connection (plugins/notifiers). Each alert is claimed in alerts_sent (unique per
channel and dedupe key) BEFORE it is sent, so it goes out once even when two processes notice the same thing; the
row then records whether sending worked. Nothing here raises into the caller: a broken channel is logged and
recorded.

Alerts name only what the store holds (workflow, run, record keys, counts and the reasons the bucket and snapshot
keep) plus links to where to look; every text is scrubbed of URL user info and of the passwords and tokens of
the workflow's connections. No Airflow import at module level.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from flowlink.errors import FlowlinkError
from flowlink.store import Store, feeds
from flowlink.store.db import utcnow
from flowlink.store.tables import alert_channels, alerts_sent, bucket, data_log, environments, steps

log = logging.getLogger(__name__)

RUN_FAILED = "run_failed"
RECORDS_FAILED = "records_failed"
DEPLOYMENT_UNSUCCESSFUL = "deployment_unsuccessful"
AGENT_DISCONNECTED = "agent_disconnected"
RUN_BLOCKED = "run_blocked"
EVENTS = (RUN_FAILED, RECORDS_FAILED, DEPLOYMENT_UNSUCCESSFUL, AGENT_DISCONNECTED, RUN_BLOCKED)
DAILY_SUMMARY = "daily_summary"  # not an event: channels with daily_summary set get it
KINDS = ("email", "webhook")
LISTED = 20  # records named in one alert; the bucket link shows them all
CHUNK = 500
RECORDS_MARK = "records failed and wait in the resync bucket"  # flowlink.sync.RecordsFailed's message

_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$|^[^@\s,;<>\"]+@localhost$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")


# ------------------------------------------------------------------ channels

def _events(events) -> list[str]:
    chosen = [e.strip() for e in (events.split(",") if isinstance(events, str) else events or []) if e.strip()]
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        raise FlowlinkError(f"unknown alert events {', '.join(unknown)}; events: {', '.join(EVENTS)}")
    return list(dict.fromkeys(chosen))


def _addresses(text: str) -> str:
    found = [a.strip() for a in re.split(r"[,;]", text or "") if a.strip()]
    bad = [a for a in found if not _EMAIL.match(a)]
    if not found or bad:
        raise FlowlinkError(f"give e-mail addresses separated by commas, got {', '.join(bad) or repr(text)}")
    return ",".join(dict.fromkeys(found))


def add_channel(store: Store, *, environment: str | None = None, workflow: str | None = None, email: str | None = None,
                webhook: str | None = None, events=None, daily_summary: bool = False,
                skip_empty_summary: bool = True) -> dict:
    """A channel of an environment or of a workflow: e-mail addresses, or an Airflow connection id (a webhook's
    URL and auth live in the connection, never here). events: [] = every event."""
    if bool(environment) == bool(workflow):
        raise FlowlinkError("a channel belongs to an environment or to a workflow: give exactly one")
    if bool(email) == bool(webhook):
        raise FlowlinkError("give either e-mail addresses or a webhook connection id")
    if environment:
        from flowlink import deployments

        deployments.environment(store, environment)  # NotFound names the command to list them
    if workflow and not _NAME.match(workflow):
        raise FlowlinkError(f"workflow name {workflow!r}: lower-case letters, digits and _, starting with a letter")
    if webhook:
        if "://" in webhook or not _CONN_ID.match(webhook):
            raise FlowlinkError(f"--webhook takes an Airflow connection id (its host is the URL, its login/password or "
                                f"extra token the auth), not {scrub(webhook[:80])!r}: credentials live in connections")
        kind, target = "webhook", webhook
    else:
        kind, target = "email", _addresses(email)
    row = dict(environment=environment or None, workflow=workflow or None, kind=kind, target=target,
               events=json.dumps(_events(events)), daily_summary=bool(daily_summary),
               skip_empty_summary=bool(skip_empty_summary), created_at=utcnow())
    with store.engine.begin() as conn:
        channel_id = conn.execute(alert_channels.insert().values(**row)).inserted_primary_key[0]
        feeds.add(store, "alert", f"alert channel #{channel_id} added: {_describe(dict(row, id=channel_id))}",
                  workflow or None, conn)
    return channel(store, channel_id)


def _decorate(row) -> dict:
    ch = dict(row._mapping)
    ch["events"] = json.loads(ch["events"] or "[]")
    return ch


def _describe(ch: dict) -> str:
    owner = f"workflow {ch['workflow']}" if ch["workflow"] else f"environment {ch['environment']}"
    events = json.loads(ch["events"]) if isinstance(ch["events"], str) else ch["events"]
    return (f"{ch['kind']} {ch['target']} for {owner}, events: {', '.join(events) or 'all'}"
            + (", daily summary" + ("" if ch["skip_empty_summary"] else " (also when empty)") if ch["daily_summary"] else ""))


def channel(store: Store, channel_id: int) -> dict:
    with store.engine.connect() as conn:
        row = conn.execute(select(alert_channels).where(alert_channels.c.id == channel_id)).first()
    if row is None:
        from flowlink.deployments import NotFound

        raise NotFound(f"no alert channel {channel_id} (flowlink alert list)")
    return _decorate(row)


def channels(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        return [_decorate(r) for r in conn.execute(select(alert_channels).order_by(alert_channels.c.id))]


def remove_channel(store: Store, channel_id: int) -> dict:
    ch = channel(store, channel_id)
    with store.engine.begin() as conn:
        conn.execute(alert_channels.delete().where(alert_channels.c.id == channel_id))
        feeds.add(store, "alert", f"alert channel #{channel_id} removed: {_describe(ch)}", ch["workflow"], conn)
    return ch


def channels_for(store: Store, workflow: str | None, environment: str | None, event: str) -> list[dict]:
    """The channels that hear of ``event``: the workflow's own and its environment's (daily_summary: those that
    asked for the summary)."""
    owners = []
    if workflow:
        owners.append(alert_channels.c.workflow == workflow)
    if environment:
        owners.append(alert_channels.c.environment == environment)
    if not owners:
        return []
    from sqlalchemy import or_

    with store.engine.connect() as conn:
        rows = [_decorate(r) for r in conn.execute(select(alert_channels).where(or_(*owners)).order_by(alert_channels.c.id))]
    if event == DAILY_SUMMARY:
        return [c for c in rows if c["daily_summary"]]
    return [c for c in rows if not c["events"] or event in c["events"]]


def sent(store: Store, *, event: str | None = None, workflow: str | None = None) -> list[dict]:
    """What was sent (or tried), oldest first."""
    q = select(alerts_sent).order_by(alerts_sent.c.id)
    if event:
        q = q.where(alerts_sent.c.event == event)
    if workflow:
        q = q.where(alerts_sent.c.workflow == workflow)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


# ------------------------------------------------------------------ messages

@dataclass
class Alert:
    """One alert: a subject and a text for people, a JSON payload for machines (both name where to look)."""

    event: str
    subject: str
    text: str
    payload: dict = field(default_factory=dict)

    def html(self) -> str:
        body = html.escape(self.text)
        for url in self.payload.get("links", {}).values():
            body = body.replace(html.escape(url), f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        return f'<pre style="font-family: monospace; white-space: pre-wrap">{body}</pre>'


def airflow_base_url() -> str:
    """Airflow's [api] base_url (the address users reach the UI at), read when an alert is built."""
    try:
        from airflow.sdk.configuration import conf

        return (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
    except Exception:  # no Airflow configuration here: links still show the paths
        return "http://localhost:8080"


def links(*, workflow: str | None = None, run_id: str | None = None, touchpoint: str | None = None,
          environment: str | None = None, dag_id: str | None = None, deployments_page: bool = False,
          environments_page: bool = False, snapshots_page: bool = False, bucket_page: bool = True) -> dict:
    """Where to look: the Airflow run, the Flowlink snapshot of the run, the bucket filtered to failed records."""
    base = airflow_base_url()
    ui = f"{base}/flowlink/ui"
    out = {}
    if run_id and (dag_id or workflow):
        out["airflow_run"] = f"{base}/dags/{quote(dag_id or workflow, safe='')}/runs/{quote(run_id, safe='')}"
    if run_id and workflow:
        out["snapshot"] = f"{ui}/snapshot?" + urlencode({"workflow": workflow, "run_id": run_id})
    if workflow and bucket_page and not deployments_page:
        query = {"workflow": workflow, **({"touchpoint": touchpoint} if touchpoint else {}), "status": "failed"}
        out["bucket"] = f"{ui}/bucket?" + urlencode(query)
    if snapshots_page and workflow:
        out["snapshots"] = f"{ui}/snapshots?" + urlencode({"workflow": workflow})
    if deployments_page:
        out["deployments"] = f"{ui}/deployments" + (f"?{urlencode({'environment': environment})}" if environment else "")
    if environments_page:
        out["environments"] = f"{ui}/environments"
    return out


_LINK_NAMES = {"airflow_run": "Airflow run", "snapshot": "Snapshot", "bucket": "Failed records (resync bucket)",
               "snapshots": "Runs (snapshots)", "deployments": "Deployments", "environments": "Environments"}


def message(event: str, *, subject: str, lines: list[str], facts: dict, link_map: dict, workflow: str | None = None,
            environment: str | None = None, secrets: tuple[str, ...] = ()) -> Alert:
    """An alert of ``event``: subject + text (the lines, then where to look) + a JSON payload, all scrubbed."""
    clean = lambda s: scrub(s, secrets)  # noqa: E731
    text = "\n".join(clean(x) for x in lines)
    if link_map:
        text += "\n\nWhere to look:\n" + "\n".join(f"  {_LINK_NAMES.get(k, k)}: {v}" for k, v in link_map.items())
    payload = {"event": event, "workflow": workflow, "environment": environment, "subject": clean(subject),
               "text": text, "facts": _scrub_tree(facts, secrets), "links": link_map,
               "at": utcnow().isoformat(timespec="seconds")}
    return Alert(event, clean(subject), text, payload)


def scrub(text, secrets: tuple[str, ...] = ()) -> str:
    """No credentials: URL user info becomes ***, and so does any of the given secrets."""
    text = _USERINFO.sub(r"\1***@", str(text))
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def _scrub_tree(value, secrets):
    if isinstance(value, dict):
        return {k: _scrub_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_tree(v, secrets) for v in value]
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return value


_SENSITIVE = ("pass", "secret", "token", "key", "auth", "credential", "cookie")


def connection_secrets(conn_ids) -> tuple[str, ...]:
    """The passwords and secret-looking extras of these Airflow connections, to scrub from alert texts."""
    found: set[str] = set()
    for conn_id in dict.fromkeys(c for c in conn_ids if c):
        try:
            from airflow.sdk import BaseHook

            conn = BaseHook.get_connection(conn_id)
        except Exception:  # not defined here, or no Airflow: nothing of it can be in the store either
            continue
        if conn.password:
            found.add(conn.password)
        try:
            extra = conn.extra_dejson
        except Exception:
            extra = {}

        def walk(value, sensitive=False):
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(v, sensitive or any(w in str(k).lower() for w in _SENSITIVE) or str(k).lower() == "headers")
            elif isinstance(value, list):
                for v in value:
                    walk(v, sensitive)
            elif sensitive and isinstance(value, str) and len(value) >= 4:
                found.add(value)

        walk(extra)
    return tuple(s for s in found if len(s) >= 4)


def _workflow_secrets(workflow: str | None) -> tuple[str, ...]:
    if not workflow:
        return ()
    try:
        from flowlink import publish

        art = publish.live(workflow)
        spec = art.spec if art else None
    except Exception:
        spec = None
    if not spec:
        return ()
    return connection_secrets([spec.get("source", {}).get("connection"), spec.get("target", {}).get("connection")])


# ------------------------------------------------------------------ sending

def send(store: Store, event: str, key: str, alert: Alert, *, workflow: str | None = None,
         environment: str | None = None, channels: list[dict] | None = None) -> list[dict]:
    """Send ``alert`` once per channel and dedupe key; returns what was done now ([] when every channel had it).
    Never raises: a failure is logged and recorded in alerts_sent."""
    done = []
    try:
        chosen = channels if channels is not None else channels_for(store, workflow, environment, event)
    except Exception as exc:
        log.error("alerts: cannot read the alert channels for %s: %s", event, exc)
        return done
    for ch in chosen:
        try:
            with store.engine.begin() as conn:
                row_id = conn.execute(alerts_sent.insert().values(
                    channel_id=ch["id"], event=event, workflow=workflow, environment=environment, dedupe_key=key[:255],
                    ok=False, message="sending", sent_at=utcnow())).inserted_primary_key[0]
        except IntegrityError:
            continue  # this channel has it already (or another process is sending it right now)
        except Exception as exc:
            log.error("alerts: cannot record %s for channel %s: %s", event, ch["id"], exc)
            continue
        ok, note = deliver(ch, alert)
        try:
            with store.engine.begin() as conn:
                conn.execute(alerts_sent.update().where(alerts_sent.c.id == row_id)
                             .values(ok=ok, message=note[:2000], sent_at=utcnow()))
        except Exception as exc:
            log.error("alerts: cannot record the outcome of %s for channel %s: %s", event, ch["id"], exc)
        (log.info if ok else log.error)("alerts: %s %s to channel %s (%s): %s", event, "sent" if ok else "NOT sent",
                                        ch["id"], ch["kind"], note)
        done.append({"channel_id": ch["id"], "kind": ch["kind"], "ok": ok, "message": note})
    return done


def deliver(ch: dict, alert: Alert) -> tuple[bool, str]:
    """Hand the alert to the channel's notifier; (ok, what happened). Never raises."""
    try:
        if ch["kind"] == "email":
            from notifiers.mail import FlowlinkEmailNotifier

            FlowlinkEmailNotifier(to=ch["target"].split(","), subject=alert.subject, text=alert.text,
                                  html=alert.html()).notify({})
            return True, f"mailed to {ch['target']}"
        from notifiers.webhook import FlowlinkWebhookNotifier

        status = FlowlinkWebhookNotifier(http_conn_id=ch["target"], payload=alert.payload).notify({})
        return True, f"posted to connection {ch['target']} ({status})"
    except Exception as exc:  # the channel is broken: say why, without the connection's secrets
        secrets = connection_secrets([ch["target"]] if ch["kind"] == "webhook" else [_smtp_conn_id()])
        return False, scrub(f"{type(exc).__name__}: {exc}", secrets)


def _smtp_conn_id() -> str:
    try:
        from airflow.sdk.configuration import conf

        return conf.get("email", "email_conn_id", fallback="smtp_default")
    except Exception:
        return "smtp_default"


def environment_of(store: Store, workflow: str) -> str | None:
    """The environment a workflow is deployed to: its live folder, else its last deployment."""
    from flowlink import settings

    folder = settings.live_dir()
    for path in sorted(folder.glob(f"*/{workflow}.json")):
        return path.parent.name
    try:
        from flowlink import deployments

        d = deployments.last(store, workflow)
    except Exception:
        d = None
    return d["environment"] if d else None


# ------------------------------------------------------------------ records that used up their tries

def exhausted(store: Store, workflow: str) -> list[dict]:
    """Failed records that reached the maximum number of tries (flowlink/retry.py: the workflow's policy)."""
    from flowlink.retry import exhausted as from_retry

    return from_retry(store, workflow=workflow)


# ------------------------------------------------------------------ event: records failed in a run

def _failed_records(store: Store, workflow: str, run_id: str, touchpoint: str | None = None) -> tuple[int, list[dict]]:
    """A run's failed records (of one touchpoint): how many, and the first LISTED with their reasons."""
    where = [data_log.c.run_id == run_id, data_log.c.workflow == workflow, data_log.c.status == "failed"]
    if touchpoint:
        where.append(data_log.c.touchpoint == touchpoint)
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(data_log).where(*where)).scalar_one()
        first = [dict(r._mapping) for r in conn.execute(
            select(data_log.c.touchpoint, data_log.c.step, data_log.c.source_id, data_log.c.tries, data_log.c.message)
            .where(*where).order_by(data_log.c.id).limit(LISTED))]
    return total, first


def _gave_up(store: Store, workflow: str, run_id: str, touchpoint: str) -> list[dict]:
    """The touchpoint's records that failed in this run and so reached their maximum number of tries."""
    limit = exhausted(store, workflow)
    candidates = {r["source_id"]: r for r in limit if r["touchpoint"] == touchpoint}
    if not candidates:
        return []
    failed: set[str] = set()
    ids = list(candidates)
    with store.engine.connect() as conn:
        for i in range(0, len(ids), CHUNK):
            failed.update(conn.execute(select(data_log.c.source_id).where(
                data_log.c.run_id == run_id, data_log.c.workflow == workflow, data_log.c.touchpoint == touchpoint,
                data_log.c.status == "failed", data_log.c.source_id.in_(ids[i:i + CHUNK]))).scalars())
    return [candidates[i] for i in ids if i in failed]


def records_failed(store: Store, workflow: str, run_id: str, touchpoint: str) -> list[dict]:
    """Records of a touchpoint failed in a run (its load step, before the task fails): one alert per run and
    touchpoint, with the counts, the first records and their reasons, and those at their maximum of tries.

    Sent by the step, not at the run's end: Airflow decides a run's state by its last tasks, so a touchpoint
    whose records failed is red while the run can end green (its later touchpoints loaded, or a resync or retry
    run skipped them). Never raises."""
    try:
        from flowlink.store import snapshots

        step = next((s for s in snapshots.run_steps(store, workflow, run_id)
                     if s["touchpoint"] == touchpoint and s["step"] == "load"), None)
        total, first = _failed_records(store, workflow, run_id, touchpoint)
        gave_up = _gave_up(store, workflow, run_id, touchpoint) if total else []
        environment = environment_of(store, workflow)
        subject = f"[Flowlink] {workflow}: {total} {touchpoint} records failed in run {run_id}"
        lines = [f"{total} {touchpoint} records of workflow {workflow} failed in run {run_id}"
                 + (f" (environment {environment})" if environment else "")
                 + ". They wait in the resync bucket as Failed; the other records were loaded."]
        if step:
            lines.append(f"Load: {step['count_in']} sent to the target, {step['count_out']} loaded, "
                         f"{step['count_failed']} rejected" + (f", {total - step['count_failed']} failed before the "
                                                               f"load" if total > step["count_failed"] else "") + ".")
        lines.append(f"Records ({len(first)} of {total}):")
        lines += [f"  {r['source_id']}: {r['step']}, try {r['tries']}: {r['message'] or ''}" for r in first]
        if gave_up:
            lines.append("")
            lines.append(f"{len(gave_up)} of them reached the maximum number of tries and stay Failed (no more "
                         f"automatic retries; resync them by hand once fixed):")
            lines += [f"  {r['source_id']} after {r['tries']} tries" for r in gave_up[:LISTED]]
        facts = {"run_id": run_id, "touchpoint": touchpoint, "failed_records": total,
                 "load": {k: step[k] for k in ("count_in", "count_out", "count_failed")} if step else None,
                 "records": first, "exhausted": [{k: r[k] for k in ("source_id", "tries")} for r in gave_up]}
        alert = message(RECORDS_FAILED, subject=subject, lines=lines, facts=facts,
                        link_map=links(workflow=workflow, run_id=run_id, touchpoint=touchpoint), workflow=workflow,
                        environment=environment, secrets=_workflow_secrets(workflow))
        return send(store, RECORDS_FAILED, f"records:{workflow}:{run_id}:{touchpoint}", alert, workflow=workflow,
                    environment=environment)
    except Exception as exc:
        log.error("alerts: records of %s.%s failed in run %s, but the alert failed: %s", workflow, touchpoint, run_id, exc)
        return []


# ------------------------------------------------------------------ event: a run failed

def run_ended_failed(store: Store, workflow: str, run_id: str, *, reason: str | None = None,
                     task_states: dict[str, str] | None = None, dag_id: str | None = None) -> list[dict]:
    """A workflow run failed (the DAG's on_failure_callback): run_failed, unless every failure in it was failed
    records, which their load steps have alerted already (records_failed)."""
    from flowlink.store import snapshots

    run_steps = snapshots.run_steps(store, workflow, run_id)
    record_steps = [s for s in run_steps if s["status"] == "failed" and RECORDS_MARK in (s["message"] or "")]
    other_steps = [s for s in run_steps if s["status"] in ("failed", "running") and s not in record_steps]
    record_tasks = {f"{s['touchpoint']}.{s['step']}" for s in record_steps}
    other_tasks = sorted(t for t, st in (task_states or {}).items() if st == "failed" and t not in record_tasks)
    if record_steps and not other_steps and not other_tasks:
        return []
    environment = environment_of(store, workflow)
    total, _ = _failed_records(store, workflow, run_id)
    subject = f"[Flowlink] {workflow}: run {run_id} failed"
    lines = [f"Run {run_id} of workflow {workflow}" + (f" (environment {environment})" if environment else "")
             + " failed" + (f" ({reason})" if reason else "") + "."]
    for s in other_steps:
        lines.append(f"  {s['touchpoint']}.{s['step']}: {s['status']}: {s['message'] or 'no message (the task stopped)'}")
    for t in other_tasks:
        if t not in {f"{s['touchpoint']}.{s['step']}" for s in other_steps}:
            lines.append(f"  {t}: failed before it recorded its step (see the task's log in Airflow)")
    if not other_steps and not other_tasks:
        lines.append("  No step recorded a failure: see the run in Airflow.")
    if total:
        lines.append(f"Besides, {total} records failed in this run and wait in the resync bucket.")
    facts = {"run_id": run_id, "reason": reason, "failed_records": total, "failed_tasks": other_tasks,
             "failed_steps": [{k: s[k] for k in ("touchpoint", "step", "status", "count_in", "count_out", "count_failed",
                                                  "message")} for s in other_steps]}
    alert = message(RUN_FAILED, subject=subject, lines=lines, facts=facts,
                    link_map=links(workflow=workflow, run_id=run_id, dag_id=dag_id, bucket_page=bool(total)),
                    workflow=workflow, environment=environment, secrets=_workflow_secrets(workflow))
    return send(store, RUN_FAILED, f"run_failed:{workflow}:{run_id}", alert, workflow=workflow, environment=environment)


# ------------------------------------------------------------------ event: a deployment became Unsuccessful

def deployment_unsuccessful(store: Store, d: dict) -> list[dict]:
    """The deployment tracker found deployment ``d`` Unsuccessful."""
    try:
        subject = (f"[Flowlink] {d['action']} of {d['workflow']} v{d['version']} to {d['environment']} is Unsuccessful")
        lines = [f"Deployment {d['id']}: {d['action']} of {d['workflow']} v{d['version']} to environment "
                 f"{d['environment']} is Unsuccessful: {d['message'] or 'no reason given'}.",
                 f"Try {d['tries']}, started {d['started_at']:%Y-%m-%d %H:%M:%S} UTC, wait till "
                 f"{d['wait_till']:%H:%M:%S} UTC.",
                 "The previous version keeps running. Once the agent is fixed, deploy again "
                 f"(flowlink deploy {d['workflow']}); the steps: flowlink deployment-log {d['workflow']}."]
        facts = {k: d.get(k) for k in ("id", "workflow", "environment", "action", "version", "tries", "started_at",
                                      "wait_till", "message")}
        alert = message(DEPLOYMENT_UNSUCCESSFUL, subject=subject, lines=lines, facts=facts,
                        link_map=links(environment=d["environment"], deployments_page=True),
                        workflow=d["workflow"], environment=d["environment"])
        return send(store, DEPLOYMENT_UNSUCCESSFUL, f"deployment:{d['id']}", alert, workflow=d["workflow"],
                    environment=d["environment"])
    except Exception as exc:
        log.error("alerts: deployment %s Unsuccessful, but the alert failed: %s", d.get("id"), exc)
        return []


# ------------------------------------------------------------------ event: an agent is disconnected

def check_agents(store: Store, now: dt.datetime | None = None) -> list[dict]:
    """Every enabled environment whose agent has been silent longer than its disconnect_alert_minutes: one alert
    per disconnection (the key is the last heartbeat: a new silence after the agent came back alerts again).
    An agent that never connected is not 'disconnected'."""
    now = now or utcnow()
    done = []
    with store.engine.connect() as conn:
        envs = [dict(r._mapping) for r in conn.execute(select(environments).where(environments.c.enabled.is_(True))
                                                       .order_by(environments.c.name))]
    for env in envs:
        beat, minutes = env["last_heartbeat"], env["disconnect_alert_minutes"]
        if beat is None or now - beat <= dt.timedelta(minutes=minutes):
            continue
        silent = int((now - beat).total_seconds() // 60)
        subject = f"[Flowlink] agent of {env['name']} disconnected for {silent} minutes"
        lines = [f"The agent of environment {env['name']} ({env['kind']}) has not been heard from since "
                 f"{beat:%Y-%m-%d %H:%M:%S} UTC: {silent} minutes (alert after {minutes}).",
                 "Deployments to it stay Pending until their wait till and then become Unsuccessful. Check that "
                 f"`flowlink agent --environment {env['name']}` runs and reaches the api-server's /flowlink."]
        facts = {"environment": env["name"], "kind": env["kind"], "last_heartbeat": beat, "silent_minutes": silent,
                 "alert_after_minutes": minutes}
        alert = message(AGENT_DISCONNECTED, subject=subject, lines=lines, facts=facts,
                        link_map=links(environments_page=True), environment=env["name"])
        done += send(store, AGENT_DISCONNECTED, f"agent:{env['name']}:{beat.isoformat()}", alert,
                     environment=env["name"])
    return done


# ------------------------------------------------------------------ event: a scheduled run could not start

def check_blocked_runs(store: Store, workflows: list[tuple[str, str | None, object]], *, paused, count_runs,
                       now: dt.datetime | None = None, grace: dt.timedelta = dt.timedelta(minutes=1),
                       lookback: dt.timedelta = dt.timedelta(hours=1), most: int = 60) -> list[dict]:
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
    done = []
    for workflow, environment, schedule in workflows:
        try:
            ticks = Ticks(schedule)
            candidates = []  # (run, the ticks during it): most runs end before the next tick and have none
            for run in snapshots.run_page(store, workflow, limit=50):
                if not (run["running_steps"] or (run["ended_at"] and run["ended_at"] >= now - lookback)):
                    continue
                end = now if run["running_steps"] else run["ended_at"]
                during, tick = [], ticks.next_tick_after(run["started_at"])
                while tick is not None and tick < end and tick <= now - grace and len(during) < most:
                    during.append(tick)
                    tick = ticks.next_tick_after(tick)
                if during:
                    candidates.append((run, during))
            wanted = {c["id"] for c in channels_for(store, workflow, environment, RUN_BLOCKED)}
            candidates = [(run, during) for run, during in candidates
                          if not wanted <= _had(store, f"blocked:{workflow}:{run['run_id']}")]
            if not wanted or not candidates or paused(workflow):  # Airflow is asked only about ticks during a run
                continue
            for run, during in candidates:
                blocked = [t for t in during if not count_runs(workflow, logical_dates=[t])]
                if blocked:
                    done += _blocked_alert(store, workflow, environment, run, blocked, now)
        except Exception as exc:
            log.warning("alerts: cannot tell whether runs of %s were blocked: %s", workflow, exc)
    return done


def _had(store: Store, key: str) -> set[int]:
    """The channels that have (or were sent) the alert with this dedupe key."""
    with store.engine.connect() as conn:
        return set(conn.execute(select(alerts_sent.c.channel_id).where(alerts_sent.c.dedupe_key == key)).scalars())


def _blocked_alert(store: Store, workflow: str, environment: str | None, run: dict, blocked: list, now) -> list[dict]:
    first = blocked[0]
    state = "is still running" if run["running_steps"] else f"ran until {run['ended_at']:%H:%M:%S} UTC"
    subject = f"[Flowlink] {workflow}: the run scheduled at {first:%Y-%m-%d %H:%M} UTC could not start"
    lines = [f"The scheduled run of workflow {workflow} at {first:%Y-%m-%d %H:%M:%S} UTC could not start: the previous "
             f"run {run['run_id']} (started {run['started_at']:%Y-%m-%d %H:%M:%S} UTC) {state}.",
             f"Ticks without a run so far: {len(blocked)} ("
             + ", ".join(f"{t:%H:%M}" for t in blocked[:LISTED]) + (", ..." if len(blocked) > LISTED else "") + ").",
             "Runs of a workflow never overlap and missed ticks are not caught up: the next run reads what they would "
             "have read. A run that often takes longer than the schedule's interval needs a longer interval, a "
             "smaller batch size or more workers."]
    facts = {"scheduled_for": first, "blocked_ticks": blocked[:LISTED], "blocked_count": len(blocked),
             "running_run_id": run["run_id"], "running_since": run["started_at"], "still_running": bool(run["running_steps"])}
    alert = message(RUN_BLOCKED, subject=subject, lines=lines, facts=facts,
                    link_map=links(workflow=workflow, run_id=run["run_id"], snapshots_page=True, bucket_page=False),
                    workflow=workflow, environment=environment)
    return send(store, RUN_BLOCKED, f"blocked:{workflow}:{run['run_id']}", alert, workflow=workflow,
                environment=environment)


# ------------------------------------------------------------------ the daily summary

def summary_counts(store: Store, workflow: str, since: dt.datetime, until: dt.datetime) -> dict:
    """What happened to a workflow in [since, until): runs (failed ones), records loaded, of them on a retry
    (a later try of a record that had failed: resync or automatic retry), record failures; and now: records
    Failed in the bucket, of them at the maximum of tries."""
    as_int = steps.c.count_in.type
    q = (select(steps.c.run_id, func.sum(func.cast(steps.c.status == "failed", as_int)))
         .where(steps.c.workflow == workflow, steps.c.started_at >= since, steps.c.started_at < until)
         .group_by(steps.c.run_id))
    with store.engine.connect() as conn:
        runs = dict(conn.execute(q).all())
        counts = {"successes": 0, "successful_retries": 0, "failures": 0}
        ids = list(runs)
        for i in range(0, len(ids), CHUNK):
            part = data_log.c.run_id.in_(ids[i:i + CHUNK])
            base = select(func.count()).select_from(data_log).where(part, data_log.c.workflow == workflow)
            counts["successes"] += conn.execute(base.where(data_log.c.step == "load", data_log.c.status == "success")).scalar_one()
            counts["successful_retries"] += conn.execute(base.where(data_log.c.step == "load", data_log.c.status == "success",
                                                                    data_log.c.tries > 1)).scalar_one()
            counts["failures"] += conn.execute(base.where(data_log.c.status == "failed")).scalar_one()
        failed_now = conn.execute(select(func.count()).select_from(bucket).where(
            bucket.c.workflow == workflow, bucket.c.status == "failed")).scalar_one()
    return {"runs": len(runs), "failed_runs": sum(1 for n in runs.values() if n), **counts, "failed_now": failed_now,
            "exhausted_now": len(exhausted(store, workflow)) if failed_now else 0,
            "since": since, "until": until}


def daily_summary(store: Store, workflow: str, environment: str | None, until: dt.datetime) -> list[dict]:
    """The last 24 hours of one workflow to the channels that asked for a daily summary; a channel with
    skip_empty_summary gets nothing when no run happened."""
    chosen = channels_for(store, workflow, environment, DAILY_SUMMARY)
    if not chosen:
        return []
    since = until - dt.timedelta(hours=24)
    c = summary_counts(store, workflow, since, until)
    empty = c["runs"] == 0
    chosen = [ch for ch in chosen if not (empty and ch["skip_empty_summary"])]
    if not chosen:
        return []
    subject = (f"[Flowlink] {workflow} daily summary: {c['successes']} succeeded ({c['successful_retries']} on a "
               f"retry), {c['failures']} failed")
    lines = [f"Workflow {workflow}" + (f" (environment {environment})" if environment else "")
             + f", 24 hours to {until:%Y-%m-%d %H:%M} UTC:",
             f"  runs: {c['runs']} ({c['failed_runs']} failed)",
             f"  records loaded: {c['successes']}",
             f"  of them successful retries (a later try of a record that had failed): {c['successful_retries']}",
             f"  record failures: {c['failures']}",
             f"Now: {c['failed_now']} records Failed in the resync bucket, {c['exhausted_now']} of them at the maximum "
             "number of tries (no more automatic retries)."]
    if empty:
        lines.insert(1, "  nothing ran.")
    alert = message(DAILY_SUMMARY, subject=subject, lines=lines, facts=c,
                    link_map=links(workflow=workflow, snapshots_page=True), workflow=workflow, environment=environment)
    return send(store, DAILY_SUMMARY, f"summary:{workflow}:{until:%Y-%m-%d}", alert, workflow=workflow,
                environment=environment, channels=chosen)


def send_daily_summaries(store: Store, workflows: list[tuple[str, str | None]], until: dt.datetime | None = None) -> list[dict]:
    """The daily summary of every (live) workflow, for the 24 hours before ``until``."""
    until = until or utcnow()
    done = []
    for workflow, environment in workflows:
        try:
            done += daily_summary(store, workflow, environment, until)
        except Exception as exc:
            log.error("alerts: the daily summary of %s failed: %s", workflow, exc)
    return done


def _live_graphs():
    from dag_factory.graph import read_graphs
    from flowlink import settings

    return read_graphs(settings.live_dir())[0]


def live_workflows() -> list[tuple[str, str | None]]:
    """(workflow, environment) of every live workflow."""
    return [(g.dag_id, g.environment) for g in _live_graphs()]


def scheduled_workflows() -> list[tuple[str, str | None, object]]:
    """(workflow, environment, schedule) of every live workflow with an automatic schedule."""
    return [(g.dag_id, g.environment, g.schedule) for g in _live_graphs() if g.schedule.sync == "auto"]
