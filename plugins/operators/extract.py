from __future__ import annotations

from operators.base import TouchpointOperator


class ExtractOperator(TouchpointOperator):
    """Reads new (or chosen) records from the source application into batch files."""

    step = "extract"
    ui_color = "#fff3e0"

    def run_step(self, ctx, tp, context) -> dict:
        from hooks.application import ApplicationHook

        from flowlink import sync

        app = ctx.artifact.spec["source"]
        source = ApplicationHook(app["connection"], app["type"]).get_source()
        try:
            return sync.extract(ctx, tp, source)
        finally:
            source.close()
