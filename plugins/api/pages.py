"""The Flowlink pages inside the Airflow UI: server-side HTML under /flowlink/ui/ (Jinja2, autoescaped), one CSS
and one JS file. The plugin (flowlink_airflow.plugin) puts them into Airflow's menu as external views.

Every page calls the same functions as the CLI and the REST API (flowlink.actions, flowlink.deployments, the store);
whether an action is allowed, and why not, comes from those rule functions, never from the JavaScript. The buttons
post to the REST API (/flowlink/api/v1, JSON only).

Every page needs the Airflow login (Depends(get_user)): anonymous -> a redirect to Airflow's login that comes back
here; a bad token -> a 403 page. Then the permissions of access.py: a page shows only the workflows the user may
read (another one asked for by name is a 403 page), and the buttons of actions the user may not take are disabled
with the reason. Errors (RuleError, NotFound, other FlowlinkError, bad query parameters) are pages
with the message, never a stack trace or raw JSON.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import jinja2
import yaml
from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from flowlink import actions, deployments, publish, settings, trial, tries
from flowlink.deployments import NotFound, RuleError
from flowlink.errors import FlowlinkError
from flowlink.states import DeploymentAction, DeploymentStatus, RecordStatus, Step, StepStatus
from flowlink.store import Store, bucket, feeds, snapshots
from flowlink.store.deployments import Deployment
from flowlink.store.snapshots import StepRow

from .access import ADMIN, DEPLOY, EDIT, READ, READ_RUNS, RUN, Access, AccessDep, Forbidden
from .deps import StoreDep
from .models import MAX_ID, NAME_PATTERN

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PAGE_SIZE = 100
STATIC = {"flowlink.css": "text/css", "flowlink.js": "text/javascript"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)  # no inline script or style: nothing to inject into
NAV = [
    ("deployments", "Deployments"),
    ("environments", "Environments"),
    ("bucket", "Resync bucket"),
    ("snapshots", "Snapshots"),
    ("feeds", "Feeds"),
    ("try", "Try"),
]

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# ------------------------------------------------------------------ formatting (template filters)


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _took(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if not start or not end:
        return ""
    seconds = max(0, round((end - start).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


templates.filters["when"] = _when
templates.globals["took"] = _took


# ------------------------------------------------------------------ rendering, errors, login


def _bases(request: Request) -> tuple[str, str]:
    """(this app's path prefix, e.g. /flowlink; Airflow's own path prefix, usually '')."""
    return request.scope.get("root_path", ""), request.scope.get("app_root_path") or ""


def login_url(request: Request) -> str:
    """Airflow's login, coming back to this page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{_bases(request)[1]}/api/v2/auth/login?{urlencode({'next': here})}"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    base, airflow = _bases(request)
    page = template.removesuffix(".html")
    html = templates.get_template(template).render(
        base=base,
        airflow=airflow,
        ui=f"{base}/ui",
        api=f"{base}/api/v1",
        nav=NAV,
        page=page,
        login=login_url(request),
        **context,
    )
    return HTMLResponse(
        html, status_code=status_code, headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP}
    )


def error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", status_code, title=title, message=message, login_link=status_code == 403)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


