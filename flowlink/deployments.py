"""Environments, agents and deployments: the rules of the product pages. No Airflow, no HTTP, no SQL here.

A deployment puts a published version on the PRIMARY environment. It starts Pending with
wait_till = started + the environment's pending timeout; its agent reports each step (DEPLOYMENT_STEPS); it ends
Successful when the last step is reported (tries back to 0), or Unsuccessful when a step fails or wait_till passes
first (the tracking sensor in Airflow keeps that deadline). The CLI, the REST API, the agent endpoints and the
tracking sensor all call these functions; the store's side is flowlink.store.deployments.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Literal, TypedDict

from sqlalchemy import Connection

from flowlink import publish
from flowlink.errors import FlowlinkError
from flowlink.spec import RETRY_EVERY, RETRY_LIMITS
from flowlink.states import DEPLOYMENT_STEPS, DeploymentAction, DeploymentStatus, DeploymentStep, LogStatus
from flowlink.store import Store, feeds
from flowlink.store import deployments as db
from flowlink.store.db import utcnow
from flowlink.store.deployments import Deployment, EnvironmentRow, LogLine, TokenRow

__all__ = [
    "AgentToken",
    "Deployment",
    "Environment",
    "LogLine",
    "NotFound",
    "NotPending",
    "PendingDeployment",
    "Progress",
    "RuleError",
    "StartedDeployment",
]

KINDS = ("cloud", "on-premise")
TIMEOUT_RANGE = (5, 60)
HEARTBEAT_FRESH = dt.timedelta(seconds=30)  # an agent heard from within this is connected


class Environment(EnvironmentRow):
    agent: Literal["connected", "disconnected"]  # heard from within HEARTBEAT_FRESH


class AgentToken(TypedDict):
    """An agent token as shown: never the token or its hash."""

    id: int
    environment: str
    fingerprint: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    active: bool


class Progress(Deployment):
    done: list[DeploymentStep]  # reported done, in order
    remaining: list[DeploymentStep]  # still to report, in order


class StartedDeployment(Deployment):
    run_id: str  # the Airflow run that tracks the deployment


class PendingDeployment(TypedDict):
    """What an agent is given to carry out (GET /agent/v1/deployments)."""

    id: int
    workflow: str
    action: DeploymentAction
    version: int
    sha256: str
    wait_till: dt.datetime
    done: list[DeploymentStep]
    remaining: list[DeploymentStep]


class RuleError(FlowlinkError):
    """An action the deployment rules refuse right now (the message says why)."""


class NotPending(RuleError):
    """A report or a download for a deployment that has ended; ``status`` says how it ended."""

    def __init__(self, d: Deployment):
        super().__init__(f"deployment {d['id']} is {d['status']}, no longer pending ({d['message']})")
        self.status = d["status"]


class NotFound(FlowlinkError):
    pass


# ------------------------------------------------------------------ environments


def _check_timeout(minutes: int) -> int:
    low, high = TIMEOUT_RANGE
    if not low <= int(minutes) <= high:
        raise FlowlinkError(f"pending timeout must be {low} to {high} minutes, got {minutes}")
    return int(minutes)


def add_environment(store: Store, name: str, kind: str, pending_timeout: int = 5) -> Environment:
    if not publish.VERSION_FILE.match(f"{name}-v0001.json"):
        raise FlowlinkError(f"environment name {name!r}: use lower-case letters, digits and _, starting with a letter")
    if kind not in KINDS:
        raise FlowlinkError(f"environment kind must be one of {', '.join(KINDS)}, got {kind!r}")
    minutes = _check_timeout(pending_timeout)
    with store.transaction() as conn:
        if db.environment(conn, name):
            raise FlowlinkError(f"environment {name!r} exists already")
        first = db.add_environment(conn, name, kind, minutes)
        feeds.add(
            store, "environment", f"environment {name} ({kind}) added" + (", primary" if first else ""), None, conn
        )
    return environment(store, name)


def _with_agent(row: EnvironmentRow) -> Environment:
    beat = row["last_heartbeat"]
    fresh = beat is not None and utcnow() - beat <= HEARTBEAT_FRESH
    return Environment(**row, agent="connected" if fresh else "disconnected")


def environments_list(store: Store) -> list[Environment]:
    with store.reading() as conn:
        return [_with_agent(r) for r in db.environment_list(conn)]


def environment(store: Store, name: str) -> Environment:
    with store.reading() as conn:
        row = db.environment(conn, name)
    if row is None:
        raise NotFound(f"no environment {name!r} (flowlink env list)")
    return _with_agent(row)


# Automatic retry of Failed records (flowlink/retry.py): the environment's settings, as a spec's `retry:` allows them.
RETRY_UNITS = {"max_tries": "tries", "wait_minutes": "minutes", "batch_size": "records"}


def _check_retry(column: str, value: object) -> int | str:
    key = column.removeprefix("retry_")
    if key == "every":
        if value not in RETRY_EVERY:
            raise FlowlinkError(f"retry every must be {' or '.join(RETRY_EVERY)}, got {value!r}")
        return str(value)
    (low, high), unit = RETRY_LIMITS[key], RETRY_UNITS[key]
    what = key.replace("_", " ")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FlowlinkError(f"retry {what} must be a whole number from {low} to {high} {unit}, got {value!r}")
    return value


def set_environment(
    store: Store,
    name: str,
    *,
    primary: bool = False,
    pending_timeout: int | None = None,
    enabled: bool | None = None,
    retry_max_tries: int | None = None,
    retry_wait_minutes: int | None = None,
    retry_batch_size: int | None = None,
    retry_every: str | None = None,
) -> Environment:
    environment(store, name)
    values: dict[str, int | str | bool] = {}
    if pending_timeout is not None:
        values["pending_timeout"] = _check_timeout(pending_timeout)
    if enabled is not None:
        values["enabled"] = enabled
    retry = {
        "retry_max_tries": retry_max_tries,
        "retry_wait_minutes": retry_wait_minutes,
        "retry_batch_size": retry_batch_size,
        "retry_every": retry_every,
    }
    values.update({k: _check_retry(k, v) for k, v in retry.items() if v is not None})
    if primary:
        values["is_primary"] = True
    with store.transaction() as conn:  # exactly one primary: moved in one transaction
        db.update_environment(conn, name, values)
        changes = ", ".join(f"{k}={v}" for k, v in values.items())
        feeds.add(store, "environment", f"environment {name}: {changes or 'no change'}", None, conn)
    return environment(store, name)


def primary(store: Store) -> Environment:
    with store.reading() as conn:
        row = db.primary_environment(conn)
    if row is None:
        raise RuleError("there is no primary environment: add one (flowlink env add NAME --kind cloud)")
    return _with_agent(row)


def heartbeat(store: Store, name: str) -> None:
    db.heartbeat(store, name)


# ------------------------------------------------------------------ agent tokens


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


FINGERPRINT = 12  # hex digits of the token's sha256 shown to tell tokens apart; says nothing about the token


def fingerprint(token: str) -> str:
    return _hash(token)[:FINGERPRINT]


def issue_token(store: Store, name: str) -> str:
    """A new agent token for the environment: 256 random bits, shown once; only its sha256 is stored."""
    environment(store, name)
    token = f"flk_{secrets.token_urlsafe(32)}"
    with store.transaction() as conn:
        token_id = db.add_token(conn, name, _hash(token))
        feeds.add(
            store, "token", f"agent token #{token_id} of {name} issued (fingerprint {fingerprint(token)})", None, conn
        )
    return token


def _shown(t: TokenRow) -> AgentToken:
    return AgentToken(
        id=t["id"],
        environment=t["environment"],
        fingerprint=t["token_hash"][:FINGERPRINT],
        created_at=t["created_at"],
        revoked_at=t["revoked_at"],
        active=t["revoked_at"] is None,
    )


def tokens(store: Store, name: str) -> list[AgentToken]:
    """An environment's agent tokens, oldest first: id, fingerprint, created, revoked; never the token or its hash."""
    environment(store, name)
    with store.reading() as conn:
        return [_shown(t) for t in db.tokens(conn, name)]


