from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowlink.states import Step
from flowlink_airflow.operators.base import TouchpointOperator

if TYPE_CHECKING:
    from flowlink.spec import Touchpoint
    from flowlink.sync import Loaded, RunContext


class LoadOperator(TouchpointOperator):
    """Writes the transformed batches to the target application; fails (without retry) if records failed. Its outlet
    is the target's asset (flowlink.assets): a load that succeeds updates it, with the counts as the event's extra."""

    ui_color = "#e8f5e9"
    step = Step.LOAD

    def run_step(self, ctx: RunContext, tp: Touchpoint, context: Any) -> Loaded:
        from flowlink import sync
        from flowlink_airflow.hooks.application import ApplicationHook

        self.lineage_spec = ctx.artifact.spec  # what get_openlineage_facets_on_complete reports
        app = ctx.artifact.spec["target"]
        hook = ApplicationHook(app["connection"], app["type"])
        loaded = sync.load(ctx, tp, hook.get_target, self.upstream_result(context))  # opened in the step
        # The target's asset event (Airflow emits it when this task succeeds: no record failed), with the counts.
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "workflow": self.workflow,
                "touchpoint": self.touchpoint,
                "version": loaded["version"],
                "loaded": loaded["count"],
                "failed": 0,
            }
        return loaded

    # OpenLineage (Airflow's provider, when a transport is configured): the version this run used, and its datasets.
    lineage_spec: dict | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from flowlink_airflow.lineage import operator_lineage  # only when the provider asks: not at parse time

        return operator_lineage(self)
