from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowlink_airflow.operators.base import TouchpointOperator

if TYPE_CHECKING:
    from flowlink.spec import Touchpoint
    from flowlink.sync import Extracted, RunContext


class ExtractOperator(TouchpointOperator):
    """Reads new (or chosen) records from the source application into batch files."""

    ui_color = "#fff3e0"

    def run_step(self, ctx: RunContext, tp: Touchpoint, context: Any) -> Extracted:
        from flowlink import sync
        from flowlink_airflow.hooks.application import ApplicationHook

        app = ctx.artifact.spec["source"]
        hook = ApplicationHook(app["connection"], app["type"])
        return sync.extract(ctx, tp, hook.get_source)  # opened in the step: a missing connection fails the step
