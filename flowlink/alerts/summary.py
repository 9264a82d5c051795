"""The daily summary per workflow."""

from __future__ import annotations

import datetime as dt
import logging

from flowlink.alerts.channels import channels_for
from flowlink.alerts.events import exhausted
from flowlink.alerts.messages import links, message
from flowlink.alerts.sending import Delivery, send
from flowlink.errors import plural
from flowlink.states import AlertEvent
from flowlink.store import Store
from flowlink.store import alerts as stored
from flowlink.store.db import utcnow

log = logging.getLogger("flowlink.alerts")


def daily_summary(store: Store, workflow: str, environment: str | None, until: dt.datetime) -> list[Delivery]:
    """The last 24 hours of one workflow to the channels that asked for a daily summary; a channel with
    skip_empty_summary gets nothing when no run happened."""
    chosen = channels_for(store, workflow, environment, AlertEvent.DAILY_SUMMARY)
    if not chosen:
        return []
    since = until - dt.timedelta(hours=24)
    c = stored.summary_counts(store, workflow, since, until)
    exhausted_now = len(exhausted(store, workflow)) if c["failed_now"] else 0
    empty = c["runs"] == 0
    chosen = [ch for ch in chosen if not (empty and ch["skip_empty_summary"])]
    if not chosen:
        return []
    subject = (
        f"[Flowlink] {workflow} daily summary: {c['successes']} succeeded ({c['successful_retries']} on a "
        f"retry), {c['failures']} failed"
    )
    lines = [
        f"Workflow {workflow}"
        + (f" (environment {environment})" if environment else "")
        + f", 24 hours to {until:%Y-%m-%d %H:%M} UTC:",
        f"  runs: {c['runs']} ({c['failed_runs']} failed)",
        f"  records loaded: {c['successes']}",
        f"  of them successful retries (a later try of a record that had failed): {c['successful_retries']}",
        f"  record failures: {c['failures']}",
        f"Now: {plural(c['failed_now'], 'record')} Failed in the resync bucket, {exhausted_now} of them at the "
        "maximum number of tries (no more automatic retries).",
    ]
    if empty:
        lines.insert(1, "  nothing ran.")
    facts = {**c, "exhausted_now": exhausted_now, "since": since, "until": until}
    alert = message(
        AlertEvent.DAILY_SUMMARY,
        subject=subject,
        lines=lines,
        facts=facts,
        link_map=links(workflow=workflow, snapshots_page=True),
        workflow=workflow,
        environment=environment,
    )
    return send(
        store,
        AlertEvent.DAILY_SUMMARY,
        f"summary:{workflow}:{until:%Y-%m-%d}",
        alert,
        workflow=workflow,
        environment=environment,
        channels=chosen,
    )


def send_daily_summaries(
    store: Store, workflows: list[tuple[str, str | None]], until: dt.datetime | None = None
) -> list[Delivery]:
    """The daily summary of every (live) workflow, for the 24 hours before ``until``."""
    until = until or utcnow()
    done: list[Delivery] = []
    for workflow, environment in workflows:
        try:
            done += daily_summary(store, workflow, environment, until)
        except Exception as exc:
            log.error("alerts: the daily summary of %s failed: %s", workflow, exc)
    return done
