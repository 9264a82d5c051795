"""The Flowlink Airflow plugin.

Registers WorkflowTimetable, imported as ``flowlink_timetable`` -- the same module path the
DAG files use, so serialized DAGs find it -- and the Flowlink REST API (package ``api`` next to
this file), which Airflow's api-server mounts at /flowlink (OpenAPI at /flowlink/openapi.json).
Later issues add the UI pages (``external_views``) here.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from api import create_app
from flowlink_timetable import WorkflowTimetable


class FlowlinkPlugin(AirflowPlugin):
    name = "flowlink"
    timetables = [WorkflowTimetable]
    fastapi_apps = [{"app": create_app(), "url_prefix": "/flowlink", "name": "Flowlink"}]
