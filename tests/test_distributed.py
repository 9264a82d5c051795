"""Scale-out on real processes, without Docker: the services of docker-compose.yaml started on loopback.

PostgreSQL (the fixture's throwaway server: Airflow's metadata database and the Flowlink store, each in its own
database), redis-server, `airflow api-server`, `scheduler`, `dag-processor`, `triggerer` and two
`airflow celery worker`s, one per environment queue (cloud, site_b), each with its own host name, and one
Flowlink agent per environment. Every Airflow process gets airflow.env, the file the compose services read,
plus this site's addresses (`distributed_env`; tests/test_compose.py checks the two cannot drift).

One workflow is deployed to each environment and run: every task must run on its environment's worker (the
host name and queue recorded in the snapshot, and on Airflow's task instances), each record must reach its
shop exactly once, and the store must be the PostgreSQL database.

The Try page's fetch: a try requested through the API for site_b reads a source whose connection only the site_b
worker has (as an on-premise site's own ERP); the same try sent to the cloud queue cannot read it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
import yaml

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from flowlink.store.tables import steps as steps_table
from tests.airflow_helpers import REPO
from tests.fixtures import missing
from tests.live_server import free_port

BIN = Path(sys.executable).parent
ENV_FILE = REPO / "airflow.env"
# The Flowlink environments, which are also the Celery queues their workers serve (as in docker-compose.yaml).
ENVIRONMENTS = ("cloud", "site_b")
WORKER_NAMES = {"cloud": "flowlink-worker-cloud", "site_b": "flowlink-worker-site-b"}
WORKFLOWS = {"cloud": "cloud_flow", "site_b": "site_flow"}
SHOP_CONNECTIONS = {"cloud": "cloud_shop", "site_b": "site_shop"}
SITE_ONLY = "site_erp"  # a source connection only the site_b worker has (in its process environment)
AIRFLOW_DB, STORE_DB = "airflow", "flowlink"  # the compose file's database names
REDIS_INSTALL_HINT = "install Redis (Debian/Ubuntu: apt-get install redis-server, or run .ci/redis-install.sh)"
PHASES: dict[str, float] = {}  # seconds per phase, printed at the end (pytest -s)


# ------------------------------------------------------------------ the process environment (shared with test_compose)


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """KEY=VALUE lines of an env file as Docker Compose reads them (comments and blank lines skipped)."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key or key != key.strip() or value != value.strip():
            raise ValueError(f"{path.name}:{number}: expected KEY=VALUE, got {line!r}")
        values[key] = value
    return values


def site_settings(
    root: Path, *, db_url: str, store_url: str, broker_url: str, api_port: int, scheduler_health_port: int
) -> dict[str, str]:
    """This loopback site's values of the keys that docker-compose.yaml sets in x-airflow-common's environment:
    addresses, paths, logins and sizes (small: two cores, and a test that should not wait)."""
    home = root / "airflow"
    return {
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),  # one config file, so one set of generated secrets
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db_url}",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),  # filled by `flowlink dags write`, as the image's
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(scheduler_health_port),
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",  # a newly deployed workflow shows up fast
        "FLOWLINK_HOME": str(root / "flowlink"),
        "FLOWLINK_STORE_URL": store_url,
    }


