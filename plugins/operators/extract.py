from __future__ import annotations

from hooks.application import ApplicationHook
from operators.base import TouchpointOperator

from flowlink import sync


class ExtractOperator(TouchpointOperator):
    """Reads new (or chosen) records from the source application into batch files."""

    step = "extract"
    ui_color = "#fff3e0"

    def run_step(self, ctx, tp, context) -> dict:
        app = ctx.artifact.spec["source"]
        source = ApplicationHook(app["connection"], app["type"]).get_source()
        try:
            return sync.extract(ctx, tp, source)
        finally:
            source.close()
