"""What the three touchpoint operators share: the pinned workflow version, the store, the run context."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

if TYPE_CHECKING:
    from flowlink.spec import Touchpoint
    from flowlink.states import Step
    from flowlink.sync import RunContext


class TouchpointOperator(BaseOperator):
    """Runs one step of one touchpoint of a published workflow version.

    ``dag_factory.render`` sets what it runs on each instance: ``workflow``, ``touchpoint``, ``version`` (the
    version the DAG was built from) and, for the steps after extract, ``reads`` (the task whose XCom this one
    reads). A task's own process builds its DAG again (Airflow's parsing context), so it has them too.
    """

    ui_color = "#e3f2fd"
    # No __init__ of its own: a DAG builds thousands of these, and each __init__ layer costs (bench/parse.py).
    # Class-level defaults instead, set per instance after construction by dag_factory.render:
    workflow = ""
    touchpoint = ""
    version = 0
    reads = ""
    step: Step  # each subclass's own step

    # Parse time matters (one DAG file builds every workflow): imports that only execution needs stay in execute.
    def execute(self, context: Any) -> Any:
        from sqlalchemy.exc import SQLAlchemyError

        from flowlink import publish
        from flowlink.connectors.base import ConnectorError
        from flowlink.store import Store, snapshots, state
        from flowlink.sync import RecordsFailed, RunContext
        from flowlink_airflow import metrics

        store = Store.open()  # an unreachable store raises StoreUnavailable: one line, and Airflow may retry the task
        begun = dt.datetime.now(dt.UTC)  # the step's metrics are sent if it started in this try
        try:
            run_id = context["run_id"]
            # A run keeps the version it started with, even if a newer one goes live meanwhile.
            version = snapshots.run_version(store, self.workflow, run_id) or self.version
            artifact = publish.published(self.workflow, version)
            conf = context["dag_run"].conf or {}
            resync = state.resync(store, int(conf["resync_id"])) if conf.get("resync_id") else None
            ctx = RunContext(
                store,
                artifact,
                run_id,
                resync,
                log=self.log,
                hostname=getattr(context["ti"], "hostname", None),
                queue=self.queue,
            )
            if resync is not None and not ctx.takes_part(self.touchpoint):
                raise AirflowSkipException(f"this run resyncs touchpoint {resync['touchpoint']!r} only")
            tp = artifact.workflow_model().touchpoint(self.touchpoint)
            return self.run_step(ctx, tp, context)
        except RecordsFailed as exc:
            from flowlink import alerts

            alerts.records_failed(store, self.workflow, context["run_id"], self.touchpoint)  # once; never raises
            raise AirflowFailException(str(exc)) from None  # retrying the task would not help these records
        except ConnectorError as exc:
            # The application as a whole failed, after the connector's own retries (an unreachable one for
            # FLOWLINK_UNREACHABLE_AFTER seconds): a task retry would only make the failure show later. The
            # watermark has not moved and records left behind are Unprocessed: the next run or a resync takes them.
            raise AirflowFailException(str(exc)) from None
        except SQLAlchemyError as exc:  # the store went away during the step: say so in one line, let Airflow retry
            problem = store.unavailable(exc)
            if problem is None:
                raise
            raise problem from None
        finally:  # however the step ended: its numbers, from its snapshot row, to Airflow's metrics
            metrics.step_ended(store, self.workflow, context["run_id"], self.touchpoint, self.step, begun, self.log)
            store.dispose()

    def upstream_result(self, context: Any) -> Any:
        """What the previous step of this touchpoint returned (the XCom of task ``reads``)."""
        return context["ti"].xcom_pull(task_ids=self.reads)

    def run_step(self, ctx: RunContext, tp: Touchpoint, context: Any) -> Any:
        raise NotImplementedError
