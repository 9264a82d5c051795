"""Request and response bodies. Responses allow extra keys so a new column in the store does not break the API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"  # workflow and environment names (publish.VERSION_FILE)
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]
MAX_ID = 2**31 - 1  # ids and versions fit every database's integer column
DbInt = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


# ------------------------------------------------------------------ requests


class StepReport(_Request):
    step: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="one of the action's steps, in order (see `remaining` in the deployment list)"
    )
    status: Literal["done", "failed"]
    message: Annotated[str, StringConstraints(max_length=4000)] | None = None


class EnvironmentChange(_Request):
    primary: Literal[True] | None = Field(
        None, description="make this the primary environment (the old one stops being primary)"
    )
    pending_timeout: Annotated[int, Field(strict=True)] | None = Field(None, description="minutes, 5 to 60")
    enabled: Annotated[bool, Field(strict=True)] | None = None


class DeployRequest(_Request):
    workflow: Name
    version: DbInt | None = Field(None, description="a published version; null: the latest")


# ------------------------------------------------------------------ responses


class Heartbeat(_Response):
    environment: str
    server_time: dt.datetime


class Environment(_Response):
    name: str
    kind: str
    is_primary: bool
    enabled: bool
    pending_timeout: int
    last_heartbeat: dt.datetime | None
    created_at: dt.datetime
    agent: Literal["connected", "disconnected"]


class Deployment(_Response):
    id: int
    workflow: str
    environment: str
    action: Literal["deploy", "undeploy"]
    version: int
    sha256: str
    status: Literal["pending", "successful", "unsuccessful"]
    tries: int
    started_at: dt.datetime
    pending_timeout: int
    wait_till: dt.datetime
    ended_at: dt.datetime | None
    message: str | None


class StartedDeployment(Deployment):
    run_id: str = Field(description="the Airflow run that tracks the deployment")


class Progress(Deployment):
    done: list[str]
    remaining: list[str]


class PendingDeployment(_Response):
    id: int
    workflow: str
    action: Literal["deploy", "undeploy"]
    version: int
    sha256: str
    wait_till: dt.datetime
    done: list[str]
    remaining: list[str]


class PendingList(_Response):
    deployments: list[PendingDeployment]


class LogStep(_Response):
    id: int
    deployment_id: int
    step: str
    status: str
    at: dt.datetime
    message: str | None


class DeploymentLog(_Response):
    deployment: Deployment
    steps: list[LogStep]


class RunStarted(_Response):
    run_id: str


class AgentToken(_Response):
    id: int
    environment: str
    fingerprint: str = Field(
        description="the first hex digits of the token's sha256: tells tokens apart, reveals nothing"
    )
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    active: bool


class ErrorBody(BaseModel):
    detail: str


class NotPendingBody(ErrorBody):
    status: Literal["successful", "unsuccessful"] = Field(description="how the deployment ended")
