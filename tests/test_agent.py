"""The environment agent against a REAL HTTP server on loopback.

The server is a small fake of the agent endpoints (/agent/v1) built ON the real domain functions
(flowlink.deployments) and a real store, answering like the API does: JSON errors {"detail": ...},
401 without a token, 403 for an unknown one, 404 for another environment's deployment, 409 when a
deployment rule refuses (a deployment no longer pending: with its "status"), 400 for any other Flowlink error.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from lxml import etree
from sqlalchemy import update

from flowlink import agent as agent_module
from flowlink import cli, deployments, publish, settings
from flowlink.agent import Agent
from flowlink.errors import FlowlinkError
from flowlink.states import DEPLOYMENT_STEPS
from flowlink.store import Store
from flowlink.store.db import utcnow
from flowlink.store.tables import deployments as deployments_table

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"
WF = "erp_to_shop"
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")
STEPS = {action: list(steps) for action, steps in DEPLOYMENT_STEPS.items()}


# ------------------------------------------------------------------ the fake server


class FakeServer:
    """The four agent endpoints over http.server, on the real deployment rules and store."""

    def __init__(self, store: Store, *, serve_raw: bool = False):
        self.store = store
        self.serve_raw = serve_raw  # True: hand out the published bytes unverified (the agent must catch damage)
        self.posts: list[tuple[int, str, str, str | None]] = []  # accepted or refused step reports
        self.files: list[int] = []  # file downloads
        self.heartbeats = 0
        self.after_report = None  # callable(deployment_id, step, status) after a report was recorded
        self.lose_next: set[str] = set()  # steps whose next report gets a 503 WITHOUT being recorded
        self.lose_answer: set[str] = set()  # steps whose next report is recorded, then answered 503
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/flowlink"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def steps_posted(self, deployment_id: int) -> list[str]:
        return [step for d, step, status, _ in self.posts if d == deployment_id]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _send(self, status: int, body=None, raw: bytes | None = None):
                data = raw if raw is not None else json.dumps(body, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str):
                path = self.path.split("?", 1)[0]
                prefix = "/flowlink/agent/v1/"
                if not path.startswith(prefix):
                    return self._send(404, {"detail": "not found"})
                token = self.headers.get("X-Agent-Token")
                if not token:
                    return self._send(401, {"detail": "missing X-Agent-Token header"})
                env = deployments.environment_of_token(server.store, token)
                if env is None:
                    return self._send(403, {"detail": "unknown or revoked agent token"})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                rest = path[len(prefix) :]
                try:
                    if method == "POST" and rest == "heartbeat":
                        server.heartbeats += 1
                        deployments.heartbeat(server.store, env)
                        return self._send(200, {"environment": env, "server_time": utcnow()})
                    if method == "GET" and rest == "deployments":
                        return self._send(200, {"deployments": deployments.pending_for(server.store, env)})
                    m = re.fullmatch(r"deployments/(\d+)/(file|steps)", rest)
                    if m and method == "GET" and m[2] == "file":
                        return self._file(env, int(m[1]))
                    if m and method == "POST" and m[2] == "steps":
                        return self._step(env, int(m[1]), body)
                    return self._send(404, {"detail": "not found"})
                except deployments.NotPending as exc:
                    return self._send(409, {"detail": str(exc), "status": exc.status})
                except deployments.RuleError as exc:
                    return self._send(409, {"detail": str(exc)})
                except deployments.NotFound as exc:
                    return self._send(404, {"detail": str(exc)})
                except FlowlinkError as exc:
                    return self._send(400, {"detail": str(exc)})

            def _file(self, env: str, deployment_id: int):
                server.files.append(deployment_id)
                d = deployments.check_download(server.store, env, deployment_id)
                if server.serve_raw:
                    path = settings.published_dir() / d["workflow"] / f"{d['workflow']}-v{d['version']:04d}.json"
                else:
                    path = publish.published(d["workflow"], d["version"]).path  # verifies the checksum
                return self._send(200, raw=path.read_bytes())

            def _step(self, env: str, deployment_id: int, body):
                if not isinstance(body, dict) or body.get("status") not in ("done", "failed") or not body.get("step"):
                    return self._send(422, {"detail": "body must be {step, status: done|failed, message}"})
                step, status, message = body["step"], body["status"], body.get("message")
                if step in server.lose_next:  # the report is lost on the way: nothing recorded
                    server.lose_next.discard(step)
                    return self._send(503, {"detail": "service unavailable"})
                server.posts.append((deployment_id, step, status, message))
                deployments.report_step(server.store, env, deployment_id, step, status, message)
                if step in server.lose_answer:  # recorded, but the answer is lost on the way back
                    server.lose_answer.discard(step)
                    return self._send(503, {"detail": "service unavailable"})
                if server.after_report:
                    server.after_report(deployment_id, step, status)
                return self._send(200, deployments.progress(server.store, deployment_id))

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

        return Handler


# ------------------------------------------------------------------ fixtures and helpers


def spec_copy(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(changes)
    path = tmp_path / f"{WF}-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class World:
    def __init__(self, tmp_path: Path, store: Store, token: str, server: FakeServer, lines: list[str]):
        self.tmp_path, self.store, self.token, self.server, self.lines = tmp_path, store, token, server, lines

    def agent(self, token: str | None = None, environment: str = "cloud", **kw) -> Agent:
        return Agent(
            self.server.url,
            token or self.token,
            environment,
            interval=kw.pop("interval", 2),
            log=self.lines.append,
            **kw,
        )

    @property
    def installed(self) -> Path:
        return settings.live_dir() / "cloud" / f"{WF}.json"

    def publish(self, **changes) -> publish.Artifact:
        return publish.publish(spec_copy(self.tmp_path, **changes) if changes else EXAMPLE).artifact

    def deployed(self, **changes) -> publish.Artifact:
        """Publish, deploy and let the agent carry it out: the version installed before a test's deployment."""
        art = self.publish(**changes)
        d = deployments.deploy(self.store, WF)
        assert self.agent().run_once().ok
        assert deployments.complete(self.store, d["id"])["status"] == "successful"
        assert self.installed.read_bytes() == art.path.read_bytes()
        return art

    def expire(self, deployment_id: int) -> None:
        """wait_till in the past: the next look at the deployment makes it Unsuccessful."""
        with self.store.engine.begin() as conn:
            conn.execute(
                update(deployments_table)
                .where(deployments_table.c.id == deployment_id)
                .values(wait_till=utcnow() - dt.timedelta(minutes=1))
            )


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path / "flowlink"))
    monkeypatch.delenv("FLOWLINK_AGENT_TOKEN", raising=False)
    store = Store.open()
    deployments.add_environment(store, "cloud", "cloud")
    token = deployments.issue_token(store, "cloud")
    lines: list[str] = []
    with FakeServer(store) as server:
        yield World(tmp_path, store, token, server, lines)
    store.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ tests


