from __future__ import annotations

from operators.base import TouchpointOperator

from flowlink import sync
from flowlink.mapping import output_types
from flowlink.transform import Transformer


class TransformOperator(TouchpointOperator):
    """Applies the touchpoint's XSLT stylesheet to each batch file."""

    step = "transform"
    ui_color = "#f3e5f5"

    def __init__(self, *, extract_task_id: str, **kwargs):
        super().__init__(**kwargs)
        self.extract_task_id = extract_task_id

    def run_step(self, ctx, tp, context) -> dict:
        extracted = context["ti"].xcom_pull(task_ids=self.extract_task_id)
        types = output_types(tp) if tp.mapping else {}
        transformer = Transformer(ctx.artifact.stylesheets[tp.name], types, tp.extract.key)
        return sync.transform(ctx, tp, transformer, extracted)
