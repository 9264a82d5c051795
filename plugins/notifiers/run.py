"""The workflow DAGs' on_failure_callback: a feeds entry and a run_failed alert per failed run
(flowlink.alerts.run_ended_failed), unless its only failures were failed records, which their load steps alert
(records_failed).

In Airflow 3 a DAG's failure callback runs in the dag-processor (dag.test() runs it in-process). It opens the
Flowlink store (FLOWLINK_STORE_URL, as every Flowlink process) and asks the Task SDK, where it can, for the run's
task states. Imported when the DAGs are built: the store, the smtp provider and requests load only when a run
fails."""

from __future__ import annotations

from airflow.sdk import BaseNotifier


class FlowlinkRunFailureNotifier(BaseNotifier):
    """Tells a failed run's failures apart and sends run_failed to the workflow's channels when one of them was
    not failed records."""

    template_fields = ()

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing here is a template (and a DAG callback under dag.test() gets a DAG without a template env)."""

    def notify(self, context) -> None:
        dag = context.get("dag")
        dag_id, run_id = getattr(dag, "dag_id", None), context.get("run_id")
        if not dag_id or not run_id:
            self.log.warning("Flowlink alert: the failure callback got no DAG or run id")
            return
        try:
            from flowlink import alerts
            from flowlink.store import Store

            store = Store.open()
            try:
                alerts.run_ended_failed(
                    store,
                    dag_id,
                    run_id,
                    reason=context.get("reason"),
                    task_states=_task_states(dag_id, run_id),
                    dag_id=dag_id,
                )
            finally:
                store.dispose()
        except Exception:  # an alert must never turn into another failure
            self.log.exception("Flowlink alert for the failed run %s of %s could not be sent", run_id, dag_id)


def _task_states(dag_id: str, run_id: str) -> dict[str, str] | None:
    """task id -> state of the run, from the Task SDK (the dag-processor answers it); None where it cannot."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id])
        return {str(k): str(v) for k, v in (states.get(run_id) or {}).items()}
    except Exception:
        return None


run_failure_alert = FlowlinkRunFailureNotifier()
