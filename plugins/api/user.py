"""User endpoints (/api/v1): every one needs an Airflow login (Depends(get_user): no credentials 401, a bad
token 403), then the permission access.py names for it (403 otherwise): reading a workflow's data needs read
access to its DAG, run and resync creating runs of it, deploy and undeploy editing it, environments and agent
tokens Airflow's Connections.

CSRF: the POST and PATCH endpoints accept only Content-Type application/json (415 otherwise; see
deps.require_json). A cross-site form cannot send that content type, and a cross-site script cannot send it
without a CORS preflight the api-server does not grant. The pages call these same endpoints with JSON bodies.
"""

from __future__ import annotations

from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, Path, Query

from flowlink import actions, deployments
from flowlink.store import bucket, state

from .access import ADMIN, ADMIN_READ, DEPLOY, READ, READ_RUNS, RUN, AccessDep, need
from .deps import StoreDep, require_json
from .models import (
    MAX_ID,
    NAME_PATTERN,
    AgentToken,
    DeploymentLog,
    DeployRequest,
    Environment,
    EnvironmentChange,
    ErrorBody,
    RunStarted,
    StartedDeployment,
)
from .models import Deployment as DeploymentOut
from .resync import ResyncRequest, ResyncStarted, RunProgress, airflow_run

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "not logged in"},
    403: {"model": ErrorBody, "description": "invalid token, or the user lacks the permission"},
}
CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "bad input"},
    409: {"model": ErrorBody, "description": "refused by the deployment rules right now"},
    415: {"model": ErrorBody, "description": "not Content-Type application/json"},
}


def change(what: str | None = None) -> dict[str, Any]:
    """A state-changing route: the permission first (403 whatever the body), then JSON only (415)."""
    checks = [need(what)] if what else []
    return {"dependencies": [*checks, Depends(require_json)], "responses": CHANGE_RESPONSES}


router = APIRouter(prefix="/api/v1", tags=["user"], dependencies=[Depends(get_user)], responses=ERRORS)

Workflow = Annotated[str, Path(pattern=NAME_PATTERN, max_length=63, description="a workflow name")]
EnvName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=63, description="an environment name")]


@router.get("/environments", summary="List environments and their agents", response_model=list[Environment])
def environments(store: StoreDep):
    return deployments.environments_list(store)


@router.patch("/environments/{name}", summary="Change an environment", response_model=Environment, **change(ADMIN))
def change_environment(store: StoreDep, name: EnvName, change: EnvironmentChange):
    """Make it primary, change its pending timeout (5-60 minutes) or enable/disable it. JSON body only."""
    return deployments.set_environment(
        store, name, primary=bool(change.primary), pending_timeout=change.pending_timeout, enabled=change.enabled
    )


@router.get(
    "/deployments",
    summary="Last deployment of each workflow",
    response_model=list[DeploymentOut],
    responses={404: {"model": ErrorBody, "description": "no such environment"}},
)
def listing(
    store: StoreDep,
    access: AccessDep,
    environment: Annotated[
        str | None, Query(pattern=NAME_PATTERN, max_length=63, description="only this environment")
    ] = None,
):
    """Only the workflows the user may read (read access to their DAGs)."""
    if environment:
        deployments.environment(store, environment)  # unknown -> 404 rather than an empty list
    rows = deployments.listing(store, environment)
    readable = access.readable(d["workflow"] for d in rows)
    return [d for d in rows if d["workflow"] in readable]


@router.post(
    "/deployments",
    status_code=201,
    summary="Deploy a workflow to the primary environment",
    response_model=StartedDeployment,
    **change(),
)
def deploy(store: StoreDep, access: AccessDep, body: DeployRequest):
    """Deploy the latest (or given) published version; an Airflow run tracks it. Needs edit permission on the
    workflow's DAG. JSON body only."""
    access.require(DEPLOY, body.workflow)
    return actions.deploy(store, body.workflow, body.version)


