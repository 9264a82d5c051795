"""The OpenLineage report of a touchpoint's extract and load, for Airflow's OpenLineage provider.

When a transport is configured, the provider's listener calls the operators' ``get_openlineage_facets_on_complete``
after the task ends (success or failure), in a process forked from the task's: they import this module there, so
neither DAG parsing nor a run without OpenLineage imports it. The names and the column lineage are
flowlink.lineage's; this module reads the connections and builds the provider's classes.

    extract  inputs: the source dataset(s)
    load     inputs: the source dataset(s); outputs: the target, with a columnLineage facet (the mapping's rules
             that read source fields) and a schema facet (the mapping's target fields and types)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset as OLDataset
from openlineage.client.facet_v2 import column_lineage_dataset as cl
from openlineage.client.facet_v2 import schema_dataset

from flowlink import lineage
from flowlink.states import Step

if TYPE_CHECKING:
    from flowlink.spec import Application, Workflow
    from flowlink_airflow.operators.base import TouchpointOperator

T = TypeVar("T")


def operator_lineage(task: TouchpointOperator) -> OperatorLineage:
    """The datasets of ``task`` (an extract or a load): those of the workflow version its run used (the one its
    DAG was built from if the task ended before it knew)."""
    wf = _workflow(task)
    tp = wf.touchpoint(task.touchpoint)
    src = _guarded(task, wf.source, lambda conn: lineage.source(wf.source.type, conn, tp.extract))
    inputs = [OLDataset(d.namespace, d.name) for d in (src.datasets if src else [])]
    if task.step != Step.LOAD:
        return OperatorLineage(inputs=inputs)
    dst = _guarded(task, wf.target, lambda conn: lineage.target(wf.target.type, conn, tp.load))
    if dst is None:
        return OperatorLineage(inputs=inputs)
    facets: dict[str, Any] = {}
    if schema := lineage.target_schema(tp):
        fields = [schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in schema]
        facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=fields)
    if src is not None:
        columns, chosen = lineage.column_lineage(tp, src)
        if columns:
            facets["columnLineage"] = cl.ColumnLineageDatasetFacet(
                fields={name: cl.Fields(inputFields=[_input(f) for f in found]) for name, found in columns.items()},
                dataset=[_input(f) for f in chosen],
            )
    return OperatorLineage(inputs=inputs, outputs=[OLDataset(dst.namespace, dst.name, facets=facets)])


def _workflow(task: TouchpointOperator) -> Workflow:
    from flowlink import publish
    from flowlink.spec import Workflow

    spec = getattr(task, "lineage_spec", None)
    if spec is None:
        spec = publish.published(task.workflow, task.version).spec
    return Workflow.model_validate(spec)


def _guarded(task: TouchpointOperator, app: Application, build: Callable[[dict[str, Any]], T]) -> T | None:
    """``build(connection fields)`` for the application's connection; a connection that is missing or cannot be
    read is named in a warning and its datasets are left out (the task's own outcome stands)."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(app.connection)
        fields = dict(conn_type=conn.conn_type, host=conn.host, port=conn.port, schema=conn.schema)
        return build({**fields, "extra": conn.extra_dejson})  # never the login or password
    except Exception as exc:  # missing, or not what its type needs: the messages name no secret
        task.log.warning("OpenLineage: connection %r: %s; its datasets are left out", app.connection, exc)
        return None


def _input(found: lineage.InputField) -> cl.InputField:
    transformation = cl.Transformation(type=found.type, subtype=found.subtype, description=found.description)
    return cl.InputField(
        namespace=found.dataset.namespace, name=found.dataset.name, field=found.field, transformations=[transformation]
    )
