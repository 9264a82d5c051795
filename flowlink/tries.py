"""The Try page's tries: a touchpoint's mapping on live samples, fetched where the workflow runs.

The api-server may not reach the source (it can sit at an on-premise site), so it does not read it: :func:`request`
records the try in the store and starts a run of the ``flowlink_try`` DAG with conf ``{"try_id", "queue"}``, whose
one task goes to the environment's worker queue (flowlink_airflow.policy) and calls :func:`run` there. The page
follows it with :func:`follow`, which hands the ended try over once and deletes it (flowlink.store.tries); from then
on the page keeps the samples, and editing a mapping rule re-runs only the transform on them (:func:`retransform`,
in the api-server, no source read).

What is tried is compiled content as a published file holds it ({"spec", "stylesheets"}): a published version's, or
a draft's (flowlink.publish.draft_content). The worker needs nothing but the store and the source's connection.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from flowlink import publish, trial
from flowlink.connectors.base import Batch, Record, Source
from flowlink.errors import FlowlinkError
from flowlink.spec import Application, Extract, Workflow
from flowlink.states import TryStatus
from flowlink.store import Store, bucket
from flowlink.store import tries as rows

log = logging.getLogger(__name__)

TRY_DAG = "flowlink_try"
KEEP = dt.timedelta(hours=1)  # a try no page came back for is deleted after this


def subject_of(content: dict[str, Any], touchpoint: str, version: int | None) -> trial.Subject:
    """The touchpoint of compiled content, as ``flowlink try`` tries it."""
    wf = Workflow.model_validate(content["spec"])
    tp = trial.touchpoint_of(wf, touchpoint)
    return trial.Subject(wf.name, version, tp, content["stylesheets"][tp.name], wf.source, wf.target)


def published_content(workflow: str, version: int | None = None) -> tuple[int, dict[str, Any]]:
    """(version, content) of a published version (the latest when None)."""
    art = publish.published(workflow, version)
    return art.version, {"spec": art.spec, "stylesheets": art.stylesheets}


def draft_content(text: str) -> dict[str, Any]:
    """A draft compiled (SpecError names each problem at its YAML path). A touchpoint with its own XSLT file keeps
    the stylesheet of the latest published version of the workflow (publish.draft_content)."""
    from flowlink.spec import parse_text

    name = parse_text(text, publish.DRAFT).name
    base = publish.published(name) if publish.versions(name) else None
    return publish.draft_content(text, base)


def environment_for(store: Store, workflow: str) -> str | None:
    """Where the workflow's tasks run, so where its samples are fetched: the environment it is live in; the default
    queue (None) when it was put live without one; else the primary environment, where deploying would put it."""
    from flowlink import deployments, settings

    folder = settings.live_dir()
    if (folder / f"{workflow}.json").exists():
        return None
    installed = sorted(folder.glob(f"*/{workflow}.json"))
    if installed:
        return installed[0].parent.name
    try:
        return deployments.primary(store)["name"]
    except FlowlinkError:  # no environment at all: the default queue
        return None


def request(
    store: Store,
    content: dict[str, Any],
    touchpoint: str,
    *,
    version: int | None,
    limit: int = trial.DEFAULT_LIMIT,
    ids: list[str] | None = None,
    user: str,
) -> rows.Try:
    """Record a try and start the flowlink_try run that fetches its samples on the environment's queue."""
    from flowlink.airflow_adapter import require_dag, trigger

    subject = subject_of(content, touchpoint, version)  # an unknown touchpoint is refused here
    if ids is not None:
        ids = list(dict.fromkeys(str(i) for i in ids))
        if not 1 <= len(ids) <= trial.MAX_LIMIT:
            raise FlowlinkError(f"give 1 to {trial.MAX_LIMIT} ids, got {len(ids)}")
    trial.check_limit(limit)
    require_dag(TRY_DAG)
    rows.purge(store, KEEP)
    environment = environment_for(store, subject.workflow)
    try_id = rows.create(
        store,
        workflow=subject.workflow,
        version=version,
        touchpoint=subject.touchpoint.name,
        requested_by=user,
        environment=environment,
        subject=content,
        limit=limit,
        ids=ids,
    )
    try:
        run_id = trigger(TRY_DAG, {"try_id": try_id, "queue": environment})
    except Exception as exc:
        rows.finish(store, try_id, error=f"could not start a {TRY_DAG} run: {exc}")
        raise
    rows.set_run(store, try_id, run_id)
    found = rows.get(store, try_id)
    assert found is not None
    return found


