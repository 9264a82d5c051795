"""The alerts' tables: channels (alert_channels), what was sent (alerts_sent), and what the alerts read from the data
log, the steps, the bucket and the environments."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, TypedDict

from sqlalchemy import Integer, cast, func, or_, select
from sqlalchemy.exc import IntegrityError

from flowlink.states import AlertEvent, ChannelKind, RecordStatus, Step, StepStatus
from flowlink.store import feeds
from flowlink.store.db import Store, utcnow
from flowlink.store.tables import alert_channels, alerts_sent, bucket, data_log, environments, steps
from flowlink.store.tables import feeds as feeds_table

CHUNK = 500  # ids per IN (...)


class Channel(TypedDict):
    """An alert channel of an environment or of a workflow (exactly one is set). events: [] = every event."""

    id: int
    environment: str | None
    workflow: str | None
    kind: ChannelKind
    target: str
    events: list[AlertEvent]
    daily_summary: bool
    skip_empty_summary: bool
    created_at: dt.datetime


class SentAlert(TypedDict):
    """An alert sent (or tried) to one channel; ``message`` says what happened."""

    id: int
    channel_id: int
    event: AlertEvent
    workflow: str | None
    environment: str | None
    dedupe_key: str
    ok: bool
    message: str | None
    sent_at: dt.datetime


class FailedRecord(TypedDict):
    touchpoint: str
    step: Step
    source_id: str
    tries: int
    message: str | None


class SummaryCounts(TypedDict):
    """A workflow's runs and records in a period (failed_now: Failed in the bucket at the time of asking)."""

    runs: int
    failed_runs: int
    successes: int
    successful_retries: int
    failures: int
    failed_now: int


def describe(ch: Channel) -> str:
    """A channel in words, for the CLI and the feeds."""
    owner = f"workflow {ch['workflow']}" if ch["workflow"] else f"environment {ch['environment']}"
    summary = (
        (", daily summary" + ("" if ch["skip_empty_summary"] else " (also when empty)")) if ch["daily_summary"] else ""
    )
    return f"{ch['kind']} {ch['target']} for {owner}, events: {', '.join(ch['events']) or 'all'}{summary}"


def _channel(row: Mapping[Any, Any]) -> Channel:
    return Channel(
        id=row["id"],
        environment=row["environment"],
        workflow=row["workflow"],
        kind=ChannelKind(row["kind"]),
        target=row["target"],
        events=[AlertEvent(e) for e in json.loads(row["events"] or "[]")],
        daily_summary=bool(row["daily_summary"]),
        skip_empty_summary=bool(row["skip_empty_summary"]),
        created_at=row["created_at"],
    )


# ------------------------------------------------------------------ channels


def add_channel(
    store: Store,
    *,
    environment: str | None,
    workflow: str | None,
    kind: ChannelKind,
    target: str,
    events: list[AlertEvent],
    daily_summary: bool,
    skip_empty_summary: bool,
) -> Channel:
    """Add a channel and its feeds entry (tag alert), in one transaction."""
    row: dict[str, Any] = dict(
        environment=environment,
        workflow=workflow,
        kind=kind.value,
        target=target,
        events=json.dumps([e.value for e in events]),
        daily_summary=daily_summary,
        skip_empty_summary=skip_empty_summary,
        created_at=utcnow(),
    )
    with store.engine.begin() as conn:
        channel_id = conn.execute(alert_channels.insert().values(**row).returning(alert_channels.c.id)).scalar_one()
        added = _channel({**row, "id": channel_id})
        feeds.add(store, "alert", f"alert channel #{channel_id} added: {describe(added)}", workflow, conn)
    return added


def channel(store: Store, channel_id: int) -> Channel | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(alert_channels).where(alert_channels.c.id == channel_id)).mappings().first()
    return _channel(row) if row is not None else None


def channels(store: Store) -> list[Channel]:
    with store.engine.connect() as conn:
        return [_channel(r) for r in conn.execute(select(alert_channels).order_by(alert_channels.c.id)).mappings()]


def remove_channel(store: Store, ch: Channel) -> None:
    """Remove a channel and add its feeds entry, in one transaction."""
    with store.engine.begin() as conn:
        conn.execute(alert_channels.delete().where(alert_channels.c.id == ch["id"]))
        feeds.add(store, "alert", f"alert channel #{ch['id']} removed: {describe(ch)}", ch["workflow"], conn)


def channels_of(store: Store, workflow: str | None, environment: str | None) -> list[Channel]:
    """The workflow's own channels and its environment's."""
    owners = []
    if workflow:
        owners.append(alert_channels.c.workflow == workflow)
    if environment:
        owners.append(alert_channels.c.environment == environment)
    if not owners:
        return []
    with store.engine.connect() as conn:
        return [
            _channel(r)
            for r in conn.execute(select(alert_channels).where(or_(*owners)).order_by(alert_channels.c.id)).mappings()
        ]


# ------------------------------------------------------------------ what was sent


def claim(
    store: Store, channel_id: int, event: AlertEvent, key: str, *, workflow: str | None, environment: str | None
) -> int | None:
    """Claim the alert with this dedupe key for the channel, before it is sent (the row says "sending"); its row
    id, or None when the channel has it already (or another process is sending it right now)."""
    try:
        with store.engine.begin() as conn:
            return conn.execute(
                alerts_sent.insert()
                .values(
                    channel_id=channel_id,
                    event=event.value,
                    workflow=workflow,
                    environment=environment,
                    dedupe_key=key[:255],
                    ok=False,
                    message="sending",
                    sent_at=utcnow(),
                )
                .returning(alerts_sent.c.id)
            ).scalar_one()
    except IntegrityError:
        return None


