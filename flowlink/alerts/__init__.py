"""Alerts: what happened (events), who hears of it (channels), and sending each alert once per channel.

Events (flowlink.states.AlertEvent) and where they are detected:
    run_failed               a workflow run failed for another reason than failed records (the DAG's
                             on_failure_callback, flowlink_airflow.notifiers.run -> ``run_ended_failed``, which also
                             adds the run's feeds entry, tag run_failed)
    records_failed           records of a touchpoint failed in a run and wait in the resync bucket (its load step,
                             flowlink_airflow.operators.base -> ``records_failed``: one alert per run and touchpoint)
    deployment_unsuccessful  the deployment tracker found a deployment Unsuccessful (flowlink_airflow.sensors)
    agent_disconnected       an enabled environment's agent has been silent longer than its disconnect_alert_minutes
                             (the flowlink_alerts DAG, every 5 minutes -> ``check_agents``)
    run_blocked              a scheduled run could not start because the previous run was still running
                             (the flowlink_alerts DAG -> ``check_blocked_runs``)
and a daily summary per workflow (the flowlink_daily_summary DAG -> ``send_daily_summaries``).

Channels (flowlink.store.alerts.Channel) belong to an environment or to a workflow; a workflow's events go to its
own channels and to those of the environment it is deployed to. E-mail goes through Airflow's SMTP connection,
webhooks POST JSON to the URL of an Airflow connection (flowlink.alerts.webhook). Each alert is claimed in
alerts_sent (unique per channel and dedupe key) BEFORE it is sent, so it goes out once even when two processes
notice the same thing; the row then records whether sending worked. Nothing here raises into the caller: a broken
channel is logged and recorded.

Alerts name only what the store holds (workflow, run, record keys, counts and the reasons the bucket and snapshot
keep) plus links to where to look; every text is scrubbed of URL user info and of the passwords and tokens of
the workflow's connections. Airflow is reached through flowlink.airflow_adapter only.

The parts: channels, messages (incl. scrubbing secrets), webhook, sending, events (records failed ... blocked
scheduled runs), summary (the daily summary), live (the live workflows). Callers use flowlink.alerts.
"""

from flowlink.alerts.channels import add_channel, channels_for, remove_channel
from flowlink.alerts.events import (
    check_agents,
    check_blocked_runs,
    deployment_unsuccessful,
    records_failed,
    run_ended_failed,
)
from flowlink.alerts.live import live_workflows, scheduled_workflows
from flowlink.alerts.messages import Alert, message, scrub
from flowlink.alerts.sending import Delivery, send
from flowlink.alerts.summary import send_daily_summaries
from flowlink.states import ALERT_EVENTS, AlertEvent, ChannelKind
from flowlink.store.alerts import Channel, SentAlert, channels, describe, sent

__all__ = [
    "AlertEvent",
    "ALERT_EVENTS",
    "ChannelKind",
    "Channel",
    "SentAlert",
    "Delivery",
    "Alert",
    "add_channel",
    "channels",
    "remove_channel",
    "channels_for",
    "sent",
    "describe",
    "message",
    "scrub",
    "send",
    "records_failed",
    "run_ended_failed",
    "deployment_unsuccessful",
    "check_agents",
    "check_blocked_runs",
    "send_daily_summaries",
    "live_workflows",
    "scheduled_workflows",
]
