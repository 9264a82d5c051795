"""The Try page's endpoints (/api/v1): a touchpoint's mapping on live sample records, before publishing.

- ``POST /tries`` starts a try: the samples are fetched by a ``flowlink_try`` Airflow run on the environment's queue
  (flowlink.tries.request), since the api-server may not reach the source.
- ``GET /tries/{try_id}`` follows it; an ended try is handed over once (then 404): the page keeps the samples.
- ``POST /tries/transform`` re-runs only the transform on the samples the page has (no source read, well under 1 s).
- ``POST /tries/check`` validates a draft: its problems at their YAML paths are the answer, never a 400.
- ``POST /workflows/{workflow}/publish`` publishes a draft as the workflow's next version.

What is tried is a published version (read access to the workflow's DAG, as for its bucket) or a spec draft (edit
permission on the DAG the draft names: a draft reads the source the spec names and is what the DAG would run next).
A try is seen only by the user who asked for it (404 for anyone else). A draft that does not validate is 400 with
every problem (app.py's SpecError handler). The POST endpoints accept only Content-Type application/json (user.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from flowlink import actions, publish, trial, tries
from flowlink.errors import FlowlinkError
from flowlink.spec import SpecError, parse_text
from flowlink.states import TrialStatus, TryStatus
from flowlink.store import tries as try_rows

from .access import EDIT, READ, Access, AccessDep
from .deps import StoreDep
from .models import MAX_ID, DbInt, ErrorBody, Name
from .resync import SourceId
from .user import ERRORS, change
from .user import Workflow as WorkflowName

MAX_DRAFT = 200_000  # characters of spec YAML: far more than a spec needs, little for the api-server to parse
MAX_FIELDS = 1_000  # fields of one sample record sent back to /tries/transform

Draft = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DRAFT)]
SampleRecord = Annotated[dict[str, Any], Field(max_length=MAX_FIELDS)]


# ------------------------------------------------------------------ request bodies


class _Tried(BaseModel):
    """What is tried: a published version of a workflow, or a spec draft; and which touchpoint."""

    model_config = ConfigDict(extra="forbid")

    workflow: Name | None = Field(None, description="a published workflow (not with draft)")
    version: DbInt | None = Field(None, description="its published version; null: the latest")
    draft: Draft | None = Field(None, description="spec YAML text, unpublished (not with workflow)")
    touchpoint: Name

    @model_validator(mode="after")
    def _workflow_or_draft(self) -> _Tried:
        if (self.workflow is None) == (self.draft is None):
            raise ValueError("give either workflow (a published version) or draft (spec YAML text)")
        if self.draft is not None and self.version is not None:
            raise ValueError("version goes with workflow: a draft has no version")
        return self


class TryRequest(_Tried):
    limit: Annotated[int, Field(strict=True, ge=1, le=trial.MAX_LIMIT)] = Field(
        trial.DEFAULT_LIMIT, description="how many of the newest records to fetch (without ids)"
    )
    ids: Annotated[list[SourceId], Field(min_length=1, max_length=trial.MAX_LIMIT)] | None = Field(
        None, description="fetch these source ids instead of the newest records"
    )


class TransformRequest(_Tried):
    records: Annotated[list[SampleRecord], Field(min_length=1, max_length=trial.MAX_LIMIT)] = Field(
        description="the source fields of the samples a try fetched (each record's `source`)"
    )


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    draft: Draft


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: Draft = Field(description="the spec YAML text to publish; its name must be the workflow of the path")


# ------------------------------------------------------------------ response bodies


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class Problem(_Response):
    path: str = Field(description='where in the YAML, as "touchpoints[0].mapping[1].source"; "" for the whole spec')
    message: str


class ProblemsBody(ErrorBody):
    problems: list[Problem]


class TrialRequestOut(_Response):
    target: str = Field(description="the target's type: rest, sql or file")
    method: str
    where: str = Field(description="REST: the path; SQL: the table; file: the file")
    body: dict[str, Any]
    note: str


class TrialRecordOut(_Response):
    key: str
    status: TrialStatus
    step: str | None = Field(description="where it failed or was skipped: extract, transform or load")
    message: str | None = Field(description="the message a run would give it")
    source: dict[str, Any] | None = Field(description="the source fields as read")
    output: list[dict[str, Any]] = Field(description="the stylesheet's output, typed as the load reads it")
    requests: list[TrialRequestOut] = Field(description="what the load would send; nothing is sent")


class TrialOut(_Response):
    workflow: str
    version: int | None = Field(description="the published version tried; null for a draft")
    touchpoint: str
    source: str = Field(description='what was read, as "sql source demo_erp: table customers"')
    chosen: str = Field(description="which records were chosen")
    stylesheet: str = Field(description="the touchpoint's XSLT")
    records: list[TrialRecordOut]


class TryStarted(_Response):
    try_id: int
    run_id: str | None = Field(description="the flowlink_try Airflow run fetching the samples")
    workflow: str
    version: int | None
    touchpoint: str
    environment: str | None = Field(description="whose worker queue fetches the samples; null: the default queue")
    status: TryStatus


class TryState(TryStarted):
    error: str | None = Field(description="why the try failed")
    result: TrialOut | None = Field(description="the samples tried, once the try succeeded")


class CheckOut(_Response):
    workflow: str | None = Field(description="the draft's name, when it has one")
    touchpoints: list[str] = Field(description="the names of the draft's touchpoints, as far as they can be read")
    problems: list[Problem] = Field(description="empty: the draft is valid")


class PublishedOut(_Response):
    workflow: str
    version: int
    created: bool = Field(description="false: the latest version has this content already; nothing was written")
    sha256: str


# ------------------------------------------------------------------ helpers

SPEC_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"model": ProblemsBody, "description": "a draft that does not validate (each problem at its YAML path)"},
}


def _change(what: str | None = None) -> dict[str, Any]:
    """user.change() (the permission, then JSON only), answering 400 with the problems of an invalid draft."""
    route = change(what)
    return {**route, "responses": {**route["responses"], **SPEC_PROBLEMS}}


def problems_of(exc: SpecError) -> list[dict[str, str]]:
    return [{"path": path, "message": message} for path, message in exc.problems]


def _user(access: Access) -> str:
    """The Airflow user a try belongs to."""
    user: Any = access.user
    return str(user.get_name() or user.get_id())[:255]


def _tried(access: Access, body: _Tried) -> tuple[int | None, dict[str, Any]]:
    """(version, compiled content) of what is tried, once the user may: READ for a published version, EDIT on the
    name a draft gives (known only once it validates)."""
    if body.workflow is not None:
        access.require(READ, body.workflow)
        return tries.published_content(body.workflow, body.version)
    access.require(EDIT, parse_text(body.draft or "", publish.DRAFT).name)
    return None, tries.draft_content(body.draft or "")


def _names(text: str) -> tuple[str | None, list[str]]:
    """The name and touchpoint names of a draft that does not validate, read leniently (for the page's choices)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError):
        return None, []
    if not isinstance(data, dict):
        return None, []
    name, found = data.get("name"), data.get("touchpoints")
    names = [tp["name"] for tp in found if isinstance(tp, dict)] if isinstance(found, list) else []
    return (name if isinstance(name, str) else None), [n for n in names if isinstance(n, str)]


def _started(found: try_rows.Try) -> dict[str, Any]:
    return {
        "try_id": found["id"],
        "run_id": found["run_id"],
        "workflow": found["workflow"],
        "version": found["version"],
        "touchpoint": found["touchpoint"],
        "environment": found["environment"],
        "status": found["status"],
    }


# ------------------------------------------------------------------ routes

router = APIRouter(prefix="/api/v1", tags=["user"], dependencies=[Depends(get_user)], responses=ERRORS)

TryId = Annotated[int, Path(ge=1, le=MAX_ID, description="the try's id (from POST /tries)")]


@router.post(
    "/tries",
    status_code=201,
    summary="Fetch sample records of a touchpoint and try its mapping on them",
    response_model=TryStarted,
    **_change(),
)
def start_try(store: StoreDep, access: AccessDep, body: TryRequest):
    """Start a try of a published version (read access to the workflow's DAG) or of a draft (edit permission on the
    DAG the draft names). A flowlink_try Airflow run fetches the samples on the workflow's environment queue; follow it
    with GET /tries/{try_id}. An invalid draft is 400 with its problems. JSON body only."""
    version, content = _tried(access, body)
    found = tries.request(
        store, content, body.touchpoint, version=version, limit=body.limit, ids=body.ids, user=_user(access)
    )
    return _started(found)


@router.get(
    "/tries/{try_id}",
    summary="Follow a try; an ended one is handed over once",
    response_model=TryState,
    responses={404: {"model": ErrorBody, "description": "no such try of this user (shown already, or expired)"}},
)
def follow_try(store: StoreDep, access: AccessDep, try_id: TryId):
    """Queued or running: its state. Success or failed: its result or error, once; the try is deleted as it is
    handed over (404 afterwards). Only the user who started it sees it; it needs read access to its workflow."""
    user = _user(access)
    found = try_rows.get(store, try_id)
    if found is not None and found["requested_by"] == user:
        access.require(READ, found["workflow"])
    found = tries.follow(store, try_id, user)  # NotFound (404) for another user's try or none
    return {**_started(found), "error": found["error"], "result": found["result"]}


@router.post(
    "/tries/transform",
    summary="Transform the samples a try fetched again, with this mapping",
    response_model=TrialOut,
    **_change(),
)
def transform(store: StoreDep, access: AccessDep, body: TransformRequest):
    """Only the transform (and the load described) of the given records: what editing a mapping rule re-runs. No
    source is read and nothing is written. Permissions as POST /tries. JSON body only."""
    version, content = _tried(access, body)
    subject = tries.subject_of(content, body.touchpoint, version)
    return tries.retransform(subject, body.records, store).as_dict()


@router.post("/tries/check", summary="Validate a spec draft", response_model=CheckOut, **change())
def check(access: AccessDep, body: CheckRequest):
    """The draft's problems, each at its YAML path (none: it is valid), its name and touchpoints. A touchpoint with
    its own XSLT file keeps the stylesheet of the workflow's latest published version if the user may read it. JSON
    body only."""
    try:
        wf = parse_text(body.draft, publish.DRAFT)
        base = publish.published(wf.name) if publish.versions(wf.name) and access.may(READ, wf.name) else None
        publish.draft_content(body.draft, base)
    except SpecError as exc:
        name, touchpoints = _names(body.draft)
        return {"workflow": name, "touchpoints": touchpoints, "problems": problems_of(exc)}
    return {"workflow": wf.name, "touchpoints": [tp.name for tp in wf.touchpoints], "problems": []}


@router.post(
    "/workflows/{workflow}/publish",
    status_code=201,
    summary="Publish a spec draft as the workflow's next version",
    response_model=PublishedOut,
    **_change(EDIT),
)
def publish_draft(store: StoreDep, workflow: WorkflowName, body: PublishRequest):
    """A new version when the compiled content differs from the latest (created: true), else the latest. Needs edit
    permission on the workflow's DAG; the draft's name must be the workflow of the path. Deploying puts it live.
    JSON body only."""
    name = parse_text(body.spec, publish.DRAFT).name
    if name != workflow:
        raise FlowlinkError(f"the draft is workflow {name!r}, not {workflow!r}: publish it as {name}, or rename it")
    done = actions.publish_draft(store, tries.draft_content(body.spec)).result
    art = done.artifact
    return {"workflow": art.workflow, "version": art.version, "created": done.created, "sha256": art.sha256}
