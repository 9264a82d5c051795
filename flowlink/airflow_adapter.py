"""Flowlink's one way into Airflow: nothing else in the ``flowlink`` package imports ``airflow``.

Public interfaces where Airflow has them: ``airflow.sdk`` (``BaseHook.get_connection`` in tasks and callbacks, the
configuration, ``ObjectStoragePath``) and the SMTP provider's hook. The CLI and the REST API also list runs and
their task states, trigger runs and look up connections outside any task; Airflow 3.3 has no public interface for
that in-process, so those functions use Airflow's own models and ``trigger_dag`` on its metadata database, here only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowlink.errors import FlowlinkError

TRACKER_DAG = "flowlink_deployments"  # the deployment tracker: one run per deployment
DONE = ("success", "failed", "skipped", "upstream_failed", "removed")  # task states that will not change


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Airflow sets up its logging (to stdout) when first imported: keep its lines off a command's output. (The
    `flowlink` command also lowers Airflow's log level to errors before importing it: see flowlink.cli.main.)"""
    with contextlib.redirect_stdout(sys.stderr):
        yield


class AirflowUnreadable(FlowlinkError):
    """Airflow's metadata database cannot be read (not migrated, wrong AIRFLOW_HOME, database down)."""

    def __init__(self, exc: Exception):
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).splitlines() or [""])[0]
        super().__init__(
            f"cannot read Airflow's metadata database ({type(orig).__name__}: {first}): "
            f"is AIRFLOW_HOME set and `airflow db migrate` done?"
        )


@dataclass(frozen=True)
class AirflowRun:
    """Airflow's record of one run: state queued, running, success or failed; end_date only once it has ended."""

    run_id: str
    state: str
    queued_at: dt.datetime | None
    start_date: dt.datetime | None
    end_date: dt.datetime | None

    @property
    def ended(self) -> bool:
        return self.state in ("success", "failed")


@dataclass(frozen=True)
class ConnectionFields:
    """An Airflow connection's fields, as the connectors and checks take them."""

    conn_type: str | None
    host: str | None
    login: str | None
    password: str | None
    port: int | None
    schema: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def _fields(conn: Any) -> ConnectionFields:
    try:
        extra = conn.extra_dejson
    except Exception:  # extra that is not JSON: Airflow logs it and so do we, it holds nothing we can use
        extra = {}
    return ConnectionFields(
        conn.conn_type,
        conn.host,
        conn.login,
        conn.password,
        conn.port,
        conn.schema,
        extra if isinstance(extra, dict) else {},
    )


# ------------------------------------------------------------------ in tasks and callbacks (the Task SDK)


def task_connection(conn_id: str) -> ConnectionFields | None:
    """The connection as a task reads it (``airflow.sdk.BaseHook.get_connection``); None when Airflow has none."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return _fields(BaseHook.get_connection(conn_id))
    except AirflowNotFoundException:
        return None


def config(section: str, key: str, fallback: str) -> str:
    """An Airflow setting (``airflow.sdk.conf``); ``fallback`` when it is not set."""
    from airflow.sdk import conf

    return str(conf.get(section, key, fallback=fallback))


def smtp_conn_id() -> str:
    """The SMTP connection alerts are mailed through: Airflow's [email] email_conn_id, else smtp_default."""
    return config("email", "email_conn_id", "smtp_default")


def storage_path(url: str) -> Any:
    """An object-storage URL (s3://conn_id@bucket/prefix, gs://..., file://...) as an Airflow ObjectStoragePath."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url)


def send_email(
    to: str | Iterable[str], subject: str, html: str, *, from_email: str | None = None, conn_id: str | None = None
) -> None:
    """Mail through the SMTP connection ``conn_id`` (default :func:`smtp_conn_id`) with the SMTP provider's hook;
    the sender is ``from_email``, else the connection's extra ``from_email``, else flowlink@localhost."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id or smtp_conn_id()) as smtp:
        smtp.send_email_smtp(
            to=to, from_email=from_email or smtp.from_email or "flowlink@localhost", subject=subject, html_content=html
        )


# ------------------------------------------------------------------ outside tasks (CLI, REST API): the metadata database


def dags_folder() -> Path:
    """Airflow's [core] dags_folder, as this environment configures it (AIRFLOW__CORE__DAGS_FOLDER, airflow.cfg)."""
    return Path(config("core", "dags_folder", "~/airflow/dags")).expanduser()