def distributed_env(root: Path, **site) -> dict[str, str]:
    """The environment of every Airflow process here: this machine's variables without any Airflow or Flowlink
    setting, then airflow.env exactly as the compose services get it, then this site's values
    (`site_settings`). The image sets AIRFLOW_HOME; here it is a folder of the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "FLOWLINK_"))}
    env.update(read_env_file())
    env.update(site_settings(root, **site))
    env.update({"AIRFLOW_HOME": str(root / "airflow"), "PATH": f"{BIN}:{env.get('PATH', '')}", "PYTHONUNBUFFERED": "1"})
    return env


# ------------------------------------------------------------------ processes


def _redis_server() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None
    )


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Proc:
    """One long-running process in its own process group, its output in logs/<name>.log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path):
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.proc.returncode}; read {self.log_path}:\n{_tail(self.log_path)}"
            )

    def terminate(self) -> None:
        """SIGTERM to the process itself: a Celery worker then finishes its tasks (warm shutdown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def finish(self, deadline: float) -> None:
        """Wait until the deadline, then SIGKILL whatever is left of its process group."""
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # also children that outlived their parent
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self._log.close()


class Site:
    """Everything this test starts; stop() ends it all, last started first."""

    def __init__(self, root: Path):
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        self.procs: dict[str, Proc] = {}
        self.env: dict[str, str] = {}
        self.url = ""
        self.token = ""

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        self.procs[name] = Proc(name, argv, env or self.env, self.logs)
        return self.procs[name]

    def check(self) -> None:
        for proc in self.procs.values():
            proc.check()

    def wait(self, what: str, check, timeout: float, every: float = 1.0, log: str | None = None):
        """Poll check() (every process must stay up meanwhile); fail naming the log to read."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                where = (
                    f"; read {self.logs / (log + '.log')}:\n{_tail(self.logs / (log + '.log'))}"
                    if log
                    else f"; the process logs are in {self.logs}"
                )
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{where}")
            time.sleep(every)

    def run(self, *argv: str, timeout: float = 300, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            list(argv),
            env=env or self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} -> {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def flowlink(self, *args: str) -> str:
        return self.run(str(BIN / "flowlink"), *args, timeout=120)

    def flowlink_json(self, *args: str):
        return json.loads(self.flowlink(*args, "--json"))

    def api(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def stop(self, timeout: float = 30) -> None:
        procs = list(reversed(self.procs.values()))
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in procs:
            proc.finish(deadline)


def _create_airflow_database(pg_url: str, password: str) -> tuple[str, str]:
    """As the compose file's postgres service: a role `airflow` (it may create databases) owning the database
    `airflow`. airflow-init creates the store's database `flowlink`. Returns both URLs."""
    admin = sa.engine.make_url(pg_url).set(database="postgres")
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE airflow LOGIN CREATEDB PASSWORD '{password}'")
        conn.exec_driver_sql(f'CREATE DATABASE "{AIRFLOW_DB}" OWNER airflow')
    engine.dispose()
    url = admin.set(username="airflow", password=password)
    return (
        url.set(database=AIRFLOW_DB).render_as_string(hide_password=False),
        url.set(database=STORE_DB).render_as_string(hide_password=False),
    )


def compose_init_script() -> str:
    """The bash script of docker-compose.yaml's airflow-init service, as Compose hands it to bash."""
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    command = compose["services"]["airflow-init"]["command"]
    assert command[0] == "-c" and len(command) == 2, command
    assert "${" not in command[1], "the init script must not depend on Compose's variables"
    return command[1].replace("$$", "$")


def _write_spec(root: Path, environment: str) -> Path:
    """The example workflow under another name, loading into its environment's own shop, by hand (no schedule)."""
    spec = yaml.safe_load((REPO / "examples" / "erp_to_shop.yaml").read_text())
    spec["name"] = WORKFLOWS[environment]
    spec["description"] = f"The example, deployed to {environment}."
    spec["target"]["connection"] = SHOP_CONNECTIONS[environment]
    spec["schedule"] = {"sync": "manual"}
    for rule in spec["touchpoints"][0]["mapping"]:
        if "constant" in rule:
            rule["constant"] = WORKFLOWS[environment]  # the channel tells which workflow wrote a record
    path = root / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _phase(name: str, started: float) -> float:
    now = time.monotonic()
    PHASES[name] = round(now - started, 1)
    return now


# ------------------------------------------------------------------ the site


@pytest.fixture(scope="module")
def site(tmp_path_factory, pg_url):
    redis_server = _redis_server()
    if redis_server is None:
        missing(f"redis-server not found: {REDIS_INSTALL_HINT}")
    root = tmp_path_factory.mktemp("distributed")
    (root / "airflow").mkdir()
    s = Site(root)
    shops = {e: DemoShop() for e in ENVIRONMENTS}
    t = time.monotonic()
    try:
        for shop in shops.values():
            shop.start()
        db_url, store_url = _create_airflow_database(pg_url, secrets.token_hex(12))
        redis_port = free_port()
        (root / "redis").mkdir()
        s.start(
            "redis",
            [
                redis_server,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(root / "redis"),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            env={"PATH": os.environ.get("PATH", "")},
        )
        api_port = free_port()
        s.env = distributed_env(
            root,
            db_url=db_url,
            store_url=store_url,
            broker_url=f"redis://127.0.0.1:{redis_port}/0",
            api_port=api_port,
            scheduler_health_port=free_port(),
        )
        s.url = f"http://127.0.0.1:{api_port}"
        create_erp(root / "erp.db", customers=40, orders=90)
        create_erp(root / "site_erp.db", customers=15, orders=0)
        s.env["AIRFLOW_CONN_DEMO_ERP"] = json.dumps({"conn_type": "sqlite", "host": str(root / "erp.db")})
        for environment, shop in shops.items():
            s.env[f"AIRFLOW_CONN_{SHOP_CONNECTIONS[environment].upper()}"] = json.dumps(
                {"conn_type": "http", "host": shop.url}
            )

        # The compose file's airflow-init, run as it is: the shared airflow.cfg, migrations, the admin user,
        # the Flowlink store's database and migrations, the environments cloud and site_b with a token each.
        password = secrets.token_urlsafe(12)
        tokens_dir = root / "agent-tokens"
        s.run(
            "bash",
            "-c",
            compose_init_script(),
            env={
                **s.env,
                "_AIRFLOW_WWW_USER_USERNAME": "admin",
                "_AIRFLOW_WWW_USER_PASSWORD": password,
                "FLOWLINK_AGENT_TOKENS": str(tokens_dir),
            },
        )
        # As the image's build does: Flowlink's DAG files into the DAGs folder (the plugin comes from the
        # package's entry point: no plugins folder).
        s.flowlink("dags", "write")
        t = _phase("databases, redis and migrations", t)

        airflow = str(BIN / "airflow")
        s.start("api-server", [airflow, "api-server"])
        s.start("scheduler", [airflow, "scheduler"])
        s.start("dag-processor", [airflow, "dag-processor"])
        s.start(
            "triggerer",
            [airflow, "triggerer"],
            env={**s.env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())},
        )
        for environment in ENVIRONMENTS:  # two workers on one machine: each its own name and log server port
            name = WORKER_NAMES[environment]
            s.start(
                name,
                [airflow, "celery", "worker", "--queues", environment, "--celery-hostname", f"{name}@%h"],
                env={
                    **s.env,
                    "FLOWLINK_WORKER_NAME": name,
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                    **site_only(root, environment),
                },
            )

        # Meanwhile: the two workflows published.
        for environment in ENVIRONMENTS:
            s.flowlink("publish", str(_write_spec(root, environment)))

        s.wait("the api-server", lambda: _ok(f"{s.url}/api/v2/monitor/health"), timeout=120, log="api-server")
        r = requests.post(f"{s.url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        assert r.status_code in (200, 201), f"login refused: {r.status_code} {r.text}; read {s.logs / 'api-server.log'}"
        s.token = r.json()["access_token"]
        s.wait("scheduler, dag-processor and triggerer to report healthy", lambda: _components_healthy(s), timeout=120)
        for environment in ENVIRONMENTS:
            name = WORKER_NAMES[environment]
            s.wait(
                f"the Celery worker {name}",
                lambda n=name: " ready." in (s.logs / f"{n}.log").read_text(errors="replace"),
                timeout=120,
                log=name,
            )
        t = _phase("services up", t)

        # One agent per environment with the token airflow-init wrote for it. As in the compose file it gets no
        # database and no Airflow settings: it talks to the api-server over HTTP only.
        agent_env = {"PATH": s.env["PATH"], "FLOWLINK_HOME": s.env["FLOWLINK_HOME"], "PYTHONUNBUFFERED": "1"}
        for environment in ENVIRONMENTS:
            s.start(
                f"agent-{environment}",
                [
                    str(BIN / "flowlink"),
                    "agent",
                    "--environment",
                    environment,
                    "--server",
                    f"{s.url}/flowlink",
                    "--interval",
                    "0.5",
                    "--token-file",
                    str(tokens_dir / environment / "token"),
                ],
                env=agent_env,
            )
        s.wait(
            "Airflow to know the deployment tracker DAG",
            lambda: _dag_known(s, "flowlink_deployments"),
            timeout=120,
            log="dag-processor",
        )
        _phase("agents and the tracker DAG", t)
        yield {"site": s, "shops": shops, "db_url": db_url}
    finally:
        t = time.monotonic()
        s.stop()
        for shop in shops.values():
            shop.stop()
        _phase("stopping", t)
        print("\ndistributed test phases (s):", json.dumps(PHASES))


def site_only(root: Path, environment: str) -> dict[str, str]:
    """What only the site_b worker is given: the connection of the site's own ERP."""
    if environment != "site_b":
        return {}
    return {f"AIRFLOW_CONN_{SITE_ONLY.upper()}": json.dumps({"conn_type": "sqlite", "host": str(root / "site_erp.db")})}


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).ok
    except requests.RequestException:
        return False


def _components_healthy(s: Site) -> bool:
    health = s.api("GET", "/api/v2/monitor/health").json()
    return all(
        health.get(c, {}).get("status") == "healthy"
        for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    )


def _dag_known(s: Site, dag_id: str) -> bool:
    r = s.api("GET", f"/api/v2/dags/{dag_id}")
    return r.ok and not r.json().get("is_stale", False)


def _deployment(s: Site, workflow: str) -> dict | None:
    return next((d for d in s.flowlink_json("deployments") if d["workflow"] == workflow), None)


def _deploy(s: Site, environment: str) -> None:
    workflow = WORKFLOWS[environment]
    if environment != "cloud":  # deployments go to the primary environment only
        s.flowlink("env", "set", environment, "--primary")
    out = s.flowlink("deploy", workflow)
    assert f"to {environment} is Pending" in out, out

    def ended():
        d = _deployment(s, workflow)
        return d if d and d["status"] in ("successful", "unsuccessful") else None

    d = s.wait(f"the deployment of {workflow} to {environment}", ended, timeout=90, log=f"agent-{environment}")
    assert d["status"] == "successful" and d["environment"] == environment, (
        d,
        f"read {s.logs}/agent-{environment}.log",
    )
    live = Path(s.env["FLOWLINK_HOME"]) / "live" / environment / f"{workflow}.json"
    assert live.exists(), f"the agent of {environment} did not install {live}"


def _run_state(s: Site, workflow: str, run_id: str) -> str | None:
    state = s.api("GET", f"/api/v2/dags/{workflow}/dagRuns/{run_id}").json().get("state")
    return state if state in ("success", "failed") else None


def _erp_count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# ------------------------------------------------------------------ the test


def test_each_environments_workflow_runs_on_its_own_worker_queue(site):
    s: Site = site["site"]
    t = time.monotonic()
    envs = {e["name"]: (e["kind"], e["is_primary"]) for e in s.flowlink_json("env", "list")}
    assert envs == {"cloud": ("cloud", True), "site_b": ("on-premise", False)}, envs  # made by airflow-init
    for environment in ENVIRONMENTS:
        _deploy(s, environment)
    t = _phase("two deployments", t)

    runs = {}
    for environment, workflow in WORKFLOWS.items():
        s.wait(
            f"Airflow to know the DAG {workflow}", lambda w=workflow: _dag_known(s, w), timeout=90, log="dag-processor"
        )
        runs[environment] = s.flowlink("run", workflow).split("run ")[-1].strip()
    states = {
        e: s.wait(
            f"run {runs[e]} of {WORKFLOWS[e]} to end",
            lambda e=e: _run_state(s, WORKFLOWS[e], runs[e]),
            timeout=180,
            log=WORKER_NAMES[e],
        )
        for e in ENVIRONMENTS
    }
    _phase("two runs", t)

    for environment, workflow in WORKFLOWS.items():
        worker = WORKER_NAMES[environment]
        tis = s.api("GET", f"/api/v2/dags/{workflow}/dagRuns/{runs[environment]}/taskInstances").json()[
            "task_instances"
        ]
        summary = [(ti["task_id"], ti["state"], ti["queue"], ti["hostname"]) for ti in tis]
        assert states[environment] == "success", (
            f"{workflow}: run {runs[environment]} {states[environment]}: {summary}; "
            f"read {s.logs / (worker + '.log')} and the task logs in {s.root / 'airflow' / 'logs'}"
        )
        # Airflow's own record: every task instance was queued on the environment's queue and ran on its worker.
        placed = [
            (q, h) for task_id, _, q, h in summary if task_id != "all-loaded"
        ]  # all-loaded never leaves the scheduler
        assert len(placed) == 6 and set(placed) == {(environment, worker)}, summary

        # The snapshot (Flowlink's store) records the same for every step.
        snap = s.flowlink_json("snapshot", runs[environment], "--workflow", workflow)
        steps = [(st["touchpoint"], st["step"], st["status"], st["queue"], st["hostname"]) for st in snap["steps"]]
        assert len(steps) == 6, steps
        assert {(q, h) for *_, q, h in steps} == {(environment, worker)}, steps
        assert {st for _, _, st, _, _ in steps} == {"success"}, steps

    # The store is the PostgreSQL database: its URL, and the rows are really there.
    store_url = sa.engine.make_url(s.env["FLOWLINK_STORE_URL"])
    assert store_url.get_backend_name() == "postgresql" and store_url.database == STORE_DB
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    steps_table.c.workflow, steps_table.c.queue, steps_table.c.hostname, sa.func.count()
                ).group_by(steps_table.c.workflow, steps_table.c.queue, steps_table.c.hostname)
            ).all()
    finally:
        engine.dispose()
    assert sorted(tuple(r) for r in rows) == sorted((WORKFLOWS[e], e, WORKER_NAMES[e], 6) for e in ENVIRONMENTS), rows
    assert not (Path(s.env["FLOWLINK_HOME"]) / "flowlink.db").exists(), "a SQLite store was created beside PostgreSQL"
    # ... and Airflow's metadata is in its own database on the same server.
    engine = sa.create_engine(site["db_url"])
    try:
        with engine.connect() as conn:
            dag_runs = dict(
                conn.execute(
                    sa.text(
                        "SELECT dag_id, count(*) FROM dag_run WHERE dag_id IN ('cloud_flow', "
                        "'site_flow') GROUP BY dag_id"
                    )
                ).all()
            )
    finally:
        engine.dispose()
    assert dag_runs == {"cloud_flow": 1, "site_flow": 1}, dag_runs

    # Each record reached its environment's shop exactly once.
    erp = s.root / "erp.db"
    for environment, shop in site["shops"].items():
        for resource, table in (("customers", "customers"), ("orders", "orders")):
            records, writes = shop.records(resource), shop.writes(resource)
            assert len(records) == _erp_count(erp, table), (environment, resource, len(records))
            assert set(writes.values()) == {1}, (environment, resource, {k: v for k, v in writes.items() if v != 1})
        assert {c["channel"] for c in shop.records("customers").values()} == {WORKFLOWS[environment]}