def revoke_token(store: Store, name: str, which: str | int) -> AgentToken:
    """Revoke one of the environment's agent tokens, named by its id, a fingerprint (8 or more hex digits of its
    sha256, as `tokens` shows) or the token itself. The very next request with it is refused (nothing caches
    tokens). Revoking a revoked token changes nothing."""
    environment(store, name)
    text = str(which).strip()
    with store.transaction() as conn:
        if text.isascii() and text.isdigit() and len(text) <= 10:
            found = db.find_tokens(conn, name, token_id=int(text))
        elif text.startswith("flk_"):
            found = db.find_tokens(conn, name, token_hash=_hash(text))
        elif 8 <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text.lower()):
            found = db.find_tokens(conn, name, hash_prefix=text.lower())
        else:
            raise FlowlinkError(
                f"name the token by its id, its fingerprint (8 or more hex digits) or the token "
                f"itself, got {text[:80]!r}"
            )
        if not found:
            raise NotFound(f"no agent token {text[:80]!r} of environment {name} (flowlink env token {name} --list)")
        if len(found) > 1:
            raise FlowlinkError(f"{text!r} matches more than one token of {name}: give more digits or the id")
        token = found[0]
        if token["revoked_at"] is None:
            token = db.revoke_token(conn, token["id"])
            feeds.add(store, "token", f"agent token #{token['id']} of {name} revoked", None, conn)
    return _shown(token)