def run(store: Store, try_id: int, open_source: Callable[[Application], Source]) -> trial.Trial:
    """Fetch and try the samples of a try (the flowlink_try task, on the environment's worker); the result, or why it
    failed, goes into the store for the page. Raises what failed it, so the task fails with it in its log."""
    found = rows.get(store, try_id)
    if found is None or not rows.start(store, try_id):
        raise FlowlinkError(f"try {try_id} is gone: its page has had it, or no page came back for it within {KEEP}")
    try:
        subject = subject_of(found["subject"], found["touchpoint"], found["version"])
        result = trial.try_touchpoint(
            subject,
            lambda: open_source(subject.source),
            limit=found["limit"],
            ids=found["ids"],
            destination_ids=_known(store, subject),
        )
    except FlowlinkError as exc:
        rows.finish(store, try_id, error=str(exc))
        log.error("try %s of %s.%s failed: %s", try_id, found["workflow"], found["touchpoint"], exc)
        raise
    except Exception as exc:
        rows.finish(store, try_id, error=f"the try failed unexpectedly ({type(exc).__name__}): see the task log")
        log.error(
            "try %s of %s.%s failed unexpectedly (%s)",
            try_id,
            found["workflow"],
            found["touchpoint"],
            type(exc).__name__,
        )
        raise
    rows.finish(store, try_id, result=result.as_dict())
    return result


def _known(store: Store, subject: trial.Subject) -> trial.DestinationIds | None:
    """create_or_update updates by the ids the bucket keeps: read, never written."""
    if subject.touchpoint.load.method != "create_or_update":
        return None
    return lambda source_ids: bucket.destination_ids(store, subject.workflow, subject.touchpoint.name, source_ids)


def follow(store: Store, try_id: int, user: str) -> rows.Try:
    """The try as its page sees it; an ended one is handed over once and deleted. A run that ended (or vanished)
    without the try ending fails it with the reason. NotFound: no such try of this user (taken, expired)."""
    from flowlink.airflow_adapter import dag_runs
    from flowlink.deployments import NotFound

    found = rows.get(store, try_id)
    if found is None or found["requested_by"] != user:
        raise NotFound(f"no try {try_id} of yours: its result was shown already, or it expired after {KEEP}")
    if found["status"] in (TryStatus.QUEUED, TryStatus.RUNNING) and found["run_id"]:
        airflow_run = dag_runs(TRY_DAG, [found["run_id"]]).get(found["run_id"])
        if airflow_run is None or airflow_run.ended:
            state = airflow_run.state if airflow_run else "deleted"
            ended = rows.get(store, try_id)  # it may have ended since the first read
            if ended is not None and ended["status"] in (TryStatus.QUEUED, TryStatus.RUNNING):
                rows.finish(
                    store,
                    try_id,
                    error=f"the {TRY_DAG} run {found['run_id']} is {state} but its task never reported: see the run "
                    "and its task log in Airflow",
                )
    return rows.take(store, try_id) or found


class Fetched:
    """A source of the samples a page already has: no application is read."""

    def __init__(self, records: list[Record]):
        self.records = records

    def read(self, extract: Extract, *, since: Any = None, ids: list[str] | None = None, batch_size: int):
        wanted = None if ids is None else set(ids)
        yield [r for r in self.records if wanted is None or str(r.get(extract.key)) in wanted]

    def newest(self, extract: Extract, limit: int) -> Batch:
        return list(self.records[:limit])

    def close(self) -> None:
        pass


def retransform(subject: trial.Subject, records: list[Record], store: Store | None = None) -> trial.Trial:
    """Only the transform (and the load described) of samples already fetched: what editing a rule re-runs."""
    if not 1 <= len(records) <= trial.MAX_LIMIT:
        raise FlowlinkError(f"give 1 to {trial.MAX_LIMIT} fetched records, got {len(records)}")
    return trial.try_touchpoint(
        subject,
        lambda: Fetched(records),
        limit=len(records),
        destination_ids=_known(store, subject) if store is not None else None,
    )
