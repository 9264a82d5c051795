"""Sending an alert once per channel and dedupe key: e-mail through Airflow's SMTP connection, webhooks as JSON."""

from __future__ import annotations

import logging
from typing import TypedDict

from flowlink import airflow_adapter
from flowlink.alerts.channels import channels_for
from flowlink.alerts.messages import Alert, connection_secrets, scrub
from flowlink.alerts.webhook import post
from flowlink.states import AlertEvent, ChannelKind
from flowlink.store import Store
from flowlink.store import alerts as stored
from flowlink.store.alerts import Channel

log = logging.getLogger("flowlink.alerts")


class Delivery(TypedDict):
    """What sending one alert to one channel did."""

    channel_id: int
    kind: ChannelKind
    ok: bool
    message: str


def send(
    store: Store,
    event: AlertEvent,
    key: str,
    alert: Alert,
    *,
    workflow: str | None = None,
    environment: str | None = None,
    channels: list[Channel] | None = None,
) -> list[Delivery]:
    """Send ``alert`` once per channel and dedupe key; returns what was done now ([] when every channel had it).
    Each alert is claimed in alerts_sent before it is sent. Never raises: a failure is logged and recorded."""
    done: list[Delivery] = []
    try:
        chosen = channels if channels is not None else channels_for(store, workflow, environment, event)
    except Exception as exc:
        log.error("alerts: cannot read the alert channels for %s: %s", event, exc)
        return done
    for ch in chosen:
        try:
            sent_id = stored.claim(store, ch["id"], event, key, workflow=workflow, environment=environment)
        except Exception as exc:
            log.error("alerts: cannot record %s for channel %s: %s", event, ch["id"], exc)
            continue
        if sent_id is None:
            continue  # this channel has it already (or another process is sending it right now)
        ok, note = deliver(ch, alert)
        try:
            stored.record_outcome(store, sent_id, ok, note)
        except Exception as exc:
            log.error("alerts: cannot record the outcome of %s for channel %s: %s", event, ch["id"], exc)
        (log.info if ok else log.error)(
            "alerts: %s %s to channel %s (%s): %s", event, "sent" if ok else "NOT sent", ch["id"], ch["kind"], note
        )
        done.append(Delivery(channel_id=ch["id"], kind=ch["kind"], ok=ok, message=note))
    return done


def deliver(ch: Channel, alert: Alert) -> tuple[bool, str]:
    """Send the alert to the channel; (ok, what happened). Never raises."""
    try:
        if ch["kind"] == ChannelKind.EMAIL:
            airflow_adapter.send_email(ch["target"].split(","), alert.subject, alert.html())
            return True, f"mailed to {ch['target']}"
        status = post(ch["target"], alert.payload)
        return True, f"posted to connection {ch['target']} ({status})"
    except Exception as exc:  # the channel is broken: say why, without the connection's secrets
        secrets = connection_secrets([ch["target"]] if ch["kind"] == ChannelKind.WEBHOOK else [_smtp_conn_id()])
        return False, scrub(f"{type(exc).__name__}: {exc}", secrets)


def _smtp_conn_id() -> str:
    try:
        return airflow_adapter.smtp_conn_id()
    except Exception:
        return "smtp_default"


def environment_of(store: Store, workflow: str) -> str | None:
    """The environment a workflow is deployed to: its live folder, else its last deployment."""
    from flowlink import settings

    for path in sorted(settings.live_dir().glob(f"*/{workflow}.json")):
        return path.parent.name
    try:
        from flowlink import deployments

        d = deployments.last(store, workflow)
    except Exception:
        d = None
    return d["environment"] if d else None