def test_happy_path_every_step_once_in_order_then_successful(world, capsys):
    art = world.publish()
    d = deployments.deploy(world.store, WF)
    agent = Agent(world.server.url, world.token, "cloud")  # default install dir, default log (stderr)
    assert agent.install_dir == settings.live_dir() / agent.environment and agent.interval == 2

    result = agent.run_once()

    assert result.ok, result
    assert [a.step for a in result.actions if a.status == "done"] == STEPS["deploy"]
    assert {(i, status) for i, _step, status, _m in world.server.posts} == {(d["id"], "done")}
    assert world.server.steps_posted(d["id"]) == STEPS["deploy"]  # each exactly once, in order
    assert world.installed.read_bytes() == art.path.read_bytes()
    assert publish.live(WF).sha256 == art.sha256
    assert not (settings.live_dir() / "cloud" / ".agent" / str(d["id"])).exists()  # the download folder is cleaned
    assert not list((settings.live_dir() / "cloud").rglob("*.tmp"))  # no temp files left anywhere in the install dir
    assert deployments.environment(world.store, "cloud")["agent"] == "connected"

    assert deployments.progress(world.store, d["id"])["remaining"] == []
    done = deployments.complete(world.store, d["id"])
    assert done["status"] == "successful" and done["tries"] == 0

    err = capsys.readouterr().err.splitlines()
    for step in STEPS["deploy"]:
        assert f"{WF} v1 deployment {d['id']}: {step} done" in "\n".join(err)
    assert all(LINE.match(line) for line in err), err

    again = agent.run_once()  # nothing pending: nothing done, nothing posted
    assert again.ok and again.actions == []
    assert len(world.server.posts) == 4


