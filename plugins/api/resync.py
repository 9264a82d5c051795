"""Resync from the pages: the request and response bodies of POST /api/v1/workflows/{wf}/resync and
GET /api/v1/workflows/{wf}/runs/{run_id}, and the one read of Airflow's runs they need (the api-server has Airflow's
metadata database)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flowlink.airflow_adapter import AirflowRun, dag_runs
from flowlink.deployments import NotFound

from .models import Name

SourceId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
MAX_IDS = 10_000  # chosen one by one on a page; "all failed" and "all unprocessed" have no limit


class ResyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    touchpoint: Name
    ids: Annotated[list[SourceId], Field(min_length=1, max_length=MAX_IDS)] | None = Field(
        None, description="the source ids to send again (each must be in the bucket)"
    )
    failed: Annotated[bool, Field(strict=True)] = Field(
        False, description="true: every failed record of the touchpoint"
    )
    unprocessed: Annotated[bool, Field(strict=True)] = Field(
        False,
        description="true: every Unprocessed record of the touchpoint whose last run has ended (success or "
        "failed in Airflow): those a failed run left behind",
    )


class ResyncStarted(BaseModel):
    model_config = ConfigDict(extra="allow")

    resync_id: int
    run_id: str = Field(description="the Airflow run limited to the chosen records")
    touchpoint: str
    records: int = Field(description="how many records were chosen")


class RunProgress(BaseModel):
    model_config = ConfigDict(extra="allow")

    workflow: str
    run_id: str
    state: str | None = Field(description="the Airflow run's state: queued, running, success, failed")
    queued_at: dt.datetime | None
    start_date: dt.datetime | None
    end_date: dt.datetime | None
    finished: bool
    resync_id: int | None = Field(description="the resync request the run was started for; null for an ordinary run")
    touchpoint: str | None
    records: int = Field(description="how many records the resync chose (0 for an ordinary run)")
    counts: dict[str, int] = Field(description="status -> how many of the chosen records have it now")


def airflow_run(dag_id: str, run_id: str) -> AirflowRun:
    """Airflow's record of a run (state and times); NotFound when there is no such run."""
    run = dag_runs(dag_id, [run_id]).get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r} of {dag_id} in Airflow")
    return run
