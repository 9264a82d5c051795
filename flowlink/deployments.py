"""Environments, agents and deployments: the rules of the product pages, on the store. No Airflow, no HTTP here.

A deployment puts a published version on the PRIMARY environment. It starts Pending with
wait_till = started + the environment's pending timeout; its agent reports each step; it ends
Successful when the last step is reported (tries back to 0), or Unsuccessful when a step fails or
wait_till passes first (the tracking sensor in Airflow keeps that deadline). The CLI, the REST API, the agent endpoints and the tracking sensor all
call these functions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import func, select

from flowlink import publish
from flowlink.errors import FlowlinkError
from flowlink.spec import RETRY_EVERY, RETRY_LIMITS
from flowlink.store import Store, feeds
from flowlink.store.db import utcnow
from flowlink.store.tables import agent_tokens, deployment_log, deployments, environments

STEPS = {
    "deploy": ["downloading workflow data", "downloading stylesheets", "installing", "deployed"],
    "undeploy": ["removing installed files", "undeployed"],
}
KINDS = ("cloud", "on-premise")
TIMEOUT_RANGE = (5, 60)
HEARTBEAT_FRESH = dt.timedelta(seconds=30)  # an agent heard from within this is connected


class RuleError(FlowlinkError):
    """An action the deployment rules refuse right now (the message says why)."""


class NotFound(FlowlinkError):
    pass


# ------------------------------------------------------------------ environments

def _check_timeout(minutes: int) -> int:
    low, high = TIMEOUT_RANGE
    if not low <= int(minutes) <= high:
        raise FlowlinkError(f"pending timeout must be {low} to {high} minutes, got {minutes}")
    return int(minutes)


def add_environment(store: Store, name: str, kind: str, pending_timeout: int = 5) -> dict:
    if not publish.VERSION_FILE.match(f"{name}-v0001.json"):
        raise FlowlinkError(f"environment name {name!r}: use lower-case letters, digits and _, starting with a letter")
    if kind not in KINDS:
        raise FlowlinkError(f"environment kind must be one of {', '.join(KINDS)}, got {kind!r}")
    minutes = _check_timeout(pending_timeout)
    with store.engine.begin() as conn:
        if conn.execute(select(environments.c.name).where(environments.c.name == name)).first():
            raise FlowlinkError(f"environment {name!r} exists already")
        first = conn.execute(select(func.count()).select_from(environments)).scalar_one() == 0
        conn.execute(environments.insert().values(name=name, kind=kind, is_primary=first, enabled=True,
                                                  pending_timeout=minutes, created_at=utcnow()))
        feeds.add(store, "environment", f"environment {name} ({kind}) added" + (", primary" if first else ""), None, conn)
    return environment(store, name)


def _decorate(row) -> dict:
    env = dict(row._mapping)
    beat = env["last_heartbeat"]
    env["agent"] = "connected" if beat and utcnow() - beat <= HEARTBEAT_FRESH else "disconnected"
    return env


def environments_list(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        return [_decorate(r) for r in conn.execute(select(environments).order_by(environments.c.name))]


def environment(store: Store, name: str) -> dict:
    with store.engine.connect() as conn:
        row = conn.execute(select(environments).where(environments.c.name == name)).first()
    if row is None:
        raise NotFound(f"no environment {name!r} (flowlink env list)")
    return _decorate(row)


# Automatic retry of Failed records (flowlink/retry.py): the environment's settings, as a spec's `retry:` allows them.
RETRY_UNITS = {"max_tries": "tries", "wait_minutes": "minutes", "batch_size": "records"}


def _check_retry(column: str, value) -> int | str:
    key = column.removeprefix("retry_")
    if key == "every":
        if value not in RETRY_EVERY:
            raise FlowlinkError(f"retry every must be {' or '.join(RETRY_EVERY)}, got {value!r}")
        return value
    (low, high), unit = RETRY_LIMITS[key], RETRY_UNITS[key]
    what = key.replace("_", " ")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FlowlinkError(f"retry {what} must be a whole number from {low} to {high} {unit}, got {value!r}")
    return value


def set_environment(store: Store, name: str, *, primary: bool = False, pending_timeout: int | None = None,
                    enabled: bool | None = None, retry_max_tries: int | None = None, retry_wait_minutes: int | None = None,
                    retry_batch_size: int | None = None, retry_every: str | None = None) -> dict:
    environment(store, name)
    values = {}
    if pending_timeout is not None:
        values["pending_timeout"] = _check_timeout(pending_timeout)
    if enabled is not None:
        values["enabled"] = enabled
    retry = {"retry_max_tries": retry_max_tries, "retry_wait_minutes": retry_wait_minutes,
             "retry_batch_size": retry_batch_size, "retry_every": retry_every}
    values.update({k: _check_retry(k, v) for k, v in retry.items() if v is not None})
    with store.engine.begin() as conn:
        if primary:  # exactly one primary: moved in one transaction
            conn.execute(environments.update().values(is_primary=False))
            values["is_primary"] = True
        if values:
            conn.execute(environments.update().where(environments.c.name == name).values(**values))
        changes = ", ".join(f"{k}={v}" for k, v in values.items())
        feeds.add(store, "environment", f"environment {name}: {changes or 'no change'}", None, conn)
    return environment(store, name)


def primary(store: Store) -> dict:
    with store.engine.connect() as conn:
        row = conn.execute(select(environments).where(environments.c.is_primary.is_(True))).first()
    if row is None:
        raise RuleError("there is no primary environment: add one (flowlink env add NAME --kind cloud)")
    return _decorate(row)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(store: Store, name: str) -> str:
    """A new agent token for the environment: 256 random bits, shown once; only its sha256 is stored."""
    environment(store, name)
    token = f"flk_{secrets.token_urlsafe(32)}"
    with store.engine.begin() as conn:
        token_id = conn.execute(agent_tokens.insert().values(environment=name, token_hash=_hash(token),
                                                             created_at=utcnow())).inserted_primary_key[0]
        feeds.add(store, "token", f"agent token #{token_id} of {name} issued (fingerprint {fingerprint(token)})",
                  None, conn)
    return token


FINGERPRINT = 12  # hex digits of the token's sha256 shown to tell tokens apart; says nothing about the token


def fingerprint(token: str) -> str:
    return _hash(token)[:FINGERPRINT]


def _token_info(row) -> dict:
    t = dict(row._mapping)
    return {"id": t["id"], "environment": t["environment"], "fingerprint": t["token_hash"][:FINGERPRINT],
            "created_at": t["created_at"], "revoked_at": t["revoked_at"], "active": t["revoked_at"] is None}


def tokens(store: Store, name: str) -> list[dict]:
    """An environment's agent tokens, oldest first: id, fingerprint, created, revoked; never the token or its hash."""
    environment(store, name)
    q = select(agent_tokens).where(agent_tokens.c.environment == name).order_by(agent_tokens.c.id)
    with store.engine.connect() as conn:
        return [_token_info(r) for r in conn.execute(q)]