@router.post(
    "/workflows/{workflow}/undeploy",
    status_code=201,
    summary="Undeploy a workflow",
    response_model=StartedDeployment,
    **change(DEPLOY),
)
def undeploy(store: StoreDep, workflow: Workflow):
    """Remove the workflow from its environment; an Airflow run tracks it. Needs Content-Type application/json
    (the body may be empty)."""
    return actions.undeploy(store, workflow)


@router.get(
    "/workflows/{workflow}/deployment-log",
    summary="Last deployment of a workflow and its steps",
    response_model=DeploymentLog,
    responses={404: {"model": ErrorBody, "description": "never deployed"}},
    dependencies=[need(READ)],
)
def deployment_log(store: StoreDep, workflow: Workflow):
    d, steps = deployments.log_of(store, workflow)
    return {"deployment": d, "steps": steps}


@router.post(
    "/workflows/{workflow}/run", summary="Run a deployed workflow now", response_model=RunStarted, **change(RUN)
)
def run(store: StoreDep, workflow: Workflow):
    """Start an Airflow run of the live workflow (refused while a deployment is pending). Needs Content-Type
    application/json (the body may be empty)."""
    return {"run_id": actions.execute(store, workflow)}


RunId = Annotated[str, Path(min_length=1, max_length=250, description="an Airflow run id")]


@router.post(
    "/workflows/{workflow}/resync",
    status_code=201,
    summary="Resync chosen records of a touchpoint",
    response_model=ResyncStarted,
    **change(RUN),
)
def resync(store: StoreDep, workflow: Workflow, body: ResyncRequest):
    """Send the chosen bucket records (`ids`, every failed one with `failed: true`, or with `unprocessed: true` every
    Unprocessed one whose last run has ended) again: an Airflow run limited to them. Refused while a deployment of
    the workflow is pending. JSON body only."""
    resync_id, chosen, run_id = actions.resync(
        store, workflow, body.touchpoint, ids=body.ids, failed=body.failed, unprocessed=body.unprocessed
    )
    return {"resync_id": resync_id, "run_id": run_id, "touchpoint": body.touchpoint, "records": len(chosen)}


@router.get(
    "/workflows/{workflow}/runs/{run_id}",
    summary="State of a run and of the records it resyncs",
    response_model=RunProgress,
    responses={404: {"model": ErrorBody, "description": "no such run in Airflow"}},
    dependencies=[need(READ_RUNS)],
)
def run_progress(store: StoreDep, workflow: Workflow, run_id: RunId):
    """The Airflow run's state and, for a resync run, how many of its chosen records are now success, failed,
    unprocessed or skipped in the bucket (the pages poll this until the run finished)."""
    run = airflow_run(workflow, run_id)
    req = state.resync_of_run(store, workflow, run_id)
    counts = bucket.status_counts(store, workflow, req["touchpoint"], req["source_ids"]) if req else {}
    return {
        "workflow": workflow,
        "run_id": run_id,
        "state": run.state,
        "queued_at": run.queued_at,
        "start_date": run.start_date,
        "end_date": run.end_date,
        "finished": run.ended,
        "resync_id": req["id"] if req else None,
        "touchpoint": req["touchpoint"] if req else None,
        "records": len(req["source_ids"]) if req else 0,
        "counts": counts,
    }


# ------------------------------------------------------------------ agent tokens (Op and Admin)

TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="the token's id (from GET .../tokens)")]


@router.get(
    "/environments/{name}/tokens",
    summary="List an environment's agent tokens",
    response_model=list[AgentToken],
    responses={404: {"model": ErrorBody, "description": "no such environment"}},
    dependencies=[need(ADMIN_READ)],
)
def tokens(store: StoreDep, name: EnvName):
    """Id, fingerprint, created and revoked of each token; never the token (only its sha256 is stored)."""
    return deployments.tokens(store, name)


@router.post(
    "/environments/{name}/tokens/{token_id}/revoke",
    summary="Revoke an agent token",
    response_model=AgentToken,
    **change(ADMIN),
)
def revoke_token(store: StoreDep, name: EnvName, token_id: TokenId):
    """The token is refused from the very next request on. Revoking a revoked token changes nothing. Needs
    Content-Type application/json (the body may be empty)."""
    return deployments.revoke_token(store, name, token_id)
