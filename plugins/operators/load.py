from __future__ import annotations

from flowlink_airflow.operators.base import TouchpointOperator


class LoadOperator(TouchpointOperator):
    """Writes the transformed batches to the target application; fails (without retry) if records failed."""

    step = "load"
    after = "transform"
    ui_color = "#e8f5e9"

    def run_step(self, ctx, tp, context) -> dict:
        from flowlink_airflow.hooks.application import ApplicationHook

        from flowlink import sync

        app = ctx.artifact.spec["target"]
        hook = ApplicationHook(app["connection"], app["type"])
        return sync.load(ctx, tp, hook.get_target, self.upstream_result(context))  # opened in the step, as extract's