def environment_of_token(store: Store, token: str | None) -> str | None:
    """The environment a valid, unrevoked agent token belongs to; None otherwise. Asked of the store on every
    request: a revoked token is refused at once."""
    return db.environment_of_hash(store, _hash(token)) if token else None


# ------------------------------------------------------------------ deployments


def _found(d: Deployment | None, deployment_id: int) -> Deployment:
    if d is None:
        raise NotFound(f"no deployment {deployment_id}")
    return d


def get(store: Store, deployment_id: int) -> Deployment:
    with store.reading() as conn:
        return _found(db.deployment(conn, deployment_id), deployment_id)


def last(store: Store, workflow: str, environment_name: str | None = None) -> Deployment | None:
    with store.reading() as conn:
        return db.last(conn, workflow, environment_name)


def refuse_while_pending(store: Store, workflow: str, what: str) -> None:
    """Deploy, execute, resync and undeploy wait while a deployment of the workflow is pending."""
    d = last(store, workflow)
    if d and d["status"] == DeploymentStatus.PENDING:
        raise RuleError(
            f"{what} refused: a deployment of {workflow} (v{d['version']} to {d['environment']}) is "
            f"pending, started {d['started_at']:%Y-%m-%d %H:%M:%S}, wait till {d['wait_till']:%H:%M:%S} UTC"
        )


def _start(
    store: Store, workflow: str, action: DeploymentAction, art: publish.Artifact, env: Environment
) -> Deployment:
    previous = last(store, workflow, env["name"])
    if action == DeploymentAction.DEPLOY:
        tries = (0 if previous is None or previous["status"] == DeploymentStatus.SUCCESSFUL else previous["tries"]) + 1
    else:
        tries = 1
    now = utcnow()
    wait_till = now + dt.timedelta(minutes=env["pending_timeout"])
    with store.transaction() as conn:
        deployment_id = db.add_deployment(
            conn,
            workflow=workflow,
            environment_name=env["name"],
            action=action,
            version=art.version,
            sha256=art.sha256,
            tries=tries,
            started_at=now,
            pending_timeout=env["pending_timeout"],
            wait_till=wait_till,
        )
        db.add_log(
            conn,
            deployment_id,
            f"{action} started",
            LogStatus.INFO,
            f"v{art.version} to {env['name']}, wait till {wait_till:%H:%M:%S} UTC",
            at=now,
        )
        feeds.add(
            store,
            action,
            f"{action} of {workflow} v{art.version} to {env['name']} started (try {tries})",
            workflow,
            conn,
        )
    return get(store, deployment_id)


