"""The store's tables (SQLAlchemy Core). Schema changes go through an Alembic migration too."""

import datetime as dt

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy import DateTime as _DateTime


class DateTime(TypeDecorator):
    """Times are stored in UTC and always come back time-zone aware (SQLite keeps no zone)."""

    impl = _DateTime(timezone=True)
    cache_ok = True

    def __init__(self, timezone: bool = True):
        super().__init__()

    def process_bind_param(self, value, dialect):
        return value.astimezone(dt.UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


metadata = MetaData()

bucket = Table(
    "bucket",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow", String(63), nullable=False),
    Column("touchpoint", String(63), nullable=False),
    Column("source_id", String(255), nullable=False),
    Column("destination_id", String(255)),
    Column("status", String(16), nullable=False),  # unprocessed | success | failed | skipped
    Column("message", Text),
    Column("tries", Integer, nullable=False, default=0),
    Column("last_run", String(250)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("workflow", "touchpoint", "source_id", name="uq_bucket_record"),
    Index("ix_bucket_status", "workflow", "touchpoint", "status"),
    Index("ix_bucket_updated", "workflow", "updated_at"),
)

watermarks = Table(
    "watermarks",
    metadata,
    Column("workflow", String(63), primary_key=True),
    Column("touchpoint", String(63), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("run_id", String(250)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

steps = Table(
    "snapshot_steps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow", String(63), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("version", Integer),
    Column("touchpoint", String(63), nullable=False),
    Column("step", String(16), nullable=False),  # extract | transform | load
    Column("status", String(16), nullable=False),  # running | success | failed | skipped
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("count_in", Integer, nullable=False, default=0),
    Column("count_out", Integer, nullable=False, default=0),
    Column("count_failed", Integer, nullable=False, default=0),
    Column("files", Text, nullable=False, default="[]"),  # JSON list of batch files
    Column("message", Text),
    Column("failure", String(8)),  # a failed step's cause: records (failed records, see the bucket) | step (as a whole)
    Column("hostname", String(255)),  # the worker that ran the step
    Column("queue", String(63)),  # its queue: the environment the workflow is deployed to
    UniqueConstraint("workflow", "run_id", "touchpoint", "step", name="uq_snapshot_step"),
    Index("ix_snapshot_run", "run_id"),
)

data_log = Table(
    "data_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow", String(63), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("touchpoint", String(63), nullable=False),
    Column("step", String(16), nullable=False),
    Column("source_id", String(255), nullable=False),
    Column("destination_id", String(255)),
    Column("status", String(16), nullable=False),
    Column("message", Text),
    Column("tries", Integer, nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Index("ix_data_log_run", "run_id", "touchpoint"),
)

feeds = Table(
    "feeds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("tag", String(32), nullable=False),  # publish | schedule | resync | ...
    Column("workflow", String(63)),
    Column("message", Text, nullable=False),
    Index("ix_feeds_at", "at"),
)

resyncs = Table(
    "resyncs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow", String(63), nullable=False),
    Column("touchpoint", String(63), nullable=False),
    Column("source_ids", Text, nullable=False),  # JSON list
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(250)),
    Column("kind", String(8), nullable=False, server_default="manual"),  # manual | retry (automatic)
)

environments = Table(
    "environments",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("kind", String(16), nullable=False),  # cloud | on-premise
    Column("is_primary", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("pending_timeout", Integer, nullable=False),  # minutes, 5-60
    Column("last_heartbeat", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # automatic retry of Failed records (a workflow's spec may override these)
    Column("retry_max_tries", Integer, nullable=False, server_default="4"),  # the sync and 3 retries
    Column("retry_wait_minutes", Integer, nullable=False, server_default="60"),  # before a failed record is eligible
    Column("retry_batch_size", Integer, nullable=False, server_default="500"),  # records per retry run
    Column("retry_every", String(8), nullable=False, server_default="hourly"),  # hourly | daily
    Column("last_retry_at", DateTime(timezone=True)),
    Column("disconnect_alert_minutes", Integer, nullable=False, server_default="15"),  # agent silent this long: alert
)

agent_tokens = Table(
    "agent_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("environment", String(63), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256; the token itself is never stored
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow", String(63), nullable=False),
    Column("environment", String(63), nullable=False),
    Column("action", String(16), nullable=False),  # deploy | undeploy
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | successful | unsuccessful
    Column("tries", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("pending_timeout", Integer, nullable=False),
    Column("wait_till", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("message", Text),
    Index("ix_deployments_workflow", "workflow", "environment"),
)

deployment_log = Table(
    "deployment_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("deployment_id", Integer, nullable=False),
    Column("step", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # done | failed | info
    Column("at", DateTime(timezone=True), nullable=False),
    Column("message", Text),
    Index("ix_deployment_log", "deployment_id"),
)


alert_channels = Table(
    "alert_channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("environment", String(63)),  # exactly one of environment and workflow is set
    Column("workflow", String(63)),
    Column("kind", String(8), nullable=False),  # email | webhook
    Column("target", Text, nullable=False),  # email: addresses, comma separated; webhook: an Airflow connection id
    Column("events", Text, nullable=False, server_default="[]"),  # JSON list of event names; [] = every event
    Column("daily_summary", Boolean, nullable=False, server_default=false()),
    Column("skip_empty_summary", Boolean, nullable=False, server_default=true()),  # no summary when nothing happened
    Column("created_at", DateTime(timezone=True), nullable=False),
)

alerts_sent = Table(
    "alerts_sent",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel_id", Integer, nullable=False),
    Column("event", String(32), nullable=False),
    Column("workflow", String(63)),
    Column("environment", String(63)),
    Column("dedupe_key", String(255), nullable=False),  # one alert per channel and key (e.g. one per disconnection)
    Column("ok", Boolean, nullable=False),
    Column("message", Text),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("channel_id", "dedupe_key", name="uq_alert_once"),
)

tries = Table(
    "tries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow", String(63), nullable=False),
    Column("version", Integer),  # the published version tried; NULL: a draft
    Column("touchpoint", String(63), nullable=False),
    Column("requested_by", String(255), nullable=False),  # the Airflow user: only they read the result
    Column("environment", String(63)),  # whose worker queue fetches the samples; NULL: the default queue
    Column("subject", Text, nullable=False),  # JSON {"spec", "stylesheets"}: what the worker tries
    Column("sample_limit", Integer, nullable=False),
    Column("ids", Text),  # JSON list of source ids, or NULL: the newest records
    Column("run_id", String(250)),  # the flowlink_try run fetching it
    Column("status", String(8), nullable=False),  # queued | running | success | failed
    Column("result", Text),  # JSON flowlink.trial.Trial, once it succeeded
    Column("error", Text),  # why it failed
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
)
