"""Alert channels: who hears of which event (table alert_channels), and what was sent (alerts_sent)."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from flowlink.alerts.constants import DAILY_SUMMARY, EVENTS
from flowlink.alerts.messages import scrub
from flowlink.errors import FlowlinkError
from flowlink.store import Store, feeds
from flowlink.store.db import utcnow
from flowlink.store.tables import alert_channels, alerts_sent

_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$|^[^@\s,;<>\"]+@localhost$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


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
        feeds.add(store, "alert", f"alert channel #{channel_id} added: {describe(dict(row, id=channel_id))}",
                  workflow or None, conn)
    return channel(store, channel_id)


def _decorate(row) -> dict:
    ch = dict(row._mapping)
    ch["events"] = json.loads(ch["events"] or "[]")
    return ch


def describe(ch: dict) -> str:
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
        feeds.add(store, "alert", f"alert channel #{channel_id} removed: {describe(ch)}", ch["workflow"], conn)
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