def check_deploy(store: Store, workflow: str, version: int | None = None) -> tuple[publish.Artifact, Environment]:
    """Everything a deploy needs, or the reason it is refused: (published version, primary environment)."""
    env = primary(store)
    if not env["enabled"]:
        raise RuleError(
            f"deploy refused: the primary environment {env['name']} is disabled "
            f"(flowlink env set {env['name']} --enable)"
        )
    refuse_while_pending(store, workflow, "deploy")
    return publish.published(workflow, version), env


def deploy(store: Store, workflow: str, version: int | None = None) -> Deployment:
    """Start deploying the latest (or a given) published version to the primary environment."""
    art, env = check_deploy(store, workflow, version)
    return _start(store, workflow, DeploymentAction.DEPLOY, art, env)


def check_undeploy(store: Store, workflow: str) -> tuple[publish.Artifact, Environment]:
    """Undeploy is allowed once the workflow's deployment ended (Successful or Unsuccessful)."""
    refuse_while_pending(store, workflow, "undeploy")
    d = last(store, workflow)
    if d is None or (d["action"] == DeploymentAction.UNDEPLOY and d["status"] == DeploymentStatus.SUCCESSFUL):
        raise RuleError(f"undeploy refused: {workflow} is not deployed")
    return publish.published(workflow, d["version"]), environment(store, d["environment"])


def undeploy(store: Store, workflow: str) -> Deployment:
    """Remove a deployed workflow from its environment."""
    art, env = check_undeploy(store, workflow)
    return _start(store, workflow, DeploymentAction.UNDEPLOY, art, env)


def cancel(store: Store, deployment_id: int) -> None:
    """Take back a deployment whose tracking run could not be started (nothing half-written)."""
    with store.transaction() as conn:
        db.delete_deployment(conn, deployment_id)


def steps(store: Store, deployment_id: int) -> list[LogLine]:
    with store.reading() as conn:
        return db.log(conn, deployment_id)


def _remaining(d: Deployment, done: list[DeploymentStep]) -> list[DeploymentStep]:
    return [s for s in DEPLOYMENT_STEPS[d["action"]] if s not in done]


def _done(conn: Connection, deployment_id: int) -> list[DeploymentStep]:
    return [DeploymentStep(s) for s in db.done_steps(conn, deployment_id)]


def _end(conn: Connection, store: Store, d: Deployment, status: DeploymentStatus, message: str) -> None:
    reset = status == DeploymentStatus.SUCCESSFUL and d["action"] == DeploymentAction.DEPLOY  # tries back to 0
    db.end(conn, d["id"], status, message, reset_tries=reset)
    db.add_log(conn, d["id"], status, LogStatus.INFO, message)
    feeds.add(
        store,
        d["action"],
        f"{d['action']} of {d['workflow']} v{d['version']} to {d['environment']}: {status}"
        + (f" ({message})" if status != DeploymentStatus.SUCCESSFUL else ""),
        d["workflow"],
        conn,
    )


def expire_if_due(store: Store, deployment_id: int) -> None:
    """A deployment still pending after wait_till becomes Unsuccessful."""
    with store.transaction() as conn:
        d = _found(db.deployment(conn, deployment_id), deployment_id)
        if d["status"] == DeploymentStatus.PENDING and utcnow() >= d["wait_till"]:
            missing = _remaining(d, _done(conn, deployment_id))
            _end(
                conn,
                store,
                d,
                DeploymentStatus.UNSUCCESSFUL,
                f"wait till {d['wait_till']:%H:%M:%S} UTC passed before: {', '.join(missing)}",
            )


def check_download(store: Store, environment_name: str, deployment_id: int) -> Deployment:
    """The deployment whose published file an agent asks for: its environment's, and still pending."""
    if get(store, deployment_id)["environment"] != environment_name:
        raise NotFound(f"no deployment {deployment_id} for environment {environment_name}")
    expire_if_due(store, deployment_id)
    d = get(store, deployment_id)
    if d["status"] != DeploymentStatus.PENDING:
        raise NotPending(d)
    return d


