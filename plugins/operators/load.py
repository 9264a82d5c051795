from __future__ import annotations

from hooks.application import ApplicationHook
from operators.base import TouchpointOperator

from flowlink import sync


class LoadOperator(TouchpointOperator):
    """Writes the transformed batches to the target application; fails (without retry) if records failed."""

    step = "load"
    ui_color = "#e8f5e9"

    def __init__(self, *, transform_task_id: str, **kwargs):
        super().__init__(**kwargs)
        self.transform_task_id = transform_task_id

    def run_step(self, ctx, tp, context) -> dict:
        transformed = context["ti"].xcom_pull(task_ids=self.transform_task_id)
        app = ctx.artifact.spec["target"]
        target = ApplicationHook(app["connection"], app["type"]).get_target()
        try:
            return sync.load(ctx, tp, target, transformed)
        finally:
            target.close()
