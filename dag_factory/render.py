"""A WorkflowGraph rendered as an Airflow DAG: one task group (extract -> transform -> load) per touchpoint."""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup, TriggerRule
from flowlink_airflow.timetable import ManualTimetable, WorkflowTimetable
from flowlink_airflow.notifiers.run import run_failure_alert
from flowlink_airflow.operators.extract import ExtractOperator
from flowlink_airflow.operators.load import LoadOperator
from flowlink_airflow.operators.transform import TransformOperator

from flowlink_airflow.dag_factory.graph import WorkflowGraph
from flowlink.schedule import summary

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


def render(g: WorkflowGraph) -> DAG:
    schedule = WorkflowTimetable.from_schedule(g.schedule) if g.schedule.sync == "auto" else ManualTimetable()
    dag = DAG(
        dag_id=g.dag_id,
        description=(g.description or f"Flowlink workflow {g.dag_id}")[:200],
        schedule=schedule,
        catchup=False,
        max_active_runs=1,  # syncs of one workflow never overlap (watermarks, bucket)
        default_args={**DEFAULT_ARGS, "queue": g.environment} if g.environment else DEFAULT_ARGS,
        tags=["flowlink", f"v{g.version}", f"{g.source}->{g.target}", *([f"env:{g.environment}"] if g.environment else [])],
        doc_md=_doc(g),
        on_failure_callback=run_failure_alert,  # one Flowlink alert per failed run (flowlink/alerts/)
    )
    groups: dict[str, TaskGroup] = {}
    for tp in g.touchpoints:
        with TaskGroup(group_id=tp.name, tooltip=tp.description, dag=dag) as group:
            # A record failure upstream must not stop this touchpoint: order only, failures live in the bucket.
            # The operators know their workflow (the DAG), touchpoint (the group) and version (the DAG's tag v<N>).
            extract = ExtractOperator(task_id="extract", dag=dag,
                                      trigger_rule=TriggerRule.ALL_DONE if tp.depends_on else TriggerRule.ALL_SUCCESS)
            extract >> TransformOperator(task_id="transform", dag=dag) >> LoadOperator(task_id="load", dag=dag)
        groups[tp.name] = group
    for tp in g.touchpoints:
        for dep in tp.depends_on:
            groups[dep] >> groups[tp.name]
    # Airflow sets a run's state from its last tasks, and a touchpoint after a failed one still runs: this last task
    # (never sent to a worker) fails the run when any load failed. A hyphen: no touchpoint can take its name.
    list(groups.values()) >> EmptyOperator(task_id=END_TASK, dag=dag, trigger_rule=TriggerRule.ALL_SUCCESS)
    return dag
