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

# The parts, in the order of the sections of the former flowlink/alerts.py: constants (events, limits), channels,
# messages (incl. scrubbing secrets), sending, events (records failed ... blocked scheduled runs, and exhausted),
# summary (the daily summary), live (the live workflows). Every name is re-exported here: callers use flowlink.alerts.

from flowlink.alerts.constants import (AGENT_DISCONNECTED, CHUNK, DAILY_SUMMARY, DEPLOYMENT_UNSUCCESSFUL, EVENTS, KINDS,
                                       LISTED, RECORDS_FAILED, RECORDS_MARK, RUN_BLOCKED, RUN_FAILED)
from flowlink.alerts.messages import (_LINK_NAMES, _SENSITIVE, _USERINFO, Alert, _scrub_tree, _workflow_secrets,
                                      airflow_base_url, connection_secrets, links, message, scrub)
from flowlink.alerts.channels import (_CONN_ID, _EMAIL, _NAME, _addresses, _decorate, _describe, _events, add_channel,
                                      channel, channels, channels_for, remove_channel, sent)
from flowlink.alerts.sending import _smtp_conn_id, deliver, environment_of, log, send
from flowlink.alerts.events import (_blocked_alert, _failed_records, _gave_up, _had, check_agents, check_blocked_runs,
                                    deployment_unsuccessful, exhausted, records_failed, run_ended_failed)
from flowlink.alerts.summary import daily_summary, send_daily_summaries, summary_counts
from flowlink.alerts.live import _live_graphs, live_workflows, scheduled_workflows

__all__ = [
    "RUN_FAILED", "RECORDS_FAILED", "DEPLOYMENT_UNSUCCESSFUL", "AGENT_DISCONNECTED", "RUN_BLOCKED", "EVENTS",
    "DAILY_SUMMARY", "KINDS", "LISTED", "CHUNK", "RECORDS_MARK",
    "add_channel", "channel", "channels", "remove_channel", "channels_for", "sent",
    "Alert", "airflow_base_url", "links", "message", "scrub", "connection_secrets",
    "send", "deliver", "environment_of",
    "exhausted", "records_failed", "run_ended_failed", "deployment_unsuccessful", "check_agents", "check_blocked_runs",
    "summary_counts", "daily_summary", "send_daily_summaries",
    "live_workflows", "scheduled_workflows",
]
