"""What the three touchpoint operators share: the pinned workflow version, the store, the run context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

if TYPE_CHECKING:
    from flowlink.spec import Touchpoint
    from flowlink.sync import RunContext


class TouchpointOperator(BaseOperator):
    """Runs one step of one touchpoint of a published workflow version."""

    step = ""
    after = ""  # the step before this one in the touchpoint's task group, whose XCom this one reads
    ui_color = "#e3f2fd"

    # No __init__ of its own: a DAG builds thousands of these, and each __init__ layer costs (bench/parse.py).
    # What an operator needs follows from where dag_factory.render puts it:
    @property
    def workflow(self) -> str:
        return self.dag_id  # one DAG per workflow, named after it

    @property
    def touchpoint(self) -> str:
        return self.task_id.removesuffix(f".{self.step}")  # task ids are <touchpoint>.<step>

    @property
    def version(self) -> int:
        """The workflow version the DAG was built from: its tag v<N>."""
        return next(int(tag[1:]) for tag in self.dag.tags if tag[:1] == "v" and tag[1:].isdigit())

    # Parse time matters (one DAG file builds every workflow): imports that only execution needs stay in execute.
    def execute(self, context):
        from sqlalchemy.exc import SQLAlchemyError

        from flowlink import publish
        from flowlink.connectors.base import ConnectorError
        from flowlink.store import Store, snapshots, state
        from flowlink.sync import RecordsFailed, RunContext

        store = Store.open()  # an unreachable store raises StoreUnavailable: one line, and Airflow may retry the task
        try:
            run_id = context["run_id"]
            # A run keeps the version it started with, even if a newer one goes live meanwhile.
            version = snapshots.run_version(store, self.workflow, run_id) or self.version
            artifact = publish.published(self.workflow, version)
            conf = context["dag_run"].conf or {}
            resync = state.resync(store, int(conf["resync_id"])) if conf.get("resync_id") else None
            ctx = RunContext(store, artifact, run_id, resync, log=self.log,
                             hostname=getattr(context["ti"], "hostname", None), queue=self.queue)
            if not ctx.takes_part(self.touchpoint):
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
        finally:
            store.dispose()

    def upstream_result(self, context) -> dict:
        """What the previous step of this touchpoint returned (task ids are <touchpoint>.<step>)."""
        return context["ti"].xcom_pull(task_ids=self.task_id.removesuffix(self.step) + self.after)

    def run_step(self, ctx: RunContext, tp: Touchpoint, context) -> dict:
        raise NotImplementedError
