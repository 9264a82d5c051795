"""Agent endpoints (/agent/v1): what an environment's agent calls. The X-Agent-Token scopes every call to its
environment; another environment's deployment is 404, as if it did not exist.

A deployment that has ended is 409 with ``{"detail", "status"}``: ``status`` (successful or unsuccessful) tells the
agent whether to keep what it installed or to put the previous version back.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, JSONResponse

from flowlink import deployments, publish
from flowlink.store.db import utcnow

from .deps import AgentEnv, StoreDep
from .models import MAX_ID, ErrorBody, Heartbeat, NotPendingBody, PendingList, Progress, StepReport

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no X-Agent-Token"},
    403: {"model": ErrorBody, "description": "unknown or revoked token"},
    404: {"model": ErrorBody, "description": "no such deployment in the token's environment"},
}

router = APIRouter(prefix="/agent/v1", tags=["agent"], responses=ERRORS)

DeploymentId = Annotated[int, Path(ge=1, le=MAX_ID, description="the deployment id (from GET /agent/v1/deployments)")]


def _ended(exc: deployments.NotPending) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "status": exc.status}, status_code=409)


@router.post("/heartbeat", summary="Tell Flowlink the agent is alive", response_model=Heartbeat)
def heartbeat(store: StoreDep, env: AgentEnv):
    deployments.heartbeat(store, env)
    return {"environment": env, "server_time": utcnow()}


@router.get("/deployments", summary="Pending deployments to carry out", response_model=PendingList)
def pending(store: StoreDep, env: AgentEnv):
    """The environment's pending deployments with the steps still to report, oldest first."""
    return {"deployments": deployments.pending_for(store, env)}


@router.get(
    "/deployments/{deployment_id}/file",
    summary="Download a pending deployment's published file",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/json": {}}, "description": "the published file, byte for byte"},
        409: {"model": NotPendingBody, "description": "the deployment is no longer pending"},
    },
)
def deployment_file(store: StoreDep, env: AgentEnv, deployment_id: DeploymentId):
    """The published workflow file of the deployment's version; header X-Flowlink-SHA256 is its content checksum."""
    try:
        d = deployments.check_download(store, env, deployment_id)
    except deployments.NotPending as exc:
        return _ended(exc)
    path = publish.version_path(d["workflow"], d["version"])  # as stored: the agent verifies it against the sha256
    return FileResponse(
        path, media_type="application/json", filename=path.name, headers={"X-Flowlink-SHA256": d["sha256"]}
    )


@router.post(
    "/deployments/{deployment_id}/steps",
    summary="Report a step of a deployment",
    response_model=Progress,
    responses={
        400: {"model": ErrorBody, "description": "unknown step or step out of order"},
        409: {"model": NotPendingBody, "description": "no longer pending: `status` says how it ended"},
    },
)
def report_step(store: StoreDep, env: AgentEnv, deployment_id: DeploymentId, report: StepReport):
    """Report steps in order; reporting a done step again is harmless. A failed step ends the deployment
    Unsuccessful. 409 means the deployment is no longer pending: the agent keeps what it installed when `status` is
    successful, and puts the previous version back otherwise."""
    try:
        deployments.report_step(store, env, deployment_id, report.step, report.status, report.message)
    except deployments.NotPending as exc:
        return _ended(exc)
    return deployments.progress(store, deployment_id)
