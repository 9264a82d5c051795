"""Flowlink's metrics, sent through Airflow's own (``airflow.sdk`` Stats) to whatever ``[metrics]`` backend Airflow
is configured with: StatsD, Datadog or OpenTelemetry; with none, nothing is sent.

Each extract, transform and load task sends its step's numbers as it ends, however it ends (success, records
failed, the step failed as a whole, an extract that found nothing new). They are read from the step's row in the
run's snapshot, which flowlink.sync writes: the metrics and `flowlink snapshot` never disagree.

Names follow Airflow's: the name, with the workflow, touchpoint and step as tags (OpenTelemetry, Datadog, StatsD with
InfluxDB tags); and, while ``[metrics] legacy_names_on`` is on (Airflow's default), also the name with them in it, for
plain StatsD, as Airflow's ``ti.finish.<dag_id>.<task_id>.<state>``. Workflow and touchpoint names are lower-case
letters, digits and _, at most 63 characters (flowlink.spec): every name is valid and within Airflow's 250.

Sending never fails a task: a problem is logged as a warning.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from flowlink.store import Store
    from flowlink.store.snapshots import StepRow


class Metric(NamedTuple):
    name: str
    kind: str  # counter or timer
    unit: str
    steps: tuple[str, ...]  # the steps that send it
    in_name: tuple[str, ...]  # the tags the per-name form puts in the name, in order
    description: str


WT, WTS = ("workflow", "touchpoint"), ("workflow", "touchpoint", "step")
ALL_STEPS = ("extract", "transform", "load")
EXTRACTED = Metric(
    "flowlink.records.extracted",
    "counter",
    "records",
    ("extract",),
    WT,
    "records the extract read from the source and wrote to the run's batch files",
)
LOADED = Metric("flowlink.records.loaded", "counter", "records", ("load",), WT, "records the target accepted")
FAILED = Metric(
    "flowlink.records.failed",
    "counter",
    "records",
    ALL_STEPS,
    WTS,
    "records that failed in the step; they wait in the resync bucket",
)
STEP_FAILED = Metric(
    "flowlink.step.failed",
    "counter",
    "steps",
    ALL_STEPS,
    WTS,
    "1 when the step failed as a whole (an application unreachable or down, a connection missing); not sent otherwise",
)
DURATION = Metric(
    "flowlink.step.duration",
    "timer",
    "milliseconds",
    ALL_STEPS,
    WTS,
    "how long the step ran, from its start to its end, whether it succeeded or failed",
)
METRICS = (EXTRACTED, LOADED, FAILED, STEP_FAILED, DURATION)


def per_name(metric: Metric, tags: dict[str, str]) -> str:
    """The per-name form: ``flowlink.records.failed.<workflow>.<touchpoint>.<step>``."""
    return ".".join([metric.name, *(tags[t] for t in metric.in_name)])


def step_ended(
    store: Store, workflow: str, run_id: str, touchpoint: str, step: str, since: dt.datetime, log: Any
) -> None:
    """Send the metrics of the step if it started in this task try (at or after ``since``) and has ended; never
    raises. A try that fails before its step starts (a retry of a step that ended before) sends nothing."""
    try:
        from flowlink.states import StepStatus
        from flowlink.store import snapshots

        rows = [r for r in snapshots.run_steps(store, workflow, run_id, touchpoint) if r["step"] == step]
        if not rows or rows[0]["status"] not in (StepStatus.SUCCESS, StepStatus.FAILED):
            return
        row = rows[0]
        # The store may keep whole seconds: a step that started in this try started no earlier than that.
        if row["ended_at"] is None or _utc(row["started_at"]) < since.replace(microsecond=0):
            return
        send(row)
    except Exception as exc:  # a metric never fails a task
        log.warning("flowlink: the metrics of %s %s were not sent: %s", touchpoint, step, exc)


def send(row: StepRow) -> None:
    """The metrics of one ended step, from its snapshot row."""
    from airflow.sdk.configuration import conf
    from airflow.sdk.observability.stats import Stats

    from flowlink.states import StepFailure

    tags = {"workflow": row["workflow"], "touchpoint": row["touchpoint"], "step": str(row["step"])}
    named = conf.getboolean("metrics", "legacy_names_on", fallback=True)

    def emit(metric: Metric, value: Any) -> None:
        names = [(metric.name, tags)]
        if named:  # the other tags stay tags, as Airflow does
            names.append((per_name(metric, tags), {k: v for k, v in tags.items() if k not in metric.in_name}))
        for name, its_tags in names:
            if metric.kind == "timer":
                Stats.timing(name, value, tags=its_tags)
            else:
                Stats.incr(name, value, tags=its_tags)

    if row["step"] == "extract":
        emit(EXTRACTED, row["count_out"])
    if row["step"] == "load":
        emit(LOADED, row["count_out"])
    emit(FAILED, row["count_failed"])
    if row["failure"] == StepFailure.STEP:
        emit(STEP_FAILED, 1)
    if row["ended_at"] is not None:
        emit(DURATION, _utc(row["ended_at"]) - _utc(row["started_at"]))


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite gives the store's UTC times back without a zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
