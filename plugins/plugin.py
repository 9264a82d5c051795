"""The Flowlink Airflow plugin, registered through the ``airflow.plugins`` entry point (pyproject.toml).

Registers WorkflowTimetable and ManualTimetable (flowlink_airflow.timetable) and the Flowlink REST API and pages
(flowlink_airflow.api), which Airflow's api-server mounts at /flowlink (OpenAPI at /flowlink/openapi.json,
pages under /flowlink/ui/), and a listener that imports Flowlink's modules once in the scheduler and the
dag-processor, for the task and parsing processes they fork (flowlink_airflow.preload).

``external_views`` put the pages into the Airflow UI (each shown in an iframe):
- one menu entry per page, all with category "Flowlink": Airflow 3.3.2 collects nav views whose category is not
  one of its own menus (browse, admin, docs, user) under its "Plugins" menu, in a "Flowlink" submenu;
- a "Snapshot" tab on every DAG run page; the UI fills in {DAG_ID} and {RUN_ID} (URL-encoded) for views whose
  destination is not "nav".
Every view needs a ``url_route`` (the UI's address of the view: /plugin/<url_route>).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from flowlink_airflow.preload import LISTENER
from flowlink_airflow.timetable import ManualTimetable, WorkflowTimetable

PREFIX = "/flowlink"
PAGES = [
    ("Deployments", "deployments"),
    ("Environments", "environments"),
    ("Resync bucket", "bucket"),
    ("Snapshots", "snapshots"),
    ("Feeds", "feeds"),
    ("Try", "try"),
]


class LazyApp:
    """The Flowlink app, built on its first request: every Airflow process loads plugins (for the timetable),
    and only the api-server serves the app, so the others skip importing FastAPI and the pages (~0.9 s)."""

    def __init__(self) -> None:
        self._app = None

    @property
    def app(self):
        if self._app is None:
            from flowlink_airflow.api import create_app

            self._app = create_app()
        return self._app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


class FlowlinkPlugin(AirflowPlugin):
    name = "flowlink"
    timetables = [WorkflowTimetable, ManualTimetable]
    listeners = [LISTENER]  # the scheduler and the dag-processor import Flowlink's modules once for their forks
    fastapi_apps = [{"app": LazyApp(), "url_prefix": PREFIX, "name": "Flowlink"}]
    external_views = [
        *(
            {
                "name": label,
                "href": f"{PREFIX}/ui/{slug}",
                "destination": "nav",
                "category": "Flowlink",
                "url_route": f"flowlink-{slug}",
            }
            for label, slug in PAGES
        ),
        {
            "name": "Snapshot",
            "href": f"{PREFIX}/ui/snapshot?workflow={{DAG_ID}}&run_id={{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "flowlink-snapshot",
        },
    ]