def revoke_token(store: Store, name: str, which: str | int) -> dict:
    """Revoke one of the environment's agent tokens, named by its id, a fingerprint (8 or more hex digits of its
    sha256, as `tokens` shows) or the token itself. The very next request with it is refused (nothing caches
    tokens). Revoking a revoked token changes nothing."""
    environment(store, name)
    text = str(which).strip()
    q = select(agent_tokens).where(agent_tokens.c.environment == name)
    if text.isascii() and text.isdigit() and len(text) <= 10:
        q = q.where(agent_tokens.c.id == int(text))
    elif text.startswith("flk_"):
        q = q.where(agent_tokens.c.token_hash == _hash(text))
    elif 8 <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text.lower()):
        q = q.where(agent_tokens.c.token_hash.startswith(text.lower(), autoescape=True))
    else:
        raise FlowlinkError(f"name the token by its id, its fingerprint (8 or more hex digits) or the token itself, "
                            f"got {text[:80]!r}")
    with store.engine.begin() as conn:
        found = conn.execute(q.limit(2)).all()
        if not found:
            raise NotFound(f"no agent token {text[:80]!r} of environment {name} (flowlink env token {name} --list)")
        if len(found) > 1:
            raise FlowlinkError(f"{text!r} matches more than one token of {name}: give more digits or the id")
        row = found[0]
        if row.revoked_at is None:
            conn.execute(agent_tokens.update().where(agent_tokens.c.id == row.id).values(revoked_at=utcnow()))
            feeds.add(store, "token", f"agent token #{row.id} of {name} revoked", None, conn)
        row = conn.execute(select(agent_tokens).where(agent_tokens.c.id == row.id)).one()
    return _token_info(row)


def environment_of_token(store: Store, token: str | None) -> str | None:
    """The environment a valid, unrevoked agent token belongs to; None otherwise. Asked of the store on every
    request: a revoked token is refused at once."""
    if not token:
        return None
    q = select(agent_tokens.c.environment).where(agent_tokens.c.token_hash == _hash(token), agent_tokens.c.revoked_at.is_(None))
    with store.engine.connect() as conn:
        return conn.execute(q).scalar()