def test_resume_after_a_partial_run_does_only_the_remaining_steps(world):
    art = world.publish()
    d = deployments.deploy(world.store, WF)
    for step in STEPS["deploy"][:2]:  # an earlier agent got this far, then its machine went away
        deployments.report_step(world.store, "cloud", d["id"], step, "done")

    result = world.agent().run_once()

    assert result.ok
    assert world.server.steps_posted(d["id"]) == ["installing", "deployed"]
    assert [a.step for a in result.actions if a.status == "done"] == ["installing", "deployed"]
    assert world.installed.read_bytes() == art.path.read_bytes()  # the data was fetched again for installing
    assert [s["step"] for s in deployments.steps(world.store, d["id"]) if s["status"] == "done"] == STEPS["deploy"]
    assert deployments.complete(world.store, d["id"])["status"] == "successful"


def test_stop_between_steps_then_a_new_agent_resumes(world):
    art = world.publish()
    d = deployments.deploy(world.store, WF)
    stop = threading.Event()
    world.server.after_report = lambda _id, step, _s: step == "downloading stylesheets" and stop.set()
    agent = world.agent(interval=0.05)
    runner = threading.Thread(target=agent.run_forever, args=(stop,))
    runner.start()
    runner.join(20)
    assert not runner.is_alive()
    assert world.server.steps_posted(d["id"]) == STEPS["deploy"][:2]
    assert not world.installed.exists()
    work = settings.live_dir() / "cloud" / ".agent" / str(d["id"])
    assert publish.read_artifact(work / "workflow.json").sha256 == art.sha256
    sheets = sorted(p.name for p in (work / "stylesheets").iterdir())
    assert sheets == ["customers.xslt", "orders.xslt"]
    for p in (work / "stylesheets").iterdir():
        etree.XSLT(etree.parse(str(p)), access_control=etree.XSLTAccessControl.DENY_ALL)
    assert any("agent: stopped" in line for line in world.lines)

    world.server.after_report = None
    result = world.agent().run_once()  # "restarted"
    assert result.ok
    assert world.server.steps_posted(d["id"]) == STEPS["deploy"]
    assert world.server.files == [d["id"]]  # the verified download was reused
    assert world.installed.read_bytes() == art.path.read_bytes()
    assert not work.exists()


def test_a_lost_install_report_is_redone_without_losing_the_backup(world):
    v1 = world.deployed()
    v2 = world.publish(description="second version")
    d = deployments.deploy(world.store, WF)
    world.server.lose_next = {"installing"}
    agent = world.agent()

    first = agent.run_once()
    assert first.status == "server error" and "HTTP 503" in first.message
    assert world.installed.read_bytes() == v2.path.read_bytes()  # switched, not yet reported
    assert world.server.steps_posted(d["id"]) == STEPS["deploy"][:2]

    second = agent.run_once()
    assert second.ok
    assert world.server.steps_posted(d["id"]) == STEPS["deploy"]
    backup = settings.live_dir() / "cloud" / ".agent" / "backup" / f"{WF}.json"
    assert backup.read_bytes() == v1.path.read_bytes()  # still the version that ran before, not v2
    assert any("connected again" in line for line in world.lines)


