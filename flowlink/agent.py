"""The agent of an environment: a long-running process that carries out that environment's deployments.

It talks to the Flowlink server ONLY over HTTP (header ``X-Agent-Token``)::

    POST {server}/agent/v1/heartbeat                  -> {"environment", "server_time"}
    GET  {server}/agent/v1/deployments                -> {"deployments": [{"id", "workflow", "action", "version",
                                                           "sha256", "wait_till", "done", "remaining"}]}
    GET  {server}/agent/v1/deployments/{id}/file      -> the published file (JSON bytes)
    POST {server}/agent/v1/deployments/{id}/steps     {"step", "status": "done"|"failed", "message"}
                                                      -> 200; 409 {"detail", "status"} once the deployment is no
                                                         longer pending (status: successful | unsuccessful)

Every ``interval`` seconds: heartbeat, fetch the pending deployments, carry out each one's REMAINING steps in
order and report each right after it is done (steps already reported are never repeated, so a restarted or
reconnected agent resumes where it stopped). Files, under the install dir (the folder the DAG factory reads)::

    <install_dir>/<workflow>.json                      the installed version (install_dir: live/<environment>)
    <install_dir>/.agent/<id>/state.json               what the agent did for deployment <id> (survives restarts)
    <install_dir>/.agent/<id>/workflow.json            the downloaded, verified file
    <install_dir>/.agent/<id>/stylesheets/<tp>.xslt    its stylesheets, each checked to be XSLT 1.0
    <install_dir>/.agent/backup/<workflow>.json        the version installed before (restored on failure)

A deployment that fails, or that the server says ended Unsuccessful (409, e.g. timed out), after the switch gets its
previous version back. Every file is written through flowlink.files.write_atomic: old or new, never half.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import requests

from flowlink import publish, settings
from flowlink.errors import FlowlinkError
from flowlink.files import write_atomic
from flowlink.states import DEPLOYMENT_STEPS, DeploymentAction, DeploymentStatus, DeploymentStep, LogStatus

WORK = ".agent"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # workflow names, as publish accepts them
STYLESHEET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DECLARATION = re.compile(r"^\ufeff?\s*<\?xml[^>]*\?>")
MAX_FILE = 64 * 1024 * 1024  # a published file larger than this is refused
MAX_MESSAGE = 300  # characters of a reason sent to the server
TIMEOUT = (5, 30)  # seconds: connect, read


# ------------------------------------------------------------------ results and errors


class ActionStatus(StrEnum):
    DONE = "done"  # a step carried out and reported
    FAILED = "failed"  # a step that could not be carried out (reported failed)
    REFUSED = "refused"  # the server refused a report or a download: the deployment had ended
    RESTORED = "restored"  # the previous version put back (or the new file removed)
    SKIPPED = "skipped"  # a report the server did not accept; the next pass tries again


class PassStatus(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"
    SERVER_ERROR = "server error"
    UNAUTHORIZED = "unauthorized"
    WRONG_ENVIRONMENT = "wrong environment"
    LOCAL_ERROR = "local error"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Action:
    """One thing the agent did for a deployment: a step done or failed, a refused report, a restore."""

    deployment: int
    workflow: str
    version: int
    step: str  # a DeploymentStep, or "restore"
    status: ActionStatus
    message: str = ""


@dataclass
class PassResult:
    """What one loop pass did."""

    status: PassStatus = PassStatus.OK
    message: str = ""
    actions: list[Action] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == PassStatus.OK


class Unreachable(Exception):
    """The server cannot be reached (``server_error`` False) or answers 5xx/429 (True): try again next pass."""

    def __init__(self, message: str, *, server_error: bool = False):
        super().__init__(message)
        self.server_error = server_error


class Unauthorized(Exception):
    """401/403: the server does not accept the token."""


class Refused(Exception):
    """409: the deployment is no longer pending; ``status`` is how it ended, as the server's answer says (None when
    the answer does not say)."""

    def __init__(self, message: str, status: DeploymentStatus | None = None):
        super().__init__(message)
        self.status = status

    @property
    def successful(self) -> bool:
        return self.status == DeploymentStatus.SUCCESSFUL


class BadAnswer(Exception):
    """Any other 4xx, or an answer that is not what the protocol says."""

    def __init__(self, message: str, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail


class StepFailed(Exception):
    """A step cannot be carried out; the message is the reason reported to the server."""


class Stopped(Exception):
    pass


# ------------------------------------------------------------------ small helpers


def _short(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ a deployment as the agent sees it


@dataclass
class Job:
    id: int
    workflow: str
    action: DeploymentAction
    version: int
    sha256: str
    done: list[str]
    remaining: list[DeploymentStep]

    @property
    def label(self) -> str:
        kind = "deployment" if self.action == DeploymentAction.DEPLOY else "undeployment"
        return f"{self.workflow} v{self.version} {kind} {self.id}"

    @classmethod
    def parse(cls, doc: Any) -> Job:
        """Check an entry of GET /deployments: its names end up in file paths, so they must be plain names."""
        try:
            job_id, workflow, action = int(doc["id"]), str(doc["workflow"]), str(doc["action"])
            version, sha256 = int(doc["version"]), str(doc["sha256"])
            done, remaining = [str(s) for s in doc.get("done") or []], [str(s) for s in doc["remaining"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadAnswer(f"a deployment in the server's answer is incomplete (missing or bad {exc})") from None
        try:
            kind = DeploymentAction(action)
        except ValueError:
            raise BadAnswer(f"deployment {job_id}: unknown action {action!r}") from None
        if not NAME.match(workflow):
            raise BadAnswer(f"deployment {job_id}: {workflow!r} is not a workflow name")
        steps = DEPLOYMENT_STEPS[kind]
        unknown = [s for s in remaining if s not in steps]
        if unknown:
            raise BadAnswer(f"deployment {job_id}: unknown step(s) {', '.join(map(repr, unknown))}")
        # the order is the protocol's, whatever order the server listed them in; done steps are never repeated
        todo = [s for s in steps if s in remaining and s not in done]
        return cls(job_id, workflow, kind, version, sha256, done, todo)


# ------------------------------------------------------------------ the agent


class Agent:
    """``Agent(server, token, environment, install_dir=None, interval=2)``; ``run_once()`` / ``run_forever()``."""

    def __init__(
        self,
        server: str,
        token: str,
        environment: str,
        install_dir: str | Path | None = None,
        interval: float = 2.0,
        *,
        log: Callable[[str], None] | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = TIMEOUT,
    ):
        if not token:
            raise FlowlinkError("the agent needs a token (--token-file FILE or FLOWLINK_AGENT_TOKEN)")
        self.server = server.rstrip("/")
        self.environment = environment
        self.install_dir = Path(install_dir) if install_dir else settings.live_dir() / environment
        self.interval = interval
        self.timeout = timeout
        self._log = log or _stderr
        self._http = session or requests.Session()
        self._http.headers.update(
            {"X-Agent-Token": token, "User-Agent": "flowlink-agent/1", "Accept": "application/json"}
        )
        self._stop = threading.Event()
        self._last_problem: str | None = None  # set while passes fail: the first good pass after says so

    # ---------------------------------------------------------------- paths
    @property
    def work_dir(self) -> Path:
        return self.install_dir / WORK

    def _job_dir(self, job_id: int) -> Path:
        return self.work_dir / str(job_id)

    def _installed(self, workflow: str) -> Path:
        return self.install_dir / f"{workflow}.json"

    def _backup(self, workflow: str) -> Path:
        return self.work_dir / "backup" / f"{workflow}.json"

    # ---------------------------------------------------------------- logging
    def log(self, text: str) -> None:
        self._log(f"{_now()} {text}")

    def _problem(self, result: PassResult, status: PassStatus, message: str) -> PassResult:
        result.status, result.message = status, message
        self._last_problem = message
        self.log(f"{message}; retrying in {self.interval:g}s")
        return result

    # ---------------------------------------------------------------- HTTP
    def _url(self, path: str) -> str:
        return f"{self.server}/agent/v1/{path}"

    def _call(self, method: str, path: str, body: dict | None = None, *, stream: bool = False) -> requests.Response:
        try:
            resp = self._http.request(method, self._url(path), json=body, timeout=self.timeout, stream=stream)
        except requests.RequestException as exc:
            raise Unreachable(f"server unreachable: {self.server}: {_short(_reason(exc), 200)}") from None
        if resp.status_code < 300:
            return resp
        detail = _detail(resp)
        resp.close()
        if resp.status_code in (401, 403):
            raise Unauthorized(
                f"the server refused the agent token (HTTP {resp.status_code}{': ' + detail if detail else ''}): "
                f"check --token-file / FLOWLINK_AGENT_TOKEN for environment {self.environment}"
            )
        if resp.status_code == 409:
            raise Refused(detail or "the deployment is no longer pending", _ended_as(_json_or_none(resp)))
        if resp.status_code >= 500 or resp.status_code == 429:
            raise Unreachable(
                f"server error: {method} {path}: HTTP {resp.status_code}{': ' + detail if detail else ''}",
                server_error=True,
            )
        raise BadAnswer(
            f"{method} {path}: HTTP {resp.status_code}{': ' + detail if detail else ''}", resp.status_code, detail
        )

    def _json(self, resp: requests.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise BadAnswer(f"the server's answer to {what} is not JSON") from None

    def heartbeat(self) -> dict:
        doc = self._json(self._call("POST", "heartbeat", {}), "heartbeat")
        if not isinstance(doc, dict):
            raise BadAnswer("the server's answer to heartbeat is not an object")
        return doc

    def pending(self) -> list[Job]:
        doc = self._json(self._call("GET", "deployments"), "deployments")
        if not isinstance(doc, dict) or not isinstance(doc.get("deployments"), list):
            raise BadAnswer("the server's answer to deployments has no list 'deployments'")
        jobs = []
        for entry in doc["deployments"]:
            try:
                jobs.append(Job.parse(entry))
            except BadAnswer as exc:  # one bad entry does not hold up the others
                self.log(f"agent: skipped a deployment: {exc}")
        return jobs

    def report(self, job: Job, step: str, status: LogStatus, message: str | None = None) -> Any:
        resp = self._call(
            "POST",
            f"deployments/{job.id}/steps",
            {"step": step, "status": status, "message": _short(message) if message else message},
        )
        try:
            return resp.json()
        except ValueError:
            return {}

    def download(self, job: Job, target: Path) -> None:
        """GET the published file into ``target`` (written atomically), at most MAX_FILE bytes: a larger or
        interrupted download leaves ``target`` as it was."""
        resp = self._call("GET", f"deployments/{job.id}/file", stream=True)

        def chunks() -> Iterator[bytes]:
            size = 0
            with resp:
                for chunk in resp.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > MAX_FILE:
                        raise StepFailed(f"the file is larger than {MAX_FILE // (1024 * 1024)} MB")
                    yield chunk

        try:
            write_atomic(target, chunks())
        except requests.RequestException as exc:
            raise Unreachable(f"server unreachable: download interrupted: {_short(_reason(exc), 200)}") from None

    # ---------------------------------------------------------------- per-deployment state (crash-safe)
    def _state(self, job: Job) -> dict:
        path = self._job_dir(job.id) / "state.json"
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(state, dict) and state.get("sha256") == job.sha256:
                return state
        except (OSError, ValueError):
            pass
        return {
            "id": job.id,
            "workflow": job.workflow,
            "action": job.action,
            "version": job.version,
            "sha256": job.sha256,
            "reported": [],
        }

    def _save(self, job: Job, state: dict) -> None:
        write_atomic(self._job_dir(job.id) / "state.json", json.dumps(state, indent=1))

    def _clean(self, job: Job) -> None:
        shutil.rmtree(self._job_dir(job.id), ignore_errors=True)

    # ---------------------------------------------------------------- the loop
    def stop(self) -> None:
        """Ask the agent to stop after the step it is carrying out."""
        self._stop.set()

    def run_once(self) -> PassResult:
        """One pass: heartbeat, pending deployments, their remaining steps. Never raises for server or network trouble."""
        result = PassResult()
        try:
            beat = self.heartbeat()
            if beat.get("environment") not in (None, self.environment):
                return self._problem(
                    result,
                    PassStatus.WRONG_ENVIRONMENT,
                    f"the token belongs to environment {beat.get('environment')!r}, not "
                    f"{self.environment!r}: doing nothing (check --environment and the token)",
                )
            if self._last_problem:
                self.log(f"agent: connected again to {self.server} as environment {self.environment}")
                self._last_problem = None
            jobs = self.pending()
            self._orphans({j.id for j in jobs}, result)
            for job in jobs:
                if self._stop.is_set():
                    raise Stopped
                self._carry_out(job, result)
        except Stopped:
            result.status, result.message = PassStatus.STOPPED, "stopped on request"
            self.log("agent: stopped between steps")
        except Unreachable as exc:
            return self._problem(
                result, PassStatus.SERVER_ERROR if exc.server_error else PassStatus.UNREACHABLE, str(exc)
            )
        except Unauthorized as exc:
            return self._problem(result, PassStatus.UNAUTHORIZED, str(exc))
        except BadAnswer as exc:
            return self._problem(result, PassStatus.SERVER_ERROR, f"unexpected answer from the server: {exc}")
        except OSError as exc:  # the work folder itself cannot be written
            where = f": {exc.filename}" if exc.filename else ""
            return self._problem(result, PassStatus.LOCAL_ERROR, f"agent: {exc.strerror or exc}{where}")
        return result

    def run_forever(self, stop_event: threading.Event | None = None) -> None:
        """Loop until SIGTERM/SIGINT (main thread) or ``stop_event``; stops between steps, never in the middle of one."""
        if stop_event is not None:
            self._stop = stop_event
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                handlers[sig] = signal.signal(sig, lambda *_: self._stop.set())
        self.log(
            f"agent: environment {self.environment}, server {self.server}, install dir {self.install_dir}, "
            f"every {self.interval:g}s"
        )
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception as exc:  # a bug must not end the agent of an environment
                    self.log(
                        f"agent error: {type(exc).__name__}: {_short(str(exc), 200)}; retrying in {self.interval:g}s"
                    )
                self._stop.wait(self.interval)
        finally:
            for sig, old in handlers.items():
                signal.signal(sig, old)
            self.log("agent: stopped")

    # ---------------------------------------------------------------- one deployment
    def _carry_out(self, job: Job, result: PassResult) -> None:
        if not job.remaining:  # everything reported: the server's tracker completes it
            self._clean(job)
            return
        state = self._state(job)
        for step in job.remaining:
            if self._stop.is_set():
                raise Stopped
            try:
                message = self._do(job, step, state)
            except Refused as exc:  # e.g. GET file answered 409: the deployment ended meanwhile
                self._refused(job, step, exc, state, result)
                return
            except BadAnswer as exc:  # e.g. GET file answered 404
                self._failed(
                    job,
                    step,
                    f"the server did not give the file (HTTP {exc.status}): {exc.detail or exc}",
                    state,
                    result,
                )
                return
            except StepFailed as exc:
                self._failed(job, step, str(exc), state, result)
                return
            except OSError as exc:
                where = f": {exc.filename}" if exc.filename else ""
                self._failed(job, step, f"{exc.strerror or exc}{where}", state, result)
                return
            try:
                self.report(job, step, LogStatus.DONE, message)
            except Refused as exc:
                self._refused(job, step, exc, state, result)
                return
            except BadAnswer as exc:  # e.g. out of order: our view is stale; the next pass fetches it again
                self.log(f"{job.label}: {step} not accepted: {exc}")
                result.actions.append(Action(job.id, job.workflow, job.version, step, ActionStatus.SKIPPED, str(exc)))
                return
            state["reported"].append(step)
            self._save(job, state)
            self.log(f"{job.label}: {step} done")
            result.actions.append(Action(job.id, job.workflow, job.version, step, ActionStatus.DONE, message or ""))
        self._clean(job)

    def _do(self, job: Job, step: DeploymentStep, state: dict) -> str | None:
        if step == DeploymentStep.DOWNLOADING_WORKFLOW:
            art = self._fetch(job)
            return f"v{art.version} sha256 {art.sha256[:12]}"
        if step == DeploymentStep.DOWNLOADING_STYLESHEETS:
            names = self._stylesheets(job)
            return f"{len(names)} stylesheets: {', '.join(names)}"
        if step == DeploymentStep.INSTALLING:
            art = self._downloaded(job)
            self._take_backup(job, state)
            target = self._installed(job.workflow)
            data = art.path.read_bytes()
            if not (target.exists() and target.read_bytes() == data):  # a resumed switch is not redone
                write_atomic(target, data)
            return f"{target.name} v{job.version}"
        if step == DeploymentStep.REMOVING:
            self._take_backup(job, state)
            self._installed(job.workflow).unlink(missing_ok=True)
            return None
        return None  # DEPLOYED, UNDEPLOYED: the report is the step

    # ---------------------------------------------------------------- steps
    def _fetch(self, job: Job) -> publish.Artifact:
        """Download the published file and verify it; a file that fails the check is not kept."""
        path = self._job_dir(job.id) / "workflow.json"
        self.download(job, path)
        try:
            return self._verify(job, path)
        except StepFailed:
            path.unlink(missing_ok=True)
            raise

    def _verify(self, job: Job, path: Path) -> publish.Artifact:
        try:
            art = publish.read_artifact(path)
        except publish.ArtifactError as exc:
            raise StepFailed(exc.reason) from None
        if art.sha256 != job.sha256:
            raise StepFailed(
                f"checksum mismatch: the file has sha256 {art.sha256[:12]}..., "
                f"the deployment expects {job.sha256[:12]}..."
            )
        if art.version != job.version or art.workflow != job.workflow:
            raise StepFailed(
                f"version mismatch: the file is {art.workflow} v{art.version}, "
                f"the deployment is {job.workflow} v{job.version}"
            )
        return art

    def _downloaded(self, job: Job) -> publish.Artifact:
        """The verified download; fetched again when it is missing (a resumed deployment in a fresh work folder)."""
        path = self._job_dir(job.id) / "workflow.json"
        if path.exists():
            try:
                return self._verify(job, path)
            except StepFailed:
                pass
        self.log(f"{job.label}: workflow data missing locally, downloading it again")
        return self._fetch(job)

    def _stylesheets(self, job: Job) -> list[str]:
        from flowlink.mapping import check_stylesheet  # lxml, no network, no file access (XSLTAccessControl.DENY_ALL)

        art = self._downloaded(job)
        folder = self._job_dir(job.id) / "stylesheets"
        if not isinstance(art.stylesheets, dict):
            raise StepFailed("the file's stylesheets are not a mapping of touchpoint to XSLT")
        for name, text in art.stylesheets.items():
            if not isinstance(name, str) or not STYLESHEET_NAME.match(name):
                raise StepFailed(f"touchpoint name {name!r} cannot be a file name")
            if not isinstance(text, str):
                raise StepFailed(f"stylesheet of {name}: not text")
            declared = DECLARATION.match(text)
            body = text[declared.end() :] if declared else text  # lxml refuses str with an encoding declaration
            try:
                check_stylesheet(body, f"stylesheet of {name}")
            except FlowlinkError as exc:
                raise StepFailed(str(exc)) from None
            data = body.lstrip("\ufeff")
            if declared:  # the file is written in UTF-8, so its declaration says so
                data = '<?xml version="1.0" encoding="UTF-8"?>\n' + data.lstrip()
            write_atomic(folder / f"{name}.xslt", data.encode("utf-8"))
        return list(art.stylesheets)

    def _take_backup(self, job: Job, state: dict) -> None:
        """Once per deployment: keep the installed file (if any) as the backup, then note that in the state.

        The note is written after the backup and before the switch, so a restarted agent never overwrites the
        backup with the version it installed itself."""
        if "previous" in state:
            return
        installed, backup = self._installed(job.workflow), self._backup(job.workflow)
        if installed.exists():
            write_atomic(backup, installed.read_bytes())
            state["previous"] = True
        else:
            backup.unlink(missing_ok=True)
            state["previous"] = False
        self._save(job, state)

    def _restore(self, job: Job, state: dict, result: PassResult) -> None:
        """Put back what was installed before this deployment switched (nothing to do if it never did)."""
        if "previous" not in state:
            return
        installed, backup = self._installed(job.workflow), self._backup(job.workflow)
        try:
            if state["previous"]:
                write_atomic(installed, backup.read_bytes())
                what = "restored the previous version"
            else:
                installed.unlink(missing_ok=True)
                what = "removed the new file (there was no previous version)"
        except OSError as exc:
            what = f"could NOT restore the previous version: {exc.strerror or exc}: {exc.filename or backup}"
        self.log(f"{job.label}: {what}")
        result.actions.append(Action(job.id, job.workflow, job.version, "restore", ActionStatus.RESTORED, what))

    def _failed(self, job: Job, step: DeploymentStep, reason: str, state: dict, result: PassResult) -> None:
        reason = _short(reason)
        self._restore(job, state, result)
        self.log(f"{job.label}: {step} failed: {reason}")
        result.actions.append(Action(job.id, job.workflow, job.version, step, ActionStatus.FAILED, reason))
        try:
            self.report(job, step, LogStatus.FAILED, reason)
        except Refused as exc:
            self.log(f"{job.label}: the server no longer takes reports ({_short(str(exc), 200)})")
        except BadAnswer as exc:
            self.log(f"{job.label}: the failure report was not accepted: {exc}")
            return  # keep the work folder: the next pass sees the deployment again
        self._clean(job)

    def _refused(self, job: Job, step: DeploymentStep, exc: Refused, state: dict, result: PassResult) -> None:
        self.log(f"{job.label}: {step} refused by the server: {_short(str(exc), 200)}")
        result.actions.append(Action(job.id, job.workflow, job.version, step, ActionStatus.REFUSED, str(exc)))
        if not exc.successful:
            self._restore(job, state, result)
        self._clean(job)

    def _orphans(self, pending: set[int], result: PassResult) -> None:
        """Work folders of deployments that ended while the agent was away (e.g. wait till passed during a lost
        connection): if this agent had switched and not reported the last step, the previous version comes back."""
        if not self.work_dir.is_dir():
            return
        for folder in self.work_dir.iterdir():
            if not folder.name.isdigit() or int(folder.name) in pending:
                continue
            try:
                state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
                job = Job(
                    int(state["id"]),
                    str(state["workflow"]),
                    DeploymentAction(state["action"]),
                    int(state["version"]),
                    str(state["sha256"]),
                    [],
                    [],
                )
            except (OSError, ValueError, KeyError, TypeError):
                shutil.rmtree(folder, ignore_errors=True)
                continue
            last = DEPLOYMENT_STEPS[job.action][-1]
            if "previous" in state and last not in state.get("reported", []) and NAME.match(job.workflow):
                # ask the server: a 409 says it ended, and how
                try:
                    self.report(job, last, LogStatus.FAILED, "the agent found the deployment no longer pending")
                    self._restore(job, state, result)
                except Refused as exc:
                    if exc.successful:
                        self.log(f"{job.label}: ended successful while the agent was away")
                    else:
                        self.log(f"{job.label}: ended while the agent was away ({_short(str(exc), 200)})")
                        self._restore(job, state, result)
                except BadAnswer as exc:
                    self.log(f"{job.label}: unknown to the server ({exc}): restoring the previous version")
                    self._restore(job, state, result)
            shutil.rmtree(folder, ignore_errors=True)


def _ended_as(doc: Any) -> DeploymentStatus | None:
    """How a 409 says the deployment ended: its ``status`` field."""
    status = doc.get("status") if isinstance(doc, dict) else None
    return DeploymentStatus(status) if status in (DeploymentStatus.SUCCESSFUL, DeploymentStatus.UNSUCCESSFUL) else None


def _reason(exc: requests.RequestException) -> str:
    """The cause of a network error in a few words (e.g. 'Connection refused', 'timed out')."""
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    if m:
        return m.group(1).strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def _detail(resp: requests.Response) -> str:
    doc = _json_or_none(resp)
    if isinstance(doc, dict):
        for key in ("error", "detail", "message"):
            if isinstance(doc.get(key), str):
                return _short(doc[key], 200)
    return _short(resp.text, 200) if resp.headers.get("content-type", "").startswith("text/plain") else ""


def _json_or_none(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def read_token(token_file: str | None) -> str:
    """The agent token: the first line of --token-file, else FLOWLINK_AGENT_TOKEN."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise FlowlinkError(f"cannot read the agent token file {token_file}: {exc.strerror}") from None
        if not token:
            raise FlowlinkError(f"the agent token file {token_file} is empty")
        return token
    token = os.environ.get("FLOWLINK_AGENT_TOKEN", "").strip()
    if not token:
        raise FlowlinkError(
            "no agent token: pass --token-file FILE or set FLOWLINK_AGENT_TOKEN "
            "(issue one with: flowlink env token ENVIRONMENT)"
        )
    return token
