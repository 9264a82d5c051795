"""The Flowlink REST API: a FastAPI app that Airflow's api-server mounts at /flowlink (see flowlink_airflow.plugin).

Modules:
app (create_app, error mapping, the store), agent (/agent/v1, X-Agent-Token), user (/api/v1, Airflow login),
models (request and response bodies).
"""

from .app import create_app

__all__ = ["create_app"]