class PageRoute(APIRoute):
    """Turns whatever a page (or its login dependency) raises into a page: the login redirect, a 403 page, or the
    error's message with a fitting status. Only the pages use it: the REST API keeps its JSON errors."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Forbidden as exc:  # logged in, but without the permission
                return error_page(request, 403, "Not allowed", str(exc.detail))
            except HTTPException as exc:
                if exc.status_code == 401:  # no login, or it expired
                    return RedirectResponse(login_url(request), status_code=302)
                if exc.status_code == 403:
                    return error_page(
                        request, 403, "Not allowed", f"{exc.detail}. Log in to Airflow again to see this page."
                    )
                return error_page(request, exc.status_code, "Cannot show this page", str(exc.detail))
            except RequestValidationError as exc:
                return error_page(request, 422, "Bad address", _validation_message(exc))
            except RuleError as exc:
                return error_page(request, 409, "Not now", str(exc))
            except NotFound as exc:
                return error_page(request, 404, "Not found", str(exc))
            except FlowlinkError as exc:
                return error_page(request, 400, "Cannot show this page", str(exc))
            except Exception:
                log.exception("Flowlink page %s failed", request.url.path)
                return error_page(
                    request, 500, "Something went wrong", "The page could not be shown; the api-server log tells why."
                )

        return page_handler


router = APIRouter(prefix="/ui", route_class=PageRoute, dependencies=[Depends(get_user)], include_in_schema=False)


# ------------------------------------------------------------------ query parameters and paging

Name = Annotated[str, Query(pattern=rf"^$|{NAME_PATTERN}", max_length=63)]
Status = Annotated[str, Query(pattern=rf"^(|{'|'.join(RecordStatus)})$")]
Page = Annotated[int, Query(ge=1, le=1_000_000)]
Day = Annotated[str, Query(max_length=32, description="YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)")]


def _day(value: str, name: str, *, end: bool = False) -> dt.datetime | None:
    """A date filter: a day (the whole day; `end` means up to the end of it) or a time, in UTC."""
    if not value:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            date = dt.date.fromisoformat(value)
            if end and date == dt.date.max:  # up to the end of time: no limit (the next day does not exist)
                return None
            day = dt.datetime.combine(date, dt.time(), dt.UTC)
            return day + dt.timedelta(days=1) if end else day
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FlowlinkError(f"{name}: {value!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _pager(request: Request, page: int, total: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    pages = max(1, math.ceil(total / size))

    def url(n: int) -> str:
        params = {k: v for k, v in request.query_params.items() if v and k != "page"}
        if n > 1:
            params["page"] = str(n)
        return f"{request.url.path}?{urlencode(params)}" if params else request.url.path

    offset = (page - 1) * size
    shown = offset < total  # past the last page: nothing to show, "previous" leads back to the last one
    return {
        "page": page,
        "pages": pages,
        "total": total,
        "first": offset + 1 if shown else 0,
        "last": min(offset + size, total) if shown else 0,
        "prev": url(min(page - 1, pages)) if page > 1 else None,
        "next": url(page + 1) if page < pages else None,
        "offset": offset,
        "size": size,
    }


def published_workflows() -> list[str]:
    """Workflows with at least one published version (folders under published/), by name."""
    folder = settings.published_dir()
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and re.fullmatch(NAME_PATTERN, p.name) and publish.versions(p.name)
    )


def _readable_published(access: Access) -> list[str]:
    """The published workflows the user may read, by name."""
    workflows = published_workflows()
    readable = access.readable(workflows)
    return [w for w in workflows if w in readable]


def _choices(current: str, *names: list[str]) -> list[str]:
    return sorted({n for group in names for n in group} | ({current} if current else set()))


def _refusal(check: Callable[..., object], *args: Any) -> str | None:
    """None when the rule function allows the action now, else its reason."""
    try:
        check(*args)
    except FlowlinkError as exc:
        return str(exc)
    return None


def run_link(airflow: str, dag_id: str, run_id: str, task_id: str | None = None) -> str:
    url = f"{airflow}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{url}/tasks/{quote(task_id, safe='')}" if task_id else url


templates.globals["run_link"] = run_link


# ------------------------------------------------------------------ pages


@router.get("")
@router.get("/")
def index(request: Request):
    return RedirectResponse(f"{_bases(request)[0]}/ui/deployments", status_code=302)


@router.get("/environments")
def environments_page(request: Request, store: StoreDep, access: AccessDep):
    return render(
        request,
        "environments.html",
        environments=deployments.environments_list(store),
        timeout_range=deployments.TIMEOUT_RANGE,
        fresh=int(deployments.HEARTBEAT_FRESH.total_seconds()),
        change_refused=access.refusal(ADMIN),
    )


def _latest_version(workflow: str) -> int | None:
    files = publish.versions(workflow)
    found = publish.VERSION_FILE.match(files[-1].name) if files else None
    return int(found["version"]) if found else None


def _deployment_actions(store: Store, access: Access, d: Deployment) -> list[dict[str, Any]]:
    """The buttons of a workflow's row, enabled or disabled (with the reason) by the user's permission and the
    deployment rules themselves."""
    workflow = d["workflow"]
    redeploy = d["status"] == DeploymentStatus.UNSUCCESSFUL or (
        d["status"] == DeploymentStatus.PENDING and d["action"] == DeploymentAction.DEPLOY and d["tries"] > 1
    )
    not_allowed = access.refusal(DEPLOY, workflow)
    deploy_refused = not_allowed or _refusal(deployments.check_deploy, store, workflow)
    undeploy_refused = not_allowed or _refusal(deployments.check_undeploy, store, workflow)
    latest = _latest_version(workflow)
    return [
        {
            "action": DeploymentAction.DEPLOY,
            "label": "Redeploy" if redeploy else "Deploy",
            "refused": deploy_refused,
            "title": f"deploy the latest published version (v{latest}) to the primary environment",
        },
        {
            "action": DeploymentAction.UNDEPLOY,
            "label": "Undeploy",
            "refused": undeploy_refused,
            "title": f"remove {workflow} from {d['environment']}",
        },
    ]


@router.get("/deployments")
def deployments_page(request: Request, store: StoreDep, access: AccessDep, environment: Name = ""):
    envs = deployments.environments_list(store)
    if environment:
        deployments.environment(store, environment)  # unknown -> NotFound -> a 404 page
    else:
        environment = next((e["name"] for e in envs if e["is_primary"]), envs[0]["name"] if envs else "")
    everything = deployments.listing(store)
    published = published_workflows()
    readable = access.readable([*published, *(d["workflow"] for d in everything)])
    listed = deployments.listing(store, environment) if environment else []
    rows = [
        {**d, "latest": _latest_version(d["workflow"]), "buttons": _deployment_actions(store, access, d)}
        for d in listed
        if d["workflow"] in readable
    ]
    ever = {d["workflow"] for d in everything}
    never = []
    for workflow in published:
        if workflow not in ever and workflow in readable:
            never.append(
                {
                    "workflow": workflow,
                    "latest": _latest_version(workflow),
                    "refused": access.refusal(DEPLOY, workflow) or _refusal(deployments.check_deploy, store, workflow),
                }
            )
    return render(request, "deployments.html", environments=envs, environment=environment, rows=rows, never=never)


@router.get("/bucket")
def bucket_page(
    request: Request,
    store: StoreDep,
    access: AccessDep,
    workflow: Name = "",
    touchpoint: Name = "",
    status: Status = "",
    since: Day = "",
    until: Day = "",
    page: Page = 1,
):
    workflows = _readable_published(access)
    workflow = workflow or (workflows[0] if workflows else "")
    if workflow:
        access.require(READ, workflow)
    if not workflow:
        return render(
            request,
            "bucket.html",
            workflow="",
            workflows=[],
            touchpoints=[],
            filters={},
            rows=[],
            pager=_pager(request, 1, 0),
            resync_refused=None,
            failed=0,
            unprocessed=0,
            no_unprocessed=None,
            statuses=bucket.STATUSES,
        )
    start, end = _day(since, "since"), _day(until, "until", end=True)
    chosen = RecordStatus(status) if status else None
    total = bucket.count(store, workflow, touchpoint=touchpoint or None, status=chosen, since=start, until=end)
    pager = _pager(request, page, total)
    rows = bucket.rows(
        store,
        workflow,
        touchpoint=touchpoint or None,
        status=chosen,
        since=start,
        until=end,
        limit=PAGE_SIZE,
        offset=pager["offset"],
    )
    try:
        live = publish.live(workflow)
    except FlowlinkError:  # a damaged live file: the resync buttons tell why (actions.live_workflow)
        live = None
    spec_touchpoints = [tp["name"] for tp in live.spec["touchpoints"]] if live else []
    failed = bucket.count(store, workflow, touchpoint=touchpoint, status=RecordStatus.FAILED) if touchpoint else 0
    unprocessed, no_unprocessed = 0, None  # Unprocessed records that ended runs left behind (actions.unprocessed_runs)
    if touchpoint:
        try:
            ended, running = actions.unprocessed_runs(store, workflow, touchpoint)
            unprocessed = sum(ended.values())
            no_unprocessed = None if unprocessed else actions.nothing_unprocessed(workflow, touchpoint, running)
        except FlowlinkError as exc:  # Airflow's database cannot be read: the button tells why
            no_unprocessed = str(exc)

    def resync_refused() -> str | None:
        if not touchpoint:
            return "choose a touchpoint first: a resync sends records of one touchpoint"
        return (
            access.refusal(RUN, workflow)
            or _refusal(deployments.refuse_while_pending, store, workflow, "resync")
            or _refusal(actions.live_workflow, workflow)
        )

    return render(
        request,
        "bucket.html",
        workflow=workflow,
        workflows=_choices(workflow, workflows),
        touchpoints=_choices(touchpoint, bucket.touchpoints(store, workflow), spec_touchpoints),
        filters={"touchpoint": touchpoint, "status": status, "since": since, "until": until},
        rows=rows,
        pager=pager,
        resync_refused=resync_refused(),
        failed=failed,
        unprocessed=unprocessed,
        no_unprocessed=no_unprocessed,
        statuses=bucket.STATUSES,
    )


def run_status(run: Mapping[str, Any]) -> StepStatus:
    """A run (or its snapshot) at a glance when Airflow's state is not to be had: running while a step runs, failed
    if a step failed."""
    if run["running_steps"]:
        return StepStatus.RUNNING
    return StepStatus.FAILED if run["failed_steps"] else StepStatus.SUCCESS


@router.get("/snapshots")
def snapshots_page(request: Request, store: StoreDep, access: AccessDep, workflow: Name = "", page: Page = 1):
    workflows = _readable_published(access)
    workflow = workflow or (workflows[0] if workflows else "")
    if workflow:
        access.require(READ_RUNS, workflow)
    total = snapshots.run_count(store, workflow) if workflow else 0
    pager = _pager(request, page, total)
    found = snapshots.run_page(store, workflow, limit=PAGE_SIZE, offset=pager["offset"]) if workflow else []
    reasons = snapshots.failure_reasons(store, workflow, [r["run_id"] for r in found if r["failed_steps"]])
    states = actions.airflow_states(workflow, [r["run_id"] for r in found])  # as `flowlink runs`: Airflow's state
    runs = [
        {**run, "status": states.get(run["run_id"]) or run_status(run), "reason": reasons.get(run["run_id"])}
        for run in found
    ]
    return render(
        request, "snapshots.html", workflow=workflow, workflows=_choices(workflow, workflows), runs=runs, pager=pager
    )


def _step_key(touchpoint: str, step: Step) -> str:
    return f"{touchpoint}.{step}"


def _step_view(s: StepRow) -> dict[str, Any]:
    """A step as the snapshot page shows it: its key (customers.extract) is also its Airflow task id."""
    key = _step_key(s["touchpoint"], s["step"])
    return {**s, "key": key, "task_id": key}


@router.get("/snapshot")
def snapshot_page(
    request: Request,
    store: StoreDep,
    access: AccessDep,
    workflow: Annotated[str, Query(min_length=1, max_length=250)],
    run_id: Annotated[str, Query(min_length=1, max_length=250)],
    step: Annotated[str, Query(pattern=rf"^$|^[a-z][a-z0-9_]*\.({'|'.join(Step)})$", max_length=80)] = "",
    status: Status = "",
    page: Page = 1,
):
    if not re.fullmatch(NAME_PATTERN, workflow):  # the Snapshot tab shows on every DAG's runs, Flowlink's or not
        raise NotFound(f"{workflow} is not a Flowlink workflow: its runs have no process snapshot")
    access.require(READ_RUNS, workflow)
    steps = [_step_view(s) for s in snapshots.run_steps(store, workflow, run_id)]
    if not steps:
        raise NotFound(
            f"no snapshot of run {run_id!r} of {workflow}: the run has not started a step yet, "
            f"or its snapshot was purged"
        )
    summary = {
        "running_steps": sum(s["status"] == StepStatus.RUNNING for s in steps),
        "failed_steps": sum(s["status"] == StepStatus.FAILED for s in steps),
    }
    ended = [s["ended_at"] for s in steps if s["ended_at"]]
    run = {
        "status": run_status(summary),
        "version": steps[0]["version"],
        "started_at": min(s["started_at"] for s in steps),
        "ended_at": max(ended) if ended and not summary["running_steps"] else None,
        "kind": snapshots.run_kind(store, workflow, run_id),
    }  # retry | resync | sync
    touchpoint, _, step_name = step.partition(".")
    of_step, of_status = Step(step_name) if step_name else None, RecordStatus(status) if status else None
    total = snapshots.data_log_count(
        store, workflow, run_id, touchpoint=touchpoint or None, step=of_step, status=of_status
    )
    pager = _pager(request, page, total)
    entries = snapshots.data_log_page(
        store,
        workflow,
        run_id,
        touchpoint=touchpoint or None,
        step=of_step,
        status=of_status,
        limit=PAGE_SIZE,
        offset=pager["offset"],
    )
    return render(
        request,
        "snapshot.html",
        workflow=workflow,
        run_id=run_id,
        run=run,
        steps=steps,
        entries=entries,
        pager=pager,
        filters={"step": step, "status": status},
        statuses=bucket.STATUSES,
        file_url=lambda s, n: (
            f"{_bases(request)[0]}/ui/snapshot/file?"
            + urlencode(
                {"workflow": workflow, "run_id": run_id, "touchpoint": s["touchpoint"], "step": s["step"], "n": n}
            )
        ),
    )


@router.get("/snapshot/file")
def snapshot_file(
    store: StoreDep,
    access: AccessDep,
    workflow: Annotated[str, Query(pattern=NAME_PATTERN, max_length=63)],
    run_id: Annotated[str, Query(min_length=1, max_length=250)],
    touchpoint: Annotated[str, Query(pattern=NAME_PATTERN, max_length=63)],
    step: Annotated[str, Query(pattern=rf"^({'|'.join(Step)})$")],
    n: Annotated[int, Query(ge=1, le=1_000_000, description="the step's n-th batch file")],
):
    """A batch file of a step, only if the user may read the workflow's runs, the step's snapshot lists the file and
    it lies in the staging folder."""
    access.require(READ_RUNS, workflow)
    found = [s for s in snapshots.run_steps(store, workflow, run_id, touchpoint) if s["step"] == step]
    if not found or n > len(found[0]["files"]):
        raise HTTPException(404, f"the snapshot of {touchpoint}.{step} in run {run_id} lists no batch file {n}")
    if "://" in found[0]["files"][n - 1]:
        raise HTTPException(
            404,
            f"batch file {n} of {touchpoint}.{step} is on object storage: read it there ({found[0]['files'][n - 1]})",
        )
    listed = Path(found[0]["files"][n - 1])
    staging = settings.staging_dir().resolve()
    path = listed.resolve()  # symlinks and .. resolved: what would really be read
    if not path.is_relative_to(staging):
        raise HTTPException(403, f"batch file {n} of {touchpoint}.{step} is not in the staging folder: not served")
    if not path.is_file():
        raise HTTPException(
            404,
            f"batch file {n} of {touchpoint}.{step} is gone from the staging folder (the run's files were cleaned up)",
        )
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{workflow}-{run_id}-{touchpoint}-{step}-{listed.name}")
    return FileResponse(
        path,
        media_type="application/xml",
        filename=name,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/feeds")
def feeds_page(
    request: Request,
    store: StoreDep,
    access: AccessDep,
    tag: Annotated[str, Query(pattern=r"^[a-z_-]{0,32}$")] = "",
    workflow: Name = "",
    page: Page = 1,
):
    """Entries of the workflows the user may read, and those of no workflow (environments, tokens)."""
    if workflow:
        access.require(READ, workflow)
    mentioned = feeds.workflows(store)
    hidden = mentioned - access.readable(mentioned)
    pager = _pager(request, page, feeds.count(store, workflow=workflow or None, tag=tag or None, hidden=hidden))
    entries = feeds.entries(
        store, workflow=workflow or None, tag=tag or None, hidden=hidden, limit=PAGE_SIZE, offset=pager["offset"]
    )
    return render(
        request,
        "feeds.html",
        entries=entries,
        pager=pager,
        filters={"tag": tag, "workflow": workflow},
        tags=_choices(tag, feeds.tags(store)),
        workflows=_choices(workflow, _readable_published(access)),
    )


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def spec_text(spec: dict[str, Any]) -> str:
    """A published spec as the Try page's editor shows it: YAML in the spec's own order (a published file keeps its
    keys sorted: the model puts them back in order), without the empty fields the compiled spec fills in when it
    reads back as the same spec (else every field)."""
    from flowlink.spec import Workflow, parse_text

    def dump(value: Any) -> str:
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=120)

    try:
        spec = Workflow.model_validate(spec).model_dump(mode="json")
    except ValueError:  # pydantic's ValidationError: shown as it is
        pass
    text = dump(_without_nulls(spec))
    try:
        if parse_text(text, publish.DRAFT).model_dump(mode="json") == spec:
            return text
    except FlowlinkError:
        pass
    return dump(spec)


def _version_numbers(workflow: str) -> list[int]:
    """The published versions of a workflow, newest first."""
    found = (publish.VERSION_FILE.match(p.name) for p in publish.versions(workflow))
    return sorted((int(m["version"]) for m in found if m), reverse=True)


@router.get("/try")
def try_page(
    request: Request,
    store: StoreDep,
    access: AccessDep,
    workflow: Name = "",
    version: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    touchpoint: Name = "",
):
    """A touchpoint's mapping on live samples: a published version (or a draft typed into the editor), its samples
    fetched by a flowlink_try run where the workflow runs, then only the transform re-run on every edit. The buttons
    and the editor call the REST API (tries.py); who may fetch, edit and publish is decided here and there."""
    workflows = _readable_published(access)
    if workflow:
        access.require(READ, workflow)
        if workflow not in published_workflows():
            raise NotFound(f"workflow {workflow!r} has not been published (flowlink publish FILE)")
    else:
        workflow = workflows[0] if workflows else ""
    if not workflow:  # nothing published (or nothing readable): an empty editor for a draft
        return render(
            request,
            "try.html",
            workflow="",
            workflows=[],
            version=None,
            versions=[],
            touchpoint="",
            touchpoints=[],
            stylesheets={},
            text="",
            environment=None,
            fetch_refused=None,
            edit_refused=None,
            limit=trial.DEFAULT_LIMIT,
            max_limit=trial.MAX_LIMIT,
        )
    versions = _version_numbers(workflow)
    if version is not None and version not in versions:
        raise NotFound(
            f"workflow {workflow!r} has no published version {version} (it has v{versions[-1]} to v{versions[0]})"
        )
    art = publish.published(workflow, version)
    names = [tp["name"] for tp in art.spec["touchpoints"]]
    if touchpoint and touchpoint not in names:
        raise NotFound(f"{workflow} v{art.version} has no touchpoint {touchpoint!r} (it has: {', '.join(names)})")
    return render(
        request,
        "try.html",
        workflow=workflow,
        workflows=_choices(workflow, workflows),
        version=art.version,
        versions=versions,
        touchpoint=touchpoint or names[0],
        touchpoints=names,
        stylesheets=art.stylesheets,
        text=spec_text(art.spec),
        environment=tries.environment_for(store, workflow),
        fetch_refused=access.refusal(READ, workflow),
        edit_refused=access.refusal(EDIT, workflow),
        limit=trial.DEFAULT_LIMIT,
        max_limit=trial.MAX_LIMIT,
    )


@router.get("/static/{name}")
def static(name: str):
    if name not in STATIC:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})
