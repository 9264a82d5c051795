"""Sending an alert once per channel and dedupe key, through the notifiers (plugins/notifiers)."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from flowlink.alerts.channels import channels_for
from flowlink.alerts.messages import Alert, connection_secrets, scrub
from flowlink.store import Store
from flowlink.store.db import utcnow
from flowlink.store.tables import alerts_sent

log = logging.getLogger(__package__)  # "flowlink.alerts", as before the split


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
            from flowlink_airflow.notifiers.mail import FlowlinkEmailNotifier

            FlowlinkEmailNotifier(to=ch["target"].split(","), subject=alert.subject, text=alert.text,
                                  html=alert.html()).notify({})
            return True, f"mailed to {ch['target']}"
        from flowlink_airflow.notifiers.webhook import FlowlinkWebhookNotifier

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