# ------------------------------------------------------------------ the Try page's fetch, where the source is


def _site_draft() -> str:
    """site_flow as the page's editor may hold it: reading the site's own ERP, which only site_b's worker reaches."""
    spec = yaml.safe_load((REPO / "examples" / "erp_to_shop.yaml").read_text())
    spec.update(name=WORKFLOWS["site_b"], schedule={"sync": "manual"})
    spec["source"]["connection"] = SITE_ONLY
    spec["target"]["connection"] = SHOP_CONNECTIONS["site_b"]
    spec["touchpoints"][0]["mapping"][-1]["constant"] = WORKFLOWS["site_b"]
    return yaml.safe_dump(spec, sort_keys=False)


def _fetch_task(s: Site, run_id: str) -> dict:
    """Airflow's record of a flowlink_try run's one task instance, once the run ended (REST API v2)."""
    s.wait(f"the flowlink_try run {run_id} to end", lambda: _run_state(s, "flowlink_try", run_id), timeout=120)
    tis = s.api("GET", f"/api/v2/dags/flowlink_try/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    assert [ti["task_id"] for ti in tis] == ["fetch"], tis
    return tis[0]


def _task_log(s: Site, run_id: str) -> str:
    """The fetch task's log as the Airflow UI shows it (REST API v2), its lines joined."""
    r = s.api(
        "GET",
        f"/api/v2/dags/flowlink_try/dagRuns/{run_id}/taskInstances/fetch/logs/1",
        params={"full_content": "true"},
        headers={"Accept": "application/json"},
    )
    assert r.ok, (r.status_code, r.text[:2000])
    content = r.json()["content"]
    return "\n".join(line.get("event", "") if isinstance(line, dict) else str(line) for line in content)


def test_a_try_fetches_its_samples_on_the_only_worker_that_reaches_the_source(site):
    from flowlink.store import Store
    from flowlink.store import tries as try_rows

    s: Site = site["site"]
    t = time.monotonic()
    deployed = _deployment(s, WORKFLOWS["site_b"])
    if not deployed or deployed["status"] != "successful":  # when this test runs alone
        _deploy(s, "site_b")
    s.wait("Airflow to know the flowlink_try DAG", lambda: _dag_known(s, "flowlink_try"), timeout=90)
    draft = _site_draft()

    r = s.api("POST", "/flowlink/api/v1/tries", json={"draft": draft, "touchpoint": "customers", "limit": 3})
    assert r.status_code == 201, r.text
    started = r.json()
    assert (started["workflow"], started["version"], started["environment"], started["status"]) == (
        WORKFLOWS["site_b"],
        None,
        "site_b",
        "queued",
    ), started
    store = Store.open(s.env["FLOWLINK_STORE_URL"], migrate=False)
    try:
        content = try_rows.get(store, started["try_id"])["subject"]  # what the API compiled, for the try below

        def ended():
            r = s.api("GET", f"/flowlink/api/v1/tries/{started['try_id']}")
            assert r.status_code == 200, r.text
            return r.json() if r.json()["status"] in ("success", "failed") else None

        got = s.wait("the try to end", ended, timeout=120, every=0.5, log=WORKER_NAMES["site_b"])
        assert s.api("GET", f"/flowlink/api/v1/tries/{started['try_id']}").status_code == 404  # handed over once
        t = _phase("a try on site_b", t)

        # the records came back: the newest 3 of the site's ERP, source fields and mapped output
        assert got["status"] == "success" and got["error"] is None, got
        with sqlite3.connect(s.root / "site_erp.db") as db:
            db.row_factory = sqlite3.Row
            newest = [dict(r) for r in db.execute("SELECT * FROM customers ORDER BY updated_at DESC, id DESC LIMIT 3")]
        records = got["result"]["records"]
        assert got["result"]["source"] == f"sql source {SITE_ONLY}: table customers"
        assert [r["source"] for r in records] == newest
        countries = {"DE": "Germany", "FR": "France", "US": "United States"}
        assert [r["output"] for r in records] == [
            [
                {
                    "customer_id": str(row["id"]),
                    "name": f"{row['first_name']} {row['last_name']}",
                    "email": row["email"].strip().lower(),
                    "country": countries.get(row["country_code"], "Other"),
                    "channel": WORKFLOWS["site_b"],
                }
            ]
            for row in newest
        ]
        # ... fetched by the site_b worker, from the site_b queue (the policy read the run's conf)
        ti = _fetch_task(s, started["run_id"])
        assert (ti["state"], ti["queue"], ti["hostname"]) == ("success", "site_b", WORKER_NAMES["site_b"]), ti
        assert "3 records from sql source site_erp: table customers; 3 ready" in _task_log(s, started["run_id"])

        # The same try on the cloud queue: the cloud worker has no such connection, so it could not have read it.
        elsewhere = try_rows.create(
            store,
            workflow=WORKFLOWS["site_b"],
            version=None,
            touchpoint="customers",
            requested_by="admin",
            environment="cloud",
            subject=content,
            limit=3,
            ids=None,
        )
        r = s.api(
            "POST",
            "/api/v2/dags/flowlink_try/dagRuns",
            json={"logical_date": None, "conf": {"try_id": elsewhere, "queue": "cloud"}},
        )
        assert r.ok, r.text
        run_id = r.json()["dag_run_id"]
        ti = _fetch_task(s, run_id)
        assert (ti["state"], ti["queue"], ti["hostname"]) == ("failed", "cloud", WORKER_NAMES["cloud"]), ti
        failed = try_rows.take(store, elsewhere)
        assert failed is not None and failed["status"] == "failed", failed
        assert failed["error"].startswith(f"connection {SITE_ONLY!r} isn't defined in Airflow"), failed["error"]
        assert failed["error"] in _task_log(s, run_id)
    finally:
        store.dispose()
    _phase("the same try on cloud", t)
