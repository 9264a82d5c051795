"""Real processes on loopback for the deployment tests: Airflow standalone (api-server, scheduler,
dag-processor, triggerer), the demo shop, and Flowlink agents."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.airflow_helpers import REPO

BIN = Path(sys.executable).parent


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Stop a process and its children (started with start_new_session=True); SIGKILL after timeout."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])  # the fields after "(comm)": state, ppid, ...


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether process `pid` is `ancestor` or one of its descendants (by walking /proc's parent ids)."""
    seen = 0
    while pid and seen < 64:
        if pid == ancestor:
            return True
        pid, seen = _ppid(pid), seen + 1
    return False


def command_line(pid: int) -> str:
    """/proc/PID/cmdline as text (a process's title, when it set one); "" once the process is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float = 60, every: float = 0.25):
    """Poll check() until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class AirflowServer:
    """`airflow standalone` in its own AIRFLOW_HOME with Flowlink's DAGs and plugins, on a free loopback port.

    `bin_dir` is the virtual environment whose airflow and flowlink commands run (this test run's by default) and
    `cwd` the folder they run in; PYTHONPATH is left out, so they import what that environment installed."""

    def __init__(self, root: Path, extra_env: dict[str, str], *, bin_dir: Path = BIN, cwd: Path = REPO):
        self.root = root
        self.bin_dir = bin_dir
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home = root / "airflow"
        home.mkdir(parents=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW_", "AIRFLOW__", "FLOWLINK_")) and k != "PYTHONPATH"
        }
        env.update(
            {
                "PATH": f"{bin_dir}:{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(home),
                "FLOWLINK_HOME": str(root / "flowlink"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),  # Flowlink comes from its entry point
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "PYTHONUNBUFFERED": "1",
                **extra_env,
            }
        )
        self.env = env
        self.log = open(root / "standalone.log", "w")
        self.proc = subprocess.Popen(
            [str(bin_dir / "airflow"), "standalone"],
            env=env,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for("the api-server", self._healthy, timeout=120, every=1)
            self.token = self._login()
        except BaseException:  # no fixture will stop a server whose start failed: stop it here
            self.stop()
            raise

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"airflow standalone exited; see {self.root / 'standalone.log'}")
        try:
            return requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).ok
        except requests.RequestException:  # not listening yet, or too busy starting to answer in time
            return False

    def _login(self) -> str:
        passwords = Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        user, password = next(
            iter(json.loads(wait_for("the admin password", passwords.exists) and passwords.read_text()).items())
        )
        r = requests.post(f"{self.url}/auth/token", json={"username": user, "password": password}, timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """A request to Airflow's REST API. Its metadata database is SQLite here, written by every component while
        the dag-processor parses the DAG files every 2 s: a write the API answers 500 "Database error" (SQLite
        busy) is sent again, twice at most, as a user would."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        for _ in range(2):
            answer = requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)
            if answer.status_code != 500 or "Database error" not in answer.text:
                return answer
            time.sleep(1)
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def flowlink(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The flowlink command with this server's environment (its AIRFLOW_HOME and FLOWLINK_HOME)."""
        done = subprocess.run(
            [str(self.bin_dir / "flowlink"), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"flowlink {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def flowlink_json(self, *args: str):
        return json.loads(self.flowlink(*args, "--json").stdout)

    def put_live(self, *specs: Path) -> None:
        """Publish these specs, put them live without an agent and wait until Airflow has their DAGs, unpaused."""
        names = []
        for spec in specs:
            self.flowlink("publish", str(spec))
            names.append(spec.stem)
        live = f"from flowlink.publish import make_live, published; [make_live(published(w)) for w in {names!r}]"
        subprocess.run([sys.executable, "-c", live], env=self.env, check=True)
        for dag_id in names:
            wait_for(f"DAG {dag_id}", lambda d=dag_id: self.dag_known(d), timeout=120, every=1)
            assert self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}).ok

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict:
        """The task instance as the REST API gives it (state, try_number, pid, hostname, id, ...)."""
        r = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        r.raise_for_status()
        return r.json()

    def task_tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try of a task instance, oldest first."""
        r = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        r.raise_for_status()
        return sorted(r.json()["task_instances"], key=lambda t: t["try_number"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one process this server started (refused for any other process)."""
        if not descends_from(pid, self.proc.pid):
            raise AssertionError(f"process {pid} ({command_line(pid)!r}) is not one this server started")
        os.kill(pid, sig)

    def dag_known(self, dag_id: str) -> bool:
        r = self.api("GET", f"/api/v2/dags/{dag_id}")
        return r.ok and not r.json().get("is_stale", False)

    def stop(self) -> None:
        stop_group(self.proc)
        self.log.close()


class AgentProcess:
    """`flowlink agent` as a separate process; `command` runs another agent command line with the same options
    (e.g. [python, "-m", "tests.slow_agent"])."""

    def __init__(
        self,
        server: AirflowServer,
        environment: str,
        token: str,
        log: Path,
        extra_env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ):
        self.log_path = log
        self.log = open(log, "a")
        env = {**server.env, "FLOWLINK_AGENT_TOKEN": token, **(extra_env or {})}
        self.proc = subprocess.Popen(
            [
                *(command or [str(server.bin_dir / "flowlink"), "agent"]),
                "--environment",
                environment,
                "--server",
                f"{server.url}/flowlink",
                "--interval",
                "0.5",
            ],
            env=env,
            cwd=server.cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        stop_group(self.proc, timeout=15)
        self.log.close()

    def kill(self) -> None:
        """SIGKILL the agent (and anything it started): no chance to finish the step or save anything."""
        stop_group(self.proc, signal.SIGKILL)
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text()
