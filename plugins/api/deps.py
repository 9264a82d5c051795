"""Dependencies shared by the routers: the store, the agent's environment, JSON-only requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from flowlink import deployments
from flowlink.store import Store


def get_store(request: Request) -> Store:
    """The app's store, opened once (a plain def: FastAPI runs it in the thread pool)."""
    return request.app.state.flowlink_store.get()


StoreDep = Annotated[Store, Depends(get_store)]

agent_token = APIKeyHeader(
    name="X-Agent-Token",
    auto_error=False,
    scheme_name="AgentToken",
    description="an agent token issued by `flowlink env token ENV`",
)


def agent_environment(store: StoreDep, token: Annotated[str | None, Security(agent_token)]) -> str:
    """The environment of the request's agent token: missing -> 401, unknown or revoked -> 403."""
    if not token:
        raise HTTPException(401, "missing X-Agent-Token header")
    env = deployments.environment_of_token(store, token)
    if env is None:
        raise HTTPException(403, "unknown or revoked agent token")
    return env


AgentEnv = Annotated[str, Depends(agent_environment)]


def require_json(request: Request) -> None:
    """State-changing user requests must be Content-Type application/json (else 415).

    This is their CSRF protection: a cross-site HTML form can only send form or text content types,
    and a cross-site script cannot send application/json without a CORS preflight, which the api-server does not
    grant unless ``[api] access_control_allow_origins`` lists that site.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(415, f"send Content-Type: application/json (got {media_type or 'none'})")