@pytest.mark.parametrize("serve_raw", [False, True], ids=["server-refuses-damaged-file", "agent-catches-damage"])
def test_a_corrupted_published_file_fails_the_download_and_leaves_the_installed_version(world, serve_raw):
    v1 = world.deployed()
    v2 = world.publish(description="second version")
    d = deployments.deploy(world.store, WF)
    os.chmod(v2.path, 0o644)
    data = v2.path.read_bytes()
    assert b"second version" in data
    v2.path.write_bytes(data.replace(b"second version", b"second versioN"))
    world.server.serve_raw = serve_raw

    result = world.agent().run_once()

    assert result.ok
    failed = [a for a in result.actions if a.status == "failed"]
    assert [a.step for a in failed] == ["downloading workflow data"] and "checksum" in failed[0].message
    assert [(step, status) for i, step, status, _m in world.server.posts if i == d["id"]] == [
        ("downloading workflow data", "failed")
    ]
    ended = deployments.get(world.store, d["id"])
    assert ended["status"] == "unsuccessful" and "checksum" in ended["message"]
    log = [s for s in deployments.steps(world.store, d["id"]) if s["status"] == "failed"]
    assert log and "checksum" in log[0]["message"]
    assert world.installed.read_bytes() == v1.path.read_bytes()  # untouched
    assert not (settings.live_dir() / "cloud" / ".agent" / str(d["id"])).exists()
    assert any(f"deployment {d['id']}: downloading workflow data failed: " in line for line in world.lines)


def test_a_refused_deployed_report_restores_the_previous_version(world):
    v1 = world.deployed()
    v2 = world.publish(description="second version")
    d = deployments.deploy(world.store, WF)
    seen = {}

    def after(deployment_id, step, status):
        if step == "installing":
            seen["installed"] = world.installed.read_bytes()
            world.expire(deployment_id)  # wait till passes between installing and deployed

    world.server.after_report = after
    result = world.agent().run_once()

    assert seen["installed"] == v2.path.read_bytes()  # it had switched
    assert world.server.steps_posted(d["id"]) == STEPS["deploy"]  # "deployed" was posted and refused
    assert [a.status for a in result.actions if a.step == "deployed"] == ["refused"]
    assert any(a.status == "restored" for a in result.actions)
    assert world.installed.read_bytes() == v1.path.read_bytes()
    assert deployments.get(world.store, d["id"])["status"] == "unsuccessful"
    assert not (settings.live_dir() / "cloud" / ".agent" / str(d["id"])).exists()
    assert any("deployed refused by the server" in line and "no longer pending" in line for line in world.lines)


def test_a_refused_first_deployment_removes_the_new_file(world):
    world.publish()
    d = deployments.deploy(world.store, WF)
    world.server.after_report = lambda i, step, s: step == "installing" and world.expire(i)

    world.agent().run_once()

    assert not world.installed.exists()  # there was no previous version
    assert deployments.get(world.store, d["id"])["status"] == "unsuccessful"


def test_a_deployment_that_timed_out_while_the_agent_was_away_is_rolled_back(world):
    v1 = world.deployed()
    v2 = world.publish(description="second version")
    d = deployments.deploy(world.store, WF)
    stop = threading.Event()
    world.server.after_report = lambda _i, step, _s: step == "installing" and stop.set()
    runner = threading.Thread(target=world.agent(interval=0.05).run_forever, args=(stop,))
    runner.start()
    runner.join(20)
    assert world.installed.read_bytes() == v2.path.read_bytes()

    world.expire(d["id"])  # the agent was away until after wait till
    world.server.after_report = None
    result = world.agent().run_once()

    assert result.ok
    assert deployments.get(world.store, d["id"])["status"] == "unsuccessful"
    assert world.installed.read_bytes() == v1.path.read_bytes()
    assert not (settings.live_dir() / "cloud" / ".agent" / str(d["id"])).exists()


def test_undeploy_removes_the_installed_file(world):
    v1 = world.deployed()
    d = deployments.undeploy(world.store, WF)

    result = world.agent().run_once()

    assert result.ok
    assert world.server.steps_posted(d["id"]) == STEPS["undeploy"]
    assert not world.installed.exists()
    assert (settings.live_dir() / "cloud" / ".agent" / "backup" / f"{WF}.json").read_bytes() == v1.path.read_bytes()
    assert deployments.complete(world.store, d["id"])["status"] == "successful"
    assert any(f"{WF} v1 undeployment {d['id']}: undeployed done" in line for line in world.lines)


