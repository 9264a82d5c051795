"""Who may do what: Flowlink's authorization, asked of Airflow's auth manager (whatever [core] auth_manager is).

Every user endpoint and page needs an Airflow login first (get_user: none 401, a bad token 403). Then:

| what | needs | SimpleAuthManager role |
|---|---|---|
| read environments (list, page), check a spec draft (the Try page) | the login only: no workflow data | viewer |
| read a workflow's Flowlink data: its deployments and deployment log, resync bucket, snapshots, batch files, runs, feeds, samples of its published versions (the Try page) | read access to the DAG named like the workflow (`is_authorized_dag` GET; snapshots, batch files and runs: GET on its runs, DagAccessEntity.RUN) | viewer |
| run a workflow now, resync its records | creating runs of that DAG (`is_authorized_dag` POST, DagAccessEntity.RUN), as Airflow's own "trigger" | user |
| deploy, redeploy, undeploy a workflow | editing that DAG (`is_authorized_dag` PUT), as pausing it in Airflow: it changes what the DAG runs | user |
| try a draft of a workflow (the Try page), publish a draft as its new version | editing the DAG named like the workflow (`is_authorized_dag` PUT): a draft is a change of what it will run | user |
| change environments, list or revoke agent tokens | Airflow's Connections (`is_authorized_connection` PUT; listing tokens GET): environments and agent tokens are the credentials and places a site's applications are reached through, managed by whoever manages connections | op, admin |

Lists (deployments, the workflow choices of the pages, feeds) show only the workflows the user may read
(`filter_authorized_dag_ids`); an entry of no workflow (an environment change) is shown to every logged-in user.
A refusal is 403 with a detail naming the permission (JSON for the API, an error page for the pages); a failing
auth manager refuses (fails closed). Agent endpoints do not use Airflow users: their X-Agent-Token scopes them
to one environment (deps.agent_environment).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, HTTPException, Request

log = logging.getLogger(__name__)

READ, READ_RUNS, RUN, DEPLOY, EDIT = "read", "read runs", "run", "deploy", "edit"
ADMIN_READ, ADMIN = "admin read", "admin"
WHY = {
    READ: "read access to the Airflow DAG {wf}",
    READ_RUNS: "read access to the runs of the Airflow DAG {wf}",
    RUN: "permission to create runs of the Airflow DAG {wf}",
    DEPLOY: "edit permission on the Airflow DAG {wf}",
    EDIT: "edit permission on the Airflow DAG {wf}",
    ADMIN_READ: "read access to Airflow's Connections (roles Op and Admin)",
    ADMIN: "edit permission on Airflow's Connections (roles Op and Admin)",
}
WHAT = {
    READ: "read {wf}",
    READ_RUNS: "read the runs of {wf}",
    RUN: "run or resync {wf}",
    DEPLOY: "deploy or undeploy {wf}",
    EDIT: "try a draft of or publish {wf}",
    ADMIN_READ: "list agent tokens",
    ADMIN: "change environments or agent tokens",
}


class Forbidden(HTTPException):
    """The user is logged in but may not do this (403); the pages show it as "Not allowed" with the detail."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, detail)


def _manager():
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def _multi_team() -> bool:
    from airflow.configuration import conf

    return conf.getboolean("core", "multi_team", fallback=False)


def _team_of(dag_id: str) -> str | None:
    if not _multi_team():
        return None  # no team, and no read of Airflow's metadata database
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


class Access:
    """What the request's user may do, asked of the auth manager on every call (nothing is cached)."""

    def __init__(self, user) -> None:
        self.user = user

    def may(self, need: str, workflow: str | None = None) -> bool:
        from airflow.api_fastapi.auth.managers.models.resource_details import (
            ConnectionDetails,
            DagAccessEntity,
            DagDetails,
        )

        try:
            manager = _manager()
            if need in (ADMIN, ADMIN_READ):
                return bool(
                    manager.is_authorized_connection(
                        method="PUT" if need == ADMIN else "GET", details=ConnectionDetails(), user=self.user
                    )
                )
            method = {READ: "GET", READ_RUNS: "GET", RUN: "POST", DEPLOY: "PUT", EDIT: "PUT"}[need]
            entity = DagAccessEntity.RUN if need in (READ_RUNS, RUN) else None
            details = DagDetails(id=workflow, team_name=_team_of(workflow) if workflow else None)
            return bool(manager.is_authorized_dag(method=method, access_entity=entity, details=details, user=self.user))
        except Exception:  # an auth manager that fails refuses
            log.exception("Flowlink: the auth manager failed to decide %r on %r; refused", need, workflow)
            return False

    def refusal(self, need: str, workflow: str | None = None) -> str | None:
        """None when allowed, else the reason (the 403 detail, and the title of a disabled button)."""
        if self.may(need, workflow):
            return None
        return f"you may not {WHAT[need].format(wf=workflow)}: that needs {WHY[need].format(wf=workflow)}"

    def require(self, need: str, workflow: str | None = None) -> None:
        reason = self.refusal(need, workflow)
        if reason:
            raise Forbidden(reason)

    def readable(self, workflows: Iterable[str]) -> set[str]:
        """The workflows (DAG ids) among these the user may read."""
        wanted = {w for w in workflows if w}
        if not wanted:
            return set()
        try:
            manager = _manager()
            if not _multi_team():
                return set(manager.filter_authorized_dag_ids(dag_ids=wanted, user=self.user, method="GET")) & wanted
            from airflow.models.dag import DagModel

            teams = DagModel.get_dag_id_to_team_name_mapping(sorted(wanted))
            allowed: set[str] = set()
            for team in {teams.get(w) for w in wanted}:
                group = {w for w in wanted if teams.get(w) == team}
                allowed |= (
                    set(manager.filter_authorized_dag_ids(dag_ids=group, user=self.user, method="GET", team_name=team))
                    & group
                )
            return allowed
        except Exception:
            log.exception("Flowlink: the auth manager failed to filter workflows; none shown")
            return set()


def get_access(user: Annotated[object, Depends(get_user)]) -> Access:
    return Access(user)


AccessDep = Annotated[Access, Depends(get_access)]


def need(what: str):
    """A route dependency: the user may do `what` (to the workflow of the path, if the route has one), else 403."""

    def check(request: Request, access: AccessDep) -> None:
        access.require(what, request.path_params.get("workflow"))

    return Depends(check)
