from __future__ import annotations

from flowlink_airflow.operators.base import TouchpointOperator


class TransformOperator(TouchpointOperator):
    """Applies the touchpoint's XSLT stylesheet to each batch file."""

    step = "transform"
    after = "extract"
    ui_color = "#f3e5f5"

    def run_step(self, ctx, tp, context) -> dict:
        from flowlink import sync
        from flowlink.mapping import output_types
        from flowlink.transform import Transformer

        types = output_types(tp)
        transformer = Transformer(ctx.artifact.stylesheets[tp.name], types, tp.extract.key)
        return sync.transform(ctx, tp, transformer, self.upstream_result(context))
