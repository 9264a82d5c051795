"""create_app(): the Flowlink REST API, served by Airflow's api-server under /flowlink.

Errors are always JSON ``{"detail": message}``: a rule that refuses the action right now (RuleError) is 409,
something that does not exist (NotFound) 404, any other Flowlink error (bad input, not published, ...) 400; a spec
draft that does not validate (SpecError) is 400 with its problems too: ``{"detail", "problems": [{"path",
"message"}]}``, each at its YAML path.
Bad request bodies are 422 (FastAPI's validation list under "detail", the rejected input made JSON-safe: a body of
bytes that are not UTF-8 is shown with replacement characters). An address under /ui that is no page is an HTML
error page, elsewhere JSON. Nothing a client sends yields a 500 with a stack trace (tests/test_api_properties.py);
an unexpected server error is logged and answered {"detail": "internal server error"}.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowlink.deployments import NotFound, RuleError
from flowlink.errors import FlowlinkError
from flowlink.spec import SpecError
from flowlink.store import Store

from . import agent, pages, tries, user

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


async def _spec_error(request: Request, exc: SpecError) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "problems": tries.problems_of(exc)}, status_code=400)


async def _flowlink_error(request: Request, exc: FlowlinkError) -> JSONResponse:
    return _error(400, exc)


MAX_ECHO = 200  # characters of a rejected value repeated in a 422


def _echo(value):
    """The rejected value as FastAPI shows it, made safe: a short scalar as is, text and bytes (not UTF-8: with
    replacement characters) cut to MAX_ECHO characters, NaN and Infinity as text, a list or object left out (it may
    be huge or nested thousands deep)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # a JSON body may hold NaN or Infinity, which a JSON answer cannot
    if value is None or isinstance(value, (bool, int, float)):
        return value if not isinstance(value, int) or abs(value) < 10**18 else str(value)[:MAX_ECHO]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO else value[:MAX_ECHO] + "..."
    return "(not shown)"


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422: a list of errors, each naming where (loc), why (msg, type) and the rejected input (_echo).
    FastAPI's own handler answers 500 for a body of bytes that are not UTF-8 or nested too deep to encode."""
    errors = []
    for e in exc.errors():
        error = {
            "type": str(e.get("type", "")),
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "invalid")),
        }
        if "input" in e:
            error["input"] = _echo(e["input"])
        errors.append(error)
    return JSONResponse({"detail": errors}, status_code=422)


def _route_path(request: Request) -> str:
    """The path inside this app (Airflow mounts it at /flowlink)."""
    path, root = request.scope.get("path", ""), request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _http_error(request: Request, exc: StarletteHTTPException):
    """HTTP errors raised outside a page route (an address that matches no route, a method not allowed): JSON, or an
    HTML error page under /ui. Page routes turn their own errors into pages (pages.PageRoute)."""
    if _route_path(request) == "/ui" or _route_path(request).startswith("/ui/"):
        return pages.error_page(
            request,
            exc.status_code,
            "Cannot show this page",
            "There is no such page here." if exc.status_code == 404 else str(exc.detail),
        )
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


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
            'Errors are JSON `{"detail": message}`: 409 a deployment rule refuses the action now, '
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
    app.exception_handler(RuleError)(_rule_error)  # subclasses of FlowlinkError: the most specific handler wins
    app.exception_handler(NotFound)(_not_found)
    app.exception_handler(SpecError)(_spec_error)
    app.exception_handler(FlowlinkError)(_flowlink_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(Exception)(_unexpected)
    app.include_router(agent.router)
    app.include_router(user.router)
    app.include_router(tries.router)
    app.include_router(pages.router)  # HTML, left out of the OpenAPI document
    return app