def test_server_down_logs_one_line_and_does_not_raise(tmp_path):
    lines: list[str] = []
    agent = Agent(
        f"http://127.0.0.1:{free_port()}/flowlink", "flk_secret_token", "cloud", tmp_path / "live", log=lines.append
    )

    result = agent.run_once()

    assert result.status == "unreachable"
    assert len(lines) == 1
    assert "server unreachable" in lines[0] and "retrying in 2s" in lines[0] and LINE.match(lines[0])
    assert "flk_secret_token" not in lines[0]

    stop = threading.Event()  # the loop keeps going, one line per pass, until told to stop
    agent.interval = 0.02
    threading.Timer(0.3, stop.set).start()
    agent.run_forever(stop)
    assert sum("server unreachable" in line for line in lines) >= 3


def test_a_wrong_token_or_environment_is_logged_clearly_without_a_crash(world):
    world.publish()
    d = deployments.deploy(world.store, WF)

    for _ in range(2):  # every pass says so again
        result = world.agent(token="flk_not_a_token").run_once()
        assert result.status == "unauthorized"
    assert len(world.lines) == 2
    assert "refused the agent token (HTTP 403" in world.lines[0] and "retrying in 2s" in world.lines[0]
    assert not any("flk_not_a_token" in line for line in world.lines)

    other = world.agent(environment="on_site").run_once()  # a valid token of another environment
    assert other.status == "wrong environment" and "'cloud'" in other.message
    assert deployments.progress(world.store, d["id"])["done"] == [] and world.server.posts == []
    assert not world.installed.exists()


def test_cli_agent_needs_a_token_and_runs_once(world, capsys):
    world.publish()
    d = deployments.deploy(world.store, WF)
    base = ["agent", "--environment", "cloud", "--server", world.server.url, "--once"]

    assert cli.main(base) == 1
    assert "no agent token" in capsys.readouterr().err

    token_file = world.tmp_path / "token"
    token_file.write_text(world.token + "\n")
    assert cli.main([*base, "--token-file", str(token_file), "--install-dir", str(world.tmp_path / "site")]) == 0
    assert world.server.steps_posted(d["id"]) == STEPS["deploy"]
    assert (world.tmp_path / "site" / f"{WF}.json").exists()
    err = capsys.readouterr().err
    assert world.token not in err and "installing done" in err


def test_a_deployment_that_ended_successful_while_the_agent_was_away_keeps_the_new_version(world):
    """The last report is recorded but its answer lost; the next pass asks the server, whose 409 says (in its
    status field) that the deployment is Successful: nothing is rolled back."""
    world.deployed()
    v2 = world.publish(description="second version")
    d = deployments.deploy(world.store, WF)
    world.server.lose_answer = {"deployed"}
    agent = world.agent()

    first = agent.run_once()
    assert first.status == "server error" and "HTTP 503" in first.message
    assert deployments.get(world.store, d["id"])["status"] == "successful"

    second = agent.run_once()
    assert second.ok and not [a for a in second.actions if a.status == "restored"]
    assert world.installed.read_bytes() == v2.path.read_bytes()
    assert any("ended successful while the agent was away" in line for line in world.lines)
    assert not (settings.live_dir() / "cloud" / ".agent" / str(d["id"])).exists()


def test_a_file_larger_than_the_limit_fails_the_download_and_leaves_nothing(world, monkeypatch):
    art = world.publish()
    monkeypatch.setattr(agent_module, "MAX_FILE", art.path.stat().st_size - 1)
    d = deployments.deploy(world.store, WF)

    result = world.agent().run_once()

    failed = [a for a in result.actions if a.status == "failed"]
    assert [a.step for a in failed] == ["downloading workflow data"] and "larger than" in failed[0].message
    assert deployments.get(world.store, d["id"])["status"] == "unsuccessful"
    assert not world.installed.exists()
    assert [p for p in (settings.live_dir() / "cloud").rglob("*") if p.is_file()] == []  # no download, no temp file
