"""The store's side of environments, agent tokens and deployments: the SQL, with rows given out as typed records.

The rules (who may deploy, which step comes next, when a deployment ends) are in flowlink.deployments; it runs
these functions inside one ``transaction`` where a rule needs several statements to agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypedDict, cast

from sqlalchemy import Connection, func, select

from flowlink.states import DeploymentAction, DeploymentStatus, LogStatus
from flowlink.store.db import Store, utcnow
from flowlink.store.tables import agent_tokens, deployment_log, deployments, environments


class EnvironmentRow(TypedDict):
    name: str
    kind: str  # cloud | on-premise
    is_primary: bool
    enabled: bool
    pending_timeout: int  # minutes
    last_heartbeat: dt.datetime | None
    created_at: dt.datetime
    retry_max_tries: int
    retry_wait_minutes: int
    retry_batch_size: int
    retry_every: str  # hourly | daily
    last_retry_at: dt.datetime | None
    disconnect_alert_minutes: int


class TokenRow(TypedDict):
    id: int
    environment: str
    token_hash: str  # sha256 of the token; the token itself is never stored
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class Deployment(TypedDict):
    id: int
    workflow: str
    environment: str
    action: DeploymentAction
    version: int
    sha256: str
    status: DeploymentStatus
    tries: int
    started_at: dt.datetime
    pending_timeout: int  # minutes
    wait_till: dt.datetime
    ended_at: dt.datetime | None
    message: str | None


class LogLine(TypedDict):
    """A line of a deployment's step log: a step the agent reported (done, failed), or the start and the end (info)."""

    id: int
    deployment_id: int
    step: str  # a DeploymentStep for done and failed lines; "<action> started" or the final status for info lines
    status: LogStatus
    at: dt.datetime
    message: str | None


# ------------------------------------------------------------------ environments


def _environment(row: Any) -> EnvironmentRow:
    return cast(EnvironmentRow, dict(row._mapping))  # the record's keys are the table's columns


def environment(conn: Connection, name: str) -> EnvironmentRow | None:
    row = conn.execute(select(environments).where(environments.c.name == name)).first()
    return _environment(row) if row else None


def environment_list(conn: Connection) -> list[EnvironmentRow]:
    return [_environment(r) for r in conn.execute(select(environments).order_by(environments.c.name))]


def primary_environment(conn: Connection) -> EnvironmentRow | None:
    row = conn.execute(select(environments).where(environments.c.is_primary.is_(True))).first()
    return _environment(row) if row else None


def add_environment(conn: Connection, name: str, kind: str, pending_timeout: int) -> bool:
    """Insert an environment, primary when it is the first one; returns whether it is primary."""
    first = conn.execute(select(func.count()).select_from(environments)).scalar_one() == 0
    conn.execute(
        environments.insert().values(
            name=name, kind=kind, is_primary=first, enabled=True, pending_timeout=pending_timeout, created_at=utcnow()
        )
    )
    return first


def update_environment(conn: Connection, name: str, values: dict[str, Any]) -> None:
    """Change an environment's columns; ``is_primary=True`` moves the primary here (exactly one primary)."""
    if values.get("is_primary"):
        conn.execute(environments.update().values(is_primary=False))
    if values:
        conn.execute(environments.update().where(environments.c.name == name).values(**values))


def heartbeat(store: Store, name: str) -> None:
    with store.transaction() as conn:
        conn.execute(environments.update().where(environments.c.name == name).values(last_heartbeat=utcnow()))


# ------------------------------------------------------------------ agent tokens


def _token(row: Any) -> TokenRow:
    return cast(TokenRow, dict(row._mapping))


def add_token(conn: Connection, environment_name: str, token_hash: str) -> int:
    q = agent_tokens.insert().values(environment=environment_name, token_hash=token_hash, created_at=utcnow())
    return int(conn.execute(q.returning(agent_tokens.c.id)).scalar_one())


def tokens(conn: Connection, environment_name: str) -> list[TokenRow]:
    q = select(agent_tokens).where(agent_tokens.c.environment == environment_name).order_by(agent_tokens.c.id)
    return [_token(r) for r in conn.execute(q)]


def find_tokens(
    conn: Connection,
    environment_name: str,
    *,
    token_id: int | None = None,
    token_hash: str | None = None,
    hash_prefix: str | None = None,
) -> list[TokenRow]:
    """The environment's tokens with this id, hash or hash prefix: at most two (enough to tell one from many)."""
    q = select(agent_tokens).where(agent_tokens.c.environment == environment_name)
    if token_id is not None:
        q = q.where(agent_tokens.c.id == token_id)
    if token_hash is not None:
        q = q.where(agent_tokens.c.token_hash == token_hash)
    if hash_prefix is not None:
        q = q.where(agent_tokens.c.token_hash.startswith(hash_prefix, autoescape=True))
    return [_token(r) for r in conn.execute(q.order_by(agent_tokens.c.id).limit(2))]


