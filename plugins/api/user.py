"""User endpoints (/api/v1): every one needs an Airflow login (Depends(get_user): no credentials 401, a bad
token 403).

CSRF: the POST and PATCH endpoints accept only Content-Type application/json (415 otherwise; see
deps.require_json). A cross-site form cannot send that content type, and a cross-site script cannot send it
without a CORS preflight the api-server does not grant. The pages call these same endpoints with JSON bodies.
"""

from __future__ import annotations

from typing import Annotated

from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, Path, Query

from flowlink import actions, deployments
from flowlink.store import bucket, state

from .deps import StoreDep, require_json
from .models import (NAME_PATTERN, DeploymentLog, DeployRequest, Environment, EnvironmentChange, ErrorBody,
                     RunStarted, StartedDeployment)
from .models import Deployment as DeploymentOut
from .resync import FINISHED, ResyncRequest, ResyncStarted, RunProgress, airflow_run

ERRORS = {401: {"model": ErrorBody, "description": "not logged in"},
          403: {"model": ErrorBody, "description": "invalid token"}}
CHANGE = {"dependencies": [Depends(require_json)],
          "responses": {400: {"model": ErrorBody, "description": "bad input"},
                        409: {"model": ErrorBody, "description": "refused by the deployment rules right now"},
                        415: {"model": ErrorBody, "description": "not Content-Type application/json"}}}

router = APIRouter(prefix="/api/v1", tags=["user"], dependencies=[Depends(get_user)], responses=ERRORS)

Workflow = Annotated[str, Path(pattern=NAME_PATTERN, max_length=63, description="a workflow name")]
EnvName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=63, description="an environment name")]


@router.get("/environments", summary="List environments and their agents", response_model=list[Environment])
def environments(store: StoreDep):
    return deployments.environments_list(store)


@router.patch("/environments/{name}", summary="Change an environment", response_model=Environment, **CHANGE)
def change_environment(store: StoreDep, name: EnvName, change: EnvironmentChange):
    """Make it primary, change its pending timeout (5-60 minutes) or enable/disable it. JSON body only."""
    return deployments.set_environment(store, name, primary=bool(change.primary),
                                       pending_timeout=change.pending_timeout, enabled=change.enabled)


@router.get("/deployments", summary="Last deployment of each workflow", response_model=list[DeploymentOut],
            responses={404: {"model": ErrorBody, "description": "no such environment"}})
def listing(store: StoreDep,
            environment: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=63,
                                                     description="only this environment")] = None):
    if environment:
        deployments.environment(store, environment)  # unknown -> 404 rather than an empty list
    return deployments.listing(store, environment)


@router.post("/deployments", status_code=201, summary="Deploy a workflow to the primary environment",
             response_model=StartedDeployment, **CHANGE)
def deploy(store: StoreDep, body: DeployRequest):
    """Deploy the latest (or given) published version; an Airflow run tracks it. JSON body only."""
    return actions.deploy(store, body.workflow, body.version)


@router.post("/workflows/{workflow}/undeploy", status_code=201, summary="Undeploy a workflow",
             response_model=StartedDeployment, **CHANGE)
def undeploy(store: StoreDep, workflow: Workflow):
    """Remove the workflow from its environment; an Airflow run tracks it. Needs Content-Type application/json
    (the body may be empty)."""
    return actions.undeploy(store, workflow)


@router.get("/workflows/{workflow}/deployment-log", summary="Last deployment of a workflow and its steps",
            response_model=DeploymentLog,
            responses={404: {"model": ErrorBody, "description": "never deployed"}})
def deployment_log(store: StoreDep, workflow: Workflow):
    d, steps = deployments.log_of(store, workflow)
    return {"deployment": d, "steps": steps}


@router.post("/workflows/{workflow}/run", summary="Run a deployed workflow now", response_model=RunStarted, **CHANGE)
def run(store: StoreDep, workflow: Workflow):
    """Start an Airflow run of the live workflow (refused while a deployment is pending). Needs Content-Type
    application/json (the body may be empty)."""
    return {"run_id": actions.execute(store, workflow)}


RunId = Annotated[str, Path(min_length=1, max_length=250, description="an Airflow run id")]


@router.post("/workflows/{workflow}/resync", status_code=201, summary="Resync chosen records of a touchpoint",
             response_model=ResyncStarted, **CHANGE)
def resync(store: StoreDep, workflow: Workflow, body: ResyncRequest):
    """Send the chosen bucket records (`ids`, or every failed one with `failed: true`) again: an Airflow run limited
    to them. Refused while a deployment of the workflow is pending. JSON body only."""
    resync_id, chosen, run_id = actions.resync(store, workflow, body.touchpoint, ids=body.ids, failed=body.failed)
    return {"resync_id": resync_id, "run_id": run_id, "touchpoint": body.touchpoint, "records": len(chosen)}


@router.get("/workflows/{workflow}/runs/{run_id}", summary="State of a run and of the records it resyncs",
            response_model=RunProgress,
            responses={404: {"model": ErrorBody, "description": "no such run in Airflow"}})
def run_progress(store: StoreDep, workflow: Workflow, run_id: RunId):
    """The Airflow run's state and, for a resync run, how many of its chosen records are now success, failed,
    unprocessed or skipped in the bucket (the pages poll this until the run finished)."""
    run = airflow_run(workflow, run_id)
    req = state.resync_of_run(store, workflow, run_id)
    counts = bucket.status_counts(store, workflow, req["touchpoint"], req["source_ids"]) if req else {}
    return {"workflow": workflow, "run_id": run_id, **run, "finished": run["state"] in FINISHED,
            "resync_id": req["id"] if req else None, "touchpoint": req["touchpoint"] if req else None,
            "records": len(req["source_ids"]) if req else 0, "counts": counts}
