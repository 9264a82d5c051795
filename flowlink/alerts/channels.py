"""Alert channels: who hears of which event. Checked here, kept in the store (flowlink.store.alerts)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flowlink.alerts.messages import scrub
from flowlink.errors import FlowlinkError
from flowlink.states import ALERT_EVENTS, AlertEvent, ChannelKind
from flowlink.store import Store
from flowlink.store import alerts as stored
from flowlink.store.alerts import Channel

_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$|^[^@\s,;<>\"]+@localhost$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _events(events: str | Iterable[str] | None) -> list[AlertEvent]:
    chosen = [e.strip() for e in (events.split(",") if isinstance(events, str) else events or []) if e.strip()]
    unknown = [e for e in chosen if e not in ALERT_EVENTS]
    if unknown:
        raise FlowlinkError(f"unknown alert events {', '.join(unknown)}; events: {', '.join(ALERT_EVENTS)}")
    return [AlertEvent(e) for e in dict.fromkeys(chosen)]


def _addresses(text: str) -> str:
    found = [a.strip() for a in re.split(r"[,;]", text) if a.strip()]
    bad = [a for a in found if not _EMAIL.match(a)]
    if not found or bad:
        raise FlowlinkError(f"give e-mail addresses separated by commas, got {', '.join(bad) or repr(text)}")
    return ",".join(dict.fromkeys(found))


def add_channel(
    store: Store,
    *,
    environment: str | None = None,
    workflow: str | None = None,
    email: str | None = None,
    webhook: str | None = None,
    events: str | Iterable[str] | None = None,
    daily_summary: bool = False,
    skip_empty_summary: bool = True,
) -> Channel:
    """A channel of an environment or of a workflow: e-mail addresses, or an Airflow connection id (a webhook's
    URL and auth live in the connection, never here). events: none = every event."""
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
            raise FlowlinkError(
                f"--webhook takes an Airflow connection id (its host is the URL, its login/password or "
                f"extra token the auth), not {scrub(webhook[:80])!r}: credentials live in connections"
            )
        kind, target = ChannelKind.WEBHOOK, webhook
    else:
        kind, target = ChannelKind.EMAIL, _addresses(email or "")
    return stored.add_channel(
        store,
        environment=environment or None,
        workflow=workflow or None,
        kind=kind,
        target=target,
        events=_events(events),
        daily_summary=bool(daily_summary),
        skip_empty_summary=bool(skip_empty_summary),
    )


def channel(store: Store, channel_id: int) -> Channel:
    found = stored.channel(store, channel_id)
    if found is None:
        from flowlink.deployments import NotFound

        raise NotFound(f"no alert channel {channel_id} (flowlink alert list)")
    return found


def remove_channel(store: Store, channel_id: int) -> Channel:
    ch = channel(store, channel_id)
    stored.remove_channel(store, ch)
    return ch


def channels_for(store: Store, workflow: str | None, environment: str | None, event: AlertEvent) -> list[Channel]:
    """The channels that hear of ``event``: the workflow's own and its environment's (DAILY_SUMMARY: those that
    asked for the summary)."""
    found = stored.channels_of(store, workflow, environment)
    if event == AlertEvent.DAILY_SUMMARY:
        return [c for c in found if c["daily_summary"]]
    return [c for c in found if not c["events"] or event in c["events"]]
