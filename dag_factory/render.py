"""A WorkflowGraph rendered as an Airflow DAG: one task group (extract -> transform -> load) per touchpoint.

An extract that finds nothing new skips its transform and load (ExtractOperator): Airflow never starts their task
processes; touchpoints after it run anyway (ALL_DONE), and the end task counts a skipped load as done."""

from __future__ import annotations

import functools

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, TaskGroup, TriggerRule

from flowlink.live import WorkflowGraph
from flowlink.schedule import summary
from flowlink.states import Step
from flowlink_airflow.notifiers.run import run_failure_alert
from flowlink_airflow.operators.base import TouchpointOperator
from flowlink_airflow.operators.extract import ExtractOperator
from flowlink_airflow.operators.load import LoadOperator
from flowlink_airflow.operators.transform import TransformOperator
from flowlink_airflow.timetable import ManualTimetable, WorkflowTimetable

# Task retries follow Airflow's [core] default_task_retries / default_task_retry_delay settings.
DEFAULT_ARGS = {"owner": "flowlink"}
END_TASK = "all-loaded"


def _doc(g: WorkflowGraph) -> str:
    """The rendered configuration, cheap to build at parse time (`flowlink preview` shows the XSLT)."""
    rows = "\n".join(
        f"| {tp.name} | {', '.join(tp.depends_on) or '-'} | {tp.extract} | {tp.rules or 'own XSLT'} | {tp.load} | {tp.description} |"
        for tp in g.touchpoints
    )
    return (
        f"### {g.dag_id} v{g.version}\n\n{g.description}\n\n"
        f"* source: {g.source} (connection `{g.source_connection}`), target: {g.target} "
        f"(connection `{g.target_connection}`)\n* schedule: {summary(g.schedule)}\n"
        f"* environment: {g.environment or '-'}; published {g.published_at}, sha256 `{g.sha256[:16]}`\n\n"
        f"| touchpoint | after | extract | mapping rules | load | |\n|---|---|---|---|---|---|\n{rows}\n"
    )


def _runs(op: TouchpointOperator, g: WorkflowGraph, touchpoint: str, reads: str = "") -> None:
    """Set what the operator runs (the attributes TouchpointOperator declares; it has no __init__ of its own).

    Straight into the instance's __dict__: BaseOperator.__setattr__ only keeps constructor arguments and template
    fields in step, which these are not, and costs 25 times more (4% of the parse time at 1,000 DAGs, bench/parse)."""
    vars(op).update(workflow=g.dag_id, touchpoint=touchpoint, version=g.version, reads=reads)


@functools.lru_cache(maxsize=4096)  # one per target: many workflows' loads write the same one
def asset(uri: str) -> Asset:
    return Asset(uri)


def _schedule(g: WorkflowGraph) -> WorkflowTimetable | ManualTimetable | list[Asset]:
    if g.schedule.sync == "auto":
        return WorkflowTimetable.from_schedule(g.schedule)
    if g.schedule.sync == "after":
        return [asset(uri) for uri in g.after]  # runs once each of them was updated since its last run
    return ManualTimetable()


def render(g: WorkflowGraph) -> DAG:
    schedule = _schedule(g)
    dag = DAG(
        dag_id=g.dag_id,
        description=(g.description or f"Flowlink workflow {g.dag_id}")[:200],
        schedule=schedule,
        catchup=False,
        max_active_runs=1,  # syncs of one workflow never overlap (watermarks, bucket)
        default_args={**DEFAULT_ARGS, "queue": g.environment} if g.environment else DEFAULT_ARGS,
        tags=[
            "flowlink",
            f"v{g.version}",
            f"{g.source}->{g.target}",
            *([f"env:{g.environment}"] if g.environment else []),
        ],
        doc_md=_doc(g),
        on_failure_callback=run_failure_alert,  # one Flowlink alert per failed run (flowlink/alerts/)
    )
    groups: dict[str, TaskGroup] = {}
    for tp in g.touchpoints:
        with TaskGroup(group_id=tp.name, tooltip=tp.description, dag=dag) as group:
            # A record failure upstream must not stop this touchpoint: order only, failures live in the bucket.
            extract = ExtractOperator(
                task_id=Step.EXTRACT,
                dag=dag,
                trigger_rule=TriggerRule.ALL_DONE if tp.depends_on else TriggerRule.ALL_SUCCESS,
            )
            transform = TransformOperator(task_id=Step.TRANSFORM, dag=dag)
            load = LoadOperator(task_id=Step.LOAD, dag=dag, outlets=[asset(tp.asset)])
            _runs(extract, g, tp.name)
            _runs(transform, g, tp.name, reads=extract.task_id)
            _runs(load, g, tp.name, reads=transform.task_id)
            extract >> transform >> load
        groups[tp.name] = group
    for tp in g.touchpoints:
        for dep in tp.depends_on:
            groups[dep] >> groups[tp.name]
    # Airflow sets a run's state from its last tasks, and a touchpoint after a failed one still runs: this last task
    # (never sent to a worker) fails the run when any load failed; a load skipped because its extract found nothing
    # new (ExtractOperator) is no failure. A hyphen: no touchpoint can take its name.
    list(groups.values()) >> EmptyOperator(task_id=END_TASK, dag=dag, trigger_rule=TriggerRule.NONE_FAILED)
    return dag
