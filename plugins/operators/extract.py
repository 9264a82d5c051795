from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import SkipMixin

from flowlink.states import Step
from flowlink_airflow.operators.base import TouchpointOperator

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from flowlink.spec import Touchpoint
    from flowlink.sync import Extracted, RunContext


class ExtractOperator(TouchpointOperator, SkipMixin):
    """Reads new (or chosen) records from the source application into batch files.

    When it finds nothing (no record, none failed), the rest of its touchpoint (transform and load) has nothing to
    do: it marks them skipped (Airflow's SkipMixin, as ShortCircuitOperator does), so Airflow never starts their task
    processes, and the snapshot records them as skipped. Touchpoints after it still run (trigger rule ALL_DONE)."""

    ui_color = "#fff3e0"
    step = Step.EXTRACT
    # Serialized as the DAG's "can skip downstream": a cleared transform of such a run stays skipped
    # (Airflow's NotPreviouslySkippedDep reads the task ids this task skipped).
    inherits_from_skipmixin = True

    def run_step(self, ctx: RunContext, tp: Touchpoint, context: Any) -> Extracted:
        from flowlink import sync
        from flowlink_airflow.hooks.application import ApplicationHook

        self.lineage_spec = ctx.artifact.spec  # what get_openlineage_facets_on_complete reports
        app = ctx.artifact.spec["source"]
        hook = ApplicationHook(app["connection"], app["type"])
        extracted = sync.extract(ctx, tp, hook.get_source)  # opened in the step: a missing connection fails the step
        if sync.nothing_new(extracted) and (rest := self.rest_of_touchpoint()):
            sync.skip_rest(ctx, tp, [t.step for t in rest])
            self.skip(context["ti"], rest)  # raises: Airflow marks this task success and `rest` skipped
        return extracted

    def rest_of_touchpoint(self) -> list[TouchpointOperator]:
        """The tasks after this one that belong to its touchpoint (transform, then load), in order."""
        found: list[TouchpointOperator] = []
        task: BaseOperator = self
        while nxt := [
            t for t in task.downstream_list if isinstance(t, TouchpointOperator) and t.touchpoint == self.touchpoint
        ]:
            task = nxt[0]
            found.append(task)
        return found

    # OpenLineage (Airflow's provider, when a transport is configured): the version this run used, and its datasets.
    lineage_spec: dict | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from flowlink_airflow.lineage import operator_lineage  # only when the provider asks: not at parse time

        return operator_lineage(self)