def require_readable() -> None:
    """Raise AirflowUnreadable unless Airflow's metadata database answers."""
    with _quiet():
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with create_session() as session:
                session.execute(select(Connection.id).limit(1)).all()
        except SQLAlchemyError as exc:
            raise AirflowUnreadable(exc) from None


def connection(conn_id: str) -> ConnectionFields | None:
    """The Airflow connection ``conn_id``, or None when Airflow has none by that id. Read as Airflow's servers read
    it: AIRFLOW_CONN_* variables, the secrets backends configured, then the metadata database (outside a task
    ``airflow.sdk.BaseHook.get_connection`` reads only the first two in Airflow 3.3). Raises AirflowUnreadable when
    the database cannot be read (Airflow would then answer "not defined")."""
    with _quiet():
        from airflow.exceptions import AirflowNotFoundException
        from airflow.models.connection import Connection

        try:
            return _fields(Connection.get_connection_from_secrets(conn_id))
        except AirflowNotFoundException:
            require_readable()
            return None


def dag_runs(dag_id: str, run_ids: list[str] | None = None, limit: int | None = None) -> dict[str, AirflowRun]:
    """The runs of a DAG as Airflow knows them, by run id: these run ids, or the newest `limit` runs. Runs Airflow
    does not know (deleted, or never its own) are left out. Raises AirflowUnreadable."""
    with _quiet():
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        q = select(DagRun.run_id, DagRun.state, DagRun.queued_at, DagRun.start_date, DagRun.end_date).where(
            DagRun.dag_id == dag_id
        )
        if run_ids is not None:
            q = q.where(DagRun.run_id.in_(list(run_ids)[:1000]))
        if limit is not None:
            q = q.order_by(DagRun.run_after.desc()).limit(limit)
        try:
            with create_session() as session:
                rows = session.execute(q).all()
        except SQLAlchemyError as exc:
            raise AirflowUnreadable(exc) from None
    return {
        r.run_id: AirflowRun(r.run_id, str(getattr(r.state, "value", r.state)), r.queued_at, r.start_date, r.end_date)
        for r in rows
    }


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    """task id -> state of one run's task instances ("none" before the scheduler gave one a state)."""
    with _quiet():
        from airflow.models.dagrun import DagRun
        from sqlalchemy.exc import SQLAlchemyError

        try:
            tis = DagRun.fetch_task_instances(dag_id=dag_id, run_id=run_id)
        except SQLAlchemyError as exc:
            raise AirflowUnreadable(exc) from None
    return {ti.task_id: str(getattr(ti.state, "value", ti.state) or "none") for ti in tis}


def wait(
    dag_id: str,
    run_id: str,
    *,
    timeout: float | None,
    progress: Callable[[AirflowRun, dict[str, str]], None] | None = None,
    every: float = 2.0,
) -> AirflowRun:
    """Poll Airflow until the run has ended; ``progress(run, task_states)`` is called on every poll. Raises
    FlowlinkError when the run is still going after ``timeout`` seconds (it goes on in Airflow)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        run = dag_runs(dag_id, [run_id]).get(run_id)
        if run is None:
            raise FlowlinkError(f"Airflow has no run {run_id!r} of {dag_id} (deleted?)")
        if progress is not None:
            progress(run, task_states(dag_id, run_id))
        if run.ended:
            return run
        if deadline is not None and time.monotonic() >= deadline:
            raise FlowlinkError(
                f"run {run_id} of {dag_id} is still {run.state} after {timeout:g} s (--timeout); it goes "
                f"on in Airflow: see `flowlink runs {dag_id}`"
            )
        time.sleep(every if deadline is None else max(0.0, min(every, deadline - time.monotonic())))


def require_dag(dag_id: str) -> None:
    """Raise FlowlinkError unless Airflow's dag-processor has parsed the DAG."""
    with _quiet():
        from airflow.models.dag import DagModel
        from sqlalchemy.exc import SQLAlchemyError

        try:
            known = DagModel.get_current(dag_id)
        except SQLAlchemyError as exc:
            raise AirflowUnreadable(exc) from None
        if known is None:
            raise FlowlinkError(
                f"Airflow does not know the DAG {dag_id!r} yet: is the dag-processor running "
                f"(or run `airflow dags reserialize`)?"
            )


def trigger(dag_id: str, conf: dict[str, Any]) -> str:
    """Queue a run of a DAG; returns its run id."""
    with _quiet():
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.utils.types import DagRunTriggeredByType

        run = trigger_dag(dag_id, conf=conf, triggered_by=DagRunTriggeredByType.REST_API)
    if run is None:
        raise FlowlinkError(f"Airflow did not queue a run of {dag_id}")
    return run.run_id