def revoke_token(conn: Connection, token_id: int) -> TokenRow:
    """Revoke a token (a revoked one keeps its first revocation time); returns it."""
    conn.execute(
        agent_tokens.update()
        .where(agent_tokens.c.id == token_id, agent_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return _token(conn.execute(select(agent_tokens).where(agent_tokens.c.id == token_id)).one())


def environment_of_hash(store: Store, token_hash: str) -> str | None:
    """The environment of an unrevoked token with this hash."""
    q = select(agent_tokens.c.environment).where(
        agent_tokens.c.token_hash == token_hash, agent_tokens.c.revoked_at.is_(None)
    )
    with store.reading() as conn:
        return conn.execute(q).scalar()


# ------------------------------------------------------------------ deployments


def _deployment(row: Any) -> Deployment:
    d = dict(row._mapping)
    d.update(action=DeploymentAction(d["action"]), status=DeploymentStatus(d["status"]))
    return cast(Deployment, d)


def deployment(conn: Connection, deployment_id: int) -> Deployment | None:
    row = conn.execute(select(deployments).where(deployments.c.id == deployment_id)).first()
    return _deployment(row) if row else None


def last(conn: Connection, workflow: str, environment_name: str | None = None) -> Deployment | None:
    """The newest deployment of a workflow (to one environment, if given)."""
    q = select(deployments).where(deployments.c.workflow == workflow)
    if environment_name:
        q = q.where(deployments.c.environment == environment_name)
    row = conn.execute(q.order_by(deployments.c.id.desc()).limit(1)).first()
    return _deployment(row) if row else None


def latest(conn: Connection, environment_name: str | None = None) -> list[Deployment]:
    """The newest deployment of each workflow to each environment, by workflow."""
    newest = select(func.max(deployments.c.id)).group_by(deployments.c.workflow, deployments.c.environment)
    q = select(deployments).where(deployments.c.id.in_(newest)).order_by(deployments.c.workflow)
    if environment_name:
        q = q.where(deployments.c.environment == environment_name)
    return [_deployment(r) for r in conn.execute(q)]


def pending_ids(conn: Connection, environment_name: str) -> list[int]:
    q = select(deployments.c.id).where(
        deployments.c.environment == environment_name, deployments.c.status == DeploymentStatus.PENDING
    )
    return list(conn.execute(q.order_by(deployments.c.id)).scalars())


def add_deployment(
    conn: Connection,
    *,
    workflow: str,
    environment_name: str,
    action: DeploymentAction,
    version: int,
    sha256: str,
    tries: int,
    started_at: dt.datetime,
    pending_timeout: int,
    wait_till: dt.datetime,
) -> int:
    """Insert a Pending deployment; returns its id."""
    q = deployments.insert().values(
        workflow=workflow,
        environment=environment_name,
        action=action,
        version=version,
        sha256=sha256,
        status=DeploymentStatus.PENDING,
        tries=tries,
        started_at=started_at,
        pending_timeout=pending_timeout,
        wait_till=wait_till,
    )
    return int(conn.execute(q.returning(deployments.c.id)).scalar_one())


def end(conn: Connection, deployment_id: int, status: DeploymentStatus, message: str, *, reset_tries: bool) -> None:
    """A pending deployment ends with ``status`` (one that has ended already stays as it is)."""
    values: dict[str, Any] = {"status": status, "ended_at": utcnow(), "message": message}
    if reset_tries:
        values["tries"] = 0
    conn.execute(
        deployments.update()
        .where(deployments.c.id == deployment_id, deployments.c.status == DeploymentStatus.PENDING)
        .values(**values)
    )


def delete_deployment(conn: Connection, deployment_id: int) -> None:
    """A deployment and its log, gone."""
    conn.execute(deployment_log.delete().where(deployment_log.c.deployment_id == deployment_id))
    conn.execute(deployments.delete().where(deployments.c.id == deployment_id))


# ------------------------------------------------------------------ the step log


def add_log(
    conn: Connection,
    deployment_id: int,
    step: str,
    status: LogStatus,
    message: str | None,
    at: dt.datetime | None = None,
) -> None:
    conn.execute(
        deployment_log.insert().values(
            deployment_id=deployment_id, step=step, status=status, at=at or utcnow(), message=message
        )
    )


def log(conn: Connection, deployment_id: int) -> list[LogLine]:
    q = select(deployment_log).where(deployment_log.c.deployment_id == deployment_id).order_by(deployment_log.c.id)
    return [cast(LogLine, {**r._mapping, "status": LogStatus(r.status)}) for r in conn.execute(q)]


def done_steps(conn: Connection, deployment_id: int) -> list[str]:
    """The steps reported done, in the order reported."""
    q = (
        select(deployment_log.c.step)
        .where(deployment_log.c.deployment_id == deployment_id, deployment_log.c.status == LogStatus.DONE)
        .order_by(deployment_log.c.id)
    )
    return list(conn.execute(q).scalars())
