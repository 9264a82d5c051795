"""Alerts: what happened (events), who hears of it (channels), and sending each alert once per channel.

Events and where they are detected:
    run_failed               a workflow run failed for another reason than failed records (the DAG's
                             on_failure_callback, plugins/notifiers/run.py -> ``run_ended_failed``, which also
                             adds the run's feeds entry, tag run_failed)
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

# The parts: constants (events, limits), channels, messages (incl. scrubbing secrets), sending, events (records
# failed ... blocked scheduled runs), summary (the daily summary), live (the live workflows). What callers use is
# re-exported here: they use flowlink.alerts.

from flowlink.alerts.channels import add_channel, channels, channels_for, describe, remove_channel, sent
from flowlink.alerts.constants import (AGENT_DISCONNECTED, DAILY_SUMMARY, DEPLOYMENT_UNSUCCESSFUL, EVENTS, RECORDS_FAILED,
                                       RUN_BLOCKED, RUN_FAILED)
from flowlink.alerts.events import (check_agents, check_blocked_runs, deployment_unsuccessful, records_failed,
                                    run_ended_failed)
from flowlink.alerts.live import live_workflows, scheduled_workflows
from flowlink.alerts.messages import Alert, message, scrub
from flowlink.alerts.sending import send
from flowlink.alerts.summary import send_daily_summaries

__all__ = [
    "RUN_FAILED", "RECORDS_FAILED", "DEPLOYMENT_UNSUCCESSFUL", "AGENT_DISCONNECTED", "RUN_BLOCKED", "EVENTS",
    "DAILY_SUMMARY",
    "add_channel", "channels", "remove_channel", "channels_for", "sent", "describe",
    "Alert", "message", "scrub", "send",
    "records_failed", "run_ended_failed", "deployment_unsuccessful", "check_agents", "check_blocked_runs",
    "send_daily_summaries", "live_workflows", "scheduled_workflows",
]