def heartbeat(store: Store, name: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(environments.update().where(environments.c.name == name).values(last_heartbeat=utcnow()))


# ------------------------------------------------------------------ deployments

def _row(conn, deployment_id: int) -> dict:
    row = conn.execute(select(deployments).where(deployments.c.id == deployment_id)).first()
    if row is None:
        raise NotFound(f"no deployment {deployment_id}")
    return dict(row._mapping)


def get(store: Store, deployment_id: int) -> dict:
    with store.engine.connect() as conn:
        return _row(conn, deployment_id)


def last(store: Store, workflow: str, environment_name: str | None = None) -> dict | None:
    q = select(deployments).where(deployments.c.workflow == workflow)
    if environment_name:
        q = q.where(deployments.c.environment == environment_name)
    with store.engine.connect() as conn:
        row = conn.execute(q.order_by(deployments.c.id.desc()).limit(1)).first()
    return dict(row._mapping) if row else None


def refuse_while_pending(store: Store, workflow: str, what: str) -> None:
    """Deploy, execute, resync and undeploy wait while a deployment of the workflow is pending."""
    d = last(store, workflow)
    if d and d["status"] == "pending":
        raise RuleError(f"{what} refused: a deployment of {workflow} (v{d['version']} to {d['environment']}) is pending, "
                        f"started {d['started_at']:%Y-%m-%d %H:%M:%S}, wait till {d['wait_till']:%H:%M:%S} UTC")


def _start(store: Store, workflow: str, action: str, art: publish.Artifact, env: dict) -> dict:
    previous = last(store, workflow, env["name"])
    if action == "deploy":
        tries = (0 if previous is None or previous["status"] == "successful" else previous["tries"]) + 1
    else:
        tries = 1
    now = utcnow()
    values = dict(workflow=workflow, environment=env["name"], action=action, version=art.version, sha256=art.sha256,
                  status="pending", tries=tries, started_at=now, pending_timeout=env["pending_timeout"],
                  wait_till=now + dt.timedelta(minutes=env["pending_timeout"]))
    with store.engine.begin() as conn:
        deployment_id = conn.execute(deployments.insert().values(**values)).inserted_primary_key[0]
        conn.execute(deployment_log.insert().values(deployment_id=deployment_id, step=f"{action} started", status="info",
                                                    at=now, message=f"v{art.version} to {env['name']}, wait till {values['wait_till']:%H:%M:%S} UTC"))
        feeds.add(store, action, f"{action} of {workflow} v{art.version} to {env['name']} started (try {tries})", workflow, conn)
    return get(store, deployment_id)


def check_deploy(store: Store, workflow: str, version: int | None = None) -> tuple[publish.Artifact, dict]:
    """Everything a deploy needs, or the reason it is refused: (published version, primary environment)."""
    env = primary(store)
    if not env["enabled"]:
        raise RuleError(f"deploy refused: the primary environment {env['name']} is disabled (flowlink env set {env['name']} --enable)")
    refuse_while_pending(store, workflow, "deploy")
    return publish.published(workflow, version), env


def deploy(store: Store, workflow: str, version: int | None = None) -> dict:
    """Start deploying the latest (or a given) published version to the primary environment."""
    art, env = check_deploy(store, workflow, version)
    return _start(store, workflow, "deploy", art, env)


def check_undeploy(store: Store, workflow: str) -> tuple[publish.Artifact, dict]:
    """Undeploy is allowed once the workflow's deployment ended (Successful or Unsuccessful)."""
    refuse_while_pending(store, workflow, "undeploy")
    d = last(store, workflow)
    if d is None or (d["action"] == "undeploy" and d["status"] == "successful"):
        raise RuleError(f"undeploy refused: {workflow} is not deployed")
    return publish.published(workflow, d["version"]), environment(store, d["environment"])


def undeploy(store: Store, workflow: str) -> dict:
    """Remove a deployed workflow from its environment."""
    art, env = check_undeploy(store, workflow)
    return _start(store, workflow, "undeploy", art, env)


def cancel(store: Store, deployment_id: int) -> None:
    """Take back a deployment whose tracking run could not be started (nothing half-written)."""
    with store.engine.begin() as conn:
        conn.execute(deployment_log.delete().where(deployment_log.c.deployment_id == deployment_id))
        conn.execute(deployments.delete().where(deployments.c.id == deployment_id))


def steps(store: Store, deployment_id: int) -> list[dict]:
    q = select(deployment_log).where(deployment_log.c.deployment_id == deployment_id).order_by(deployment_log.c.id)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def _done(conn, deployment_id: int) -> list[str]:
    q = select(deployment_log.c.step).where(deployment_log.c.deployment_id == deployment_id,
                                            deployment_log.c.status == "done").order_by(deployment_log.c.id)
    return list(conn.execute(q).scalars())


def _end(conn, store: Store, d: dict, status: str, message: str) -> None:
    values = {"status": status, "ended_at": utcnow(), "message": message}
    if status == "successful" and d["action"] == "deploy":
        values["tries"] = 0  # the product resets the number of tries on success
    conn.execute(deployments.update().where(deployments.c.id == d["id"], deployments.c.status == "pending").values(**values))
    conn.execute(deployment_log.insert().values(deployment_id=d["id"], step=status, status="info", at=utcnow(), message=message))
    feeds.add(store, d["action"], f"{d['action']} of {d['workflow']} v{d['version']} to {d['environment']}: {status}"
              + (f" ({message})" if status != "successful" else ""), d["workflow"], conn)


def expire_if_due(store: Store, deployment_id: int) -> None:
    """A deployment still pending after wait_till becomes Unsuccessful."""
    with store.engine.begin() as conn:
        d = _row(conn, deployment_id)
        if d["status"] == "pending" and utcnow() >= d["wait_till"]:
            done = _done(conn, deployment_id)
            missing = [s for s in STEPS[d["action"]] if s not in done]
            _end(conn, store, d, "unsuccessful", f"wait till {d['wait_till']:%H:%M:%S} UTC passed before: {', '.join(missing)}")


def report_step(store: Store, environment_name: str, deployment_id: int, step: str, status: str,
                message: str | None = None) -> dict:
    """An agent reports a step. Idempotent; refused once the deployment is no longer pending."""
    if status not in ("done", "failed"):
        raise FlowlinkError(f"step status must be done or failed, got {status!r}")
    expire_if_due(store, deployment_id)
    with store.engine.begin() as conn:
        d = _row(conn, deployment_id)
        if d["environment"] != environment_name:
            raise NotFound(f"no deployment {deployment_id} for environment {environment_name}")
        if step not in STEPS[d["action"]]:
            raise FlowlinkError(f"unknown step {step!r} for {d['action']}; steps: {', '.join(STEPS[d['action']])}")
        done = _done(conn, deployment_id)
        if status == "done" and step in done:  # a repeated report (say, its answer was lost) is harmless
            return d
        if d["status"] != "pending":
            raise RuleError(f"deployment {deployment_id} is {d['status']}, no longer pending ({d['message']})")
        expected = [s for s in STEPS[d["action"]] if s not in done][0]
        if status == "done" and step != expected:
            raise FlowlinkError(f"step {step!r} out of order: next is {expected!r}")
        conn.execute(deployment_log.insert().values(deployment_id=deployment_id, step=step, status=status,
                                                    at=utcnow(), message=message))
        if status == "failed":
            _end(conn, store, d, "unsuccessful", f"{step} failed: {message or 'no reason given'}")
        elif step == STEPS[d["action"]][-1]:
            # The last step: Successful in the same transaction, so the status never lags the agent.
            _end(conn, store, d, "successful", "every step reported by the agent")
        return _row(conn, deployment_id)


def progress(store: Store, deployment_id: int) -> dict:
    """For the tracker: status, steps done, steps still to come, wait_till."""
    with store.engine.connect() as conn:
        d = _row(conn, deployment_id)
        done = _done(conn, deployment_id)
    d["done"] = done
    d["remaining"] = [s for s in STEPS[d["action"]] if s not in done]
    return d


def complete(store: Store, deployment_id: int) -> dict:
    """Every step is reported: the deployment is Successful (the tracking sensor's safety net; the last
    step's report normally does it already)."""
    with store.engine.begin() as conn:
        d = _row(conn, deployment_id)
        if d["status"] == "pending":
            _end(conn, store, d, "successful", "every step reported by the agent")
        return _row(conn, deployment_id)


def pending_for(store: Store, environment_name: str) -> list[dict]:
    """What an environment's agent must do: its pending deployments with the steps still to carry out."""
    q = select(deployments.c.id).where(deployments.c.environment == environment_name, deployments.c.status == "pending")
    with store.engine.connect() as conn:
        ids = list(conn.execute(q.order_by(deployments.c.id)).scalars())
    out = []
    for deployment_id in ids:
        expire_if_due(store, deployment_id)
        d = progress(store, deployment_id)
        if d["status"] == "pending":
            out.append({k: d[k] for k in ("id", "workflow", "action", "version", "sha256", "wait_till", "done", "remaining")})
    return out


def listing(store: Store, environment_name: str | None = None) -> list[dict]:
    """The last deployment of each workflow (per environment): the product's Process Flow tab."""
    latest = select(func.max(deployments.c.id)).group_by(deployments.c.workflow, deployments.c.environment)
    q = select(deployments).where(deployments.c.id.in_(latest)).order_by(deployments.c.workflow)
    if environment_name:
        q = q.where(deployments.c.environment == environment_name)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def log_of(store: Store, workflow: str) -> tuple[dict, list[dict]]:
    """The last deployment of a workflow and its step log, at any time."""
    d = last(store, workflow)
    if d is None:
        raise NotFound(f"{workflow} has never been deployed")
    return d, steps(store, d["id"])