def report_step(
    store: Store, environment_name: str, deployment_id: int, step: str, status: str, message: str | None = None
) -> Deployment:
    """An agent reports a step. Idempotent; refused (NotPending) once the deployment is no longer pending."""
    if status not in (LogStatus.DONE, LogStatus.FAILED):
        raise FlowlinkError(f"step status must be done or failed, got {status!r}")
    expire_if_due(store, deployment_id)
    with store.transaction() as conn:
        d = _found(db.deployment(conn, deployment_id), deployment_id)
        if d["environment"] != environment_name:
            raise NotFound(f"no deployment {deployment_id} for environment {environment_name}")
        order = DEPLOYMENT_STEPS[d["action"]]
        if step not in order:
            raise FlowlinkError(f"unknown step {step!r} for {d['action']}; steps: {', '.join(order)}")
        done = _done(conn, deployment_id)
        if status == LogStatus.DONE and step in done:  # a repeated report (say, its answer was lost) is harmless
            return d
        if d["status"] != DeploymentStatus.PENDING:
            raise NotPending(d)
        expected = _remaining(d, done)[0]
        if status == LogStatus.DONE and step != expected:
            raise FlowlinkError(f"step {step!r} out of order: next is {expected.value!r}")
        db.add_log(conn, deployment_id, step, LogStatus(status), message)
        if status == LogStatus.FAILED:
            _end(conn, store, d, DeploymentStatus.UNSUCCESSFUL, f"{step} failed: {message or 'no reason given'}")
        elif step == order[-1]:
            # The last step: Successful in the same transaction, so the status never lags the agent.
            _end(conn, store, d, DeploymentStatus.SUCCESSFUL, "every step reported by the agent")
        return _found(db.deployment(conn, deployment_id), deployment_id)


def progress(store: Store, deployment_id: int) -> Progress:
    """For the tracker: status, steps done, steps still to come, wait_till."""
    with store.reading() as conn:
        d = _found(db.deployment(conn, deployment_id), deployment_id)
        done = _done(conn, deployment_id)
    return Progress(**d, done=done, remaining=_remaining(d, done))


def complete(store: Store, deployment_id: int) -> Deployment:
    """Every step is reported: the deployment is Successful (the tracking sensor's safety net; the last
    step's report normally does it already)."""
    with store.transaction() as conn:
        d = _found(db.deployment(conn, deployment_id), deployment_id)
        if d["status"] == DeploymentStatus.PENDING:
            _end(conn, store, d, DeploymentStatus.SUCCESSFUL, "every step reported by the agent")
        return _found(db.deployment(conn, deployment_id), deployment_id)


def pending_for(store: Store, environment_name: str) -> list[PendingDeployment]:
    """What an environment's agent must do: its pending deployments with the steps still to carry out."""
    with store.reading() as conn:
        ids = db.pending_ids(conn, environment_name)
    out = []
    for deployment_id in ids:
        expire_if_due(store, deployment_id)
        d = progress(store, deployment_id)
        if d["status"] == DeploymentStatus.PENDING:
            out.append(
                PendingDeployment(
                    id=d["id"],
                    workflow=d["workflow"],
                    action=d["action"],
                    version=d["version"],
                    sha256=d["sha256"],
                    wait_till=d["wait_till"],
                    done=d["done"],
                    remaining=d["remaining"],
                )
            )
    return out


def listing(store: Store, environment_name: str | None = None) -> list[Deployment]:
    """The last deployment of each workflow (per environment): the product's Process Flow tab."""
    with store.reading() as conn:
        return db.latest(conn, environment_name)


def log_of(store: Store, workflow: str) -> tuple[Deployment, list[LogLine]]:
    """The last deployment of a workflow and its step log, at any time."""
    d = last(store, workflow)
    if d is None:
        raise NotFound(f"{workflow} has never been deployed")
    return d, steps(store, d["id"])