def record_outcome(store: Store, sent_id: int, ok: bool, note: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            alerts_sent.update().where(alerts_sent.c.id == sent_id).values(ok=ok, message=note[:2000], sent_at=utcnow())
        )


def sent(store: Store, *, event: AlertEvent | None = None, workflow: str | None = None) -> list[SentAlert]:
    """What was sent (or tried), oldest first."""
    q = select(alerts_sent).order_by(alerts_sent.c.id)
    if event:
        q = q.where(alerts_sent.c.event == event.value)
    if workflow:
        q = q.where(alerts_sent.c.workflow == workflow)
    with store.engine.connect() as conn:
        return [
            SentAlert(
                id=r["id"],
                channel_id=r["channel_id"],
                event=AlertEvent(r["event"]),
                workflow=r["workflow"],
                environment=r["environment"],
                dedupe_key=r["dedupe_key"],
                ok=bool(r["ok"]),
                message=r["message"],
                sent_at=r["sent_at"],
            )
            for r in conn.execute(q).mappings()
        ]


def had(store: Store, key: str) -> set[int]:
    """The channels that have (or were sent) the alert with this dedupe key."""
    with store.engine.connect() as conn:
        return set(conn.execute(select(alerts_sent.c.channel_id).where(alerts_sent.c.dedupe_key == key)).scalars())


# ------------------------------------------------------------------ what the alerts tell


def failed_records(
    store: Store, workflow: str, run_id: str, touchpoint: str | None = None, first: int = 20
) -> tuple[int, list[FailedRecord]]:
    """A run's failed records (of one touchpoint): how many, and the first ``first`` with their reasons."""
    where = [data_log.c.run_id == run_id, data_log.c.workflow == workflow, data_log.c.status == RecordStatus.FAILED]
    if touchpoint:
        where.append(data_log.c.touchpoint == touchpoint)
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(data_log).where(*where)).scalar_one()
        rows = conn.execute(
            select(data_log.c.touchpoint, data_log.c.step, data_log.c.source_id, data_log.c.tries, data_log.c.message)
            .where(*where)
            .order_by(data_log.c.id)
            .limit(first)
        ).mappings()
        listed = [
            FailedRecord(
                touchpoint=r["touchpoint"],
                step=Step(r["step"]),
                source_id=r["source_id"],
                tries=r["tries"],
                message=r["message"],
            )
            for r in rows
        ]
    return total, listed


def failed_in_run(store: Store, workflow: str, run_id: str, touchpoint: str, source_ids: list[str]) -> set[str]:
    """Those of ``source_ids`` that failed in this run."""
    found: set[str] = set()
    with store.engine.connect() as conn:
        for i in range(0, len(source_ids), CHUNK):
            found.update(
                conn.execute(
                    select(data_log.c.source_id).where(
                        data_log.c.run_id == run_id,
                        data_log.c.workflow == workflow,
                        data_log.c.touchpoint == touchpoint,
                        data_log.c.status == RecordStatus.FAILED,
                        data_log.c.source_id.in_(source_ids[i : i + CHUNK]),
                    )
                ).scalars()
            )
    return found


def enabled_environments(store: Store) -> list[dict[str, Any]]:
    """The enabled environments' rows (name, kind, last_heartbeat, disconnect_alert_minutes, ...), by name."""
    with store.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(environments).where(environments.c.enabled.is_(True)).order_by(environments.c.name)
            ).mappings()
        ]


def summary_counts(store: Store, workflow: str, since: dt.datetime, until: dt.datetime) -> SummaryCounts:
    """What happened to a workflow in [since, until): runs (failed ones: a step failed), records loaded, of them on
    a retry (a later try of a record that had failed), record failures; and records Failed in the bucket now."""
    q = (
        select(steps.c.run_id, func.sum(cast(steps.c.status == StepStatus.FAILED, Integer)))
        .where(steps.c.workflow == workflow, steps.c.started_at >= since, steps.c.started_at < until)
        .group_by(steps.c.run_id)
    )
    successes = successful_retries = failures = 0
    with store.engine.connect() as conn:
        runs: dict[str, int] = {run_id: failed or 0 for run_id, failed in conn.execute(q).all()}
        ids = list(runs)
        for i in range(0, len(ids), CHUNK):
            base = (
                select(func.count())
                .select_from(data_log)
                .where(data_log.c.run_id.in_(ids[i : i + CHUNK]), data_log.c.workflow == workflow)
            )
            loaded = base.where(data_log.c.step == Step.LOAD, data_log.c.status == RecordStatus.SUCCESS)
            successes += conn.execute(loaded).scalar_one()
            successful_retries += conn.execute(loaded.where(data_log.c.tries > 1)).scalar_one()
            failures += conn.execute(base.where(data_log.c.status == RecordStatus.FAILED)).scalar_one()
        failed_now = conn.execute(
            select(func.count())
            .select_from(bucket)
            .where(bucket.c.workflow == workflow, bucket.c.status == RecordStatus.FAILED)
        ).scalar_one()
    return SummaryCounts(
        runs=len(runs),
        failed_runs=sum(1 for n in runs.values() if n),
        successes=successes,
        successful_retries=successful_retries,
        failures=failures,
        failed_now=failed_now,
    )


def add_feed_once(store: Store, tag: str, text: str, workflow: str) -> None:
    """Add the feeds entry unless the workflow has this very entry already (a callback that comes twice)."""
    with store.engine.begin() as conn:
        there = conn.execute(
            select(feeds_table.c.id).where(
                feeds_table.c.workflow == workflow, feeds_table.c.tag == tag, feeds_table.c.message == text
            )
        ).first()
        if there is None:
            feeds.add(store, tag, text, workflow, conn)
