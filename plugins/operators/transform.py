from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowlink.states import Step
from flowlink_airflow.operators.base import TouchpointOperator

if TYPE_CHECKING:
    from flowlink.spec import Touchpoint
    from flowlink.sync import RunContext, Transformed


class TransformOperator(TouchpointOperator):
    """Applies the touchpoint's XSLT stylesheet to each batch file."""

    ui_color = "#f3e5f5"
    step = Step.TRANSFORM

    def run_step(self, ctx: RunContext, tp: Touchpoint, context: Any) -> Transformed:
        from flowlink import sync
        from flowlink.mapping import output_types
        from flowlink.transform import Transformer

        types = output_types(tp)
        transformer = Transformer(ctx.artifact.stylesheets[tp.name], types, tp.extract.key)
        return sync.transform(ctx, tp, transformer, self.upstream_result(context))
