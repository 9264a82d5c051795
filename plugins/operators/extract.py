from __future__ import annotations

from flowlink_airflow.operators.base import TouchpointOperator


class ExtractOperator(TouchpointOperator):
    """Reads new (or chosen) records from the source application into batch files."""

    step = "extract"
    ui_color = "#fff3e0"

    def run_step(self, ctx, tp, context) -> dict:
        from flowlink_airflow.hooks.application import ApplicationHook

        from flowlink import sync

        app = ctx.artifact.spec["source"]
        hook = ApplicationHook(app["connection"], app["type"])
        return sync.extract(ctx, tp, hook.get_source)  # opened in the step: a missing connection fails the step
