"""create_app(): the Flowlink REST API, served by Airflow's api-server under /flowlink.

Errors are always JSON ``{"detail": message}``: a rule that refuses the action right now (RuleError) is 409,
something that does not exist (NotFound) 404, any other Flowlink error (bad input, not published, ...) 400.
Bad request bodies are 422 (FastAPI's validation list under "detail"). Nothing a client sends yields a 500
with a stack trace; an unexpected server error is logged and answered {"detail": "internal server error"}.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flowlink.deployments import NotFound, RuleError
from flowlink.errors import FlowlinkError
from flowlink.store import Store

from . import agent, pages, user

log = logging.getLogger(__name__)


class StoreHolder:
    """The app's store, opened (and migrated) on first use, then shared by every request."""

    def __init__(self) -> None:
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = Store.open()
        return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.dispose()
                self._store = None


def _error(status: int, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _rule_error(request: Request, exc: RuleError) -> JSONResponse:
    return _error(409, exc)


async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
    return _error(404, exc)


async def _flowlink_error(request: Request, exc: FlowlinkError) -> JSONResponse:
    return _error(400, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("Flowlink API: %s %s failed", request.method, request.url.path)
    return JSONResponse({"detail": "internal server error (see the api-server log)"}, status_code=500)


def create_app() -> FastAPI:
    holder = StoreHolder()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # Airflow's api-server runs the lifespan of mounted apps
        yield
        holder.close()

    app = FastAPI(
        title="Flowlink API",
        version="1",
        summary="Environments, deployments and runs of Flowlink workflows.",
        description=(
            "Agent endpoints (`/agent/v1`) authenticate with the header `X-Agent-Token` (issued by "
            "`flowlink env token ENV`; the token's environment scopes every call). User endpoints (`/api/v1`) "
            "need an Airflow login: `Authorization: Bearer <jwt>` from `POST /auth/token`, or the UI's cookie.\n\n"
            "Errors are JSON `{\"detail\": message}`: 409 a deployment rule refuses the action now, "
            "404 not found, 400 other bad input, 401 no credentials, 403 bad credentials, "
            "415 a POST/PATCH user request that is not `application/json`, 422 an invalid body."
        ),
        lifespan=lifespan,
        openapi_tags=[
            {"name": "agent", "description": "Called by the agent installed in an environment."},
            {"name": "user", "description": "Called by people and the Flowlink pages, with an Airflow login."},
        ],
    )
    app.state.flowlink_store = holder
    app.add_exception_handler(RuleError, _rule_error)  # subclasses of FlowlinkError: the most specific handler wins
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(FlowlinkError, _flowlink_error)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(agent.router)
    app.include_router(user.router)
    app.include_router(pages.router)  # HTML, left out of the OpenAPI document
    return app
