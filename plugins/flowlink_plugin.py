"""The Flowlink Airflow plugin.

Registers WorkflowTimetable, imported as ``flowlink_timetable`` -- the same module path the
DAG files use, so serialized DAGs find it. Later issues add the API app (``fastapi_apps``)
and the UI pages (``external_views``) here.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from flowlink_timetable import WorkflowTimetable


class FlowlinkPlugin(AirflowPlugin):
    name = "flowlink"
    timetables = [WorkflowTimetable]
