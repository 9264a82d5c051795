"""docker-compose.yaml and airflow.env (Docker does not run here): the services, their health checks and order,
one Celery queue per environment, and the same settings as tests/test_distributed.py, so the two cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.airflow_helpers import REPO
from tests.test_distributed import (
    ENV_FILE,
    ENVIRONMENTS,
    compose_init_script,
    distributed_env,
    read_env_file,
    site_settings,
)

COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
WORKERS = {"cloud": "airflow-worker-cloud", "site_b": "airflow-worker-site-b"}
AGENTS = {"cloud": "flowlink-agent-cloud", "site_b": "flowlink-agent-site-b"}
AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    *WORKERS.values(),
    "flowlink-cli",
]
ONE_SHOT = {"airflow-init", "flowlink-cli"}  # they run and end: nothing to check the health of
SITE = dict(
    db_url="postgresql+psycopg://airflow:pw@127.0.0.1:5432/airflow",
    store_url="postgresql+psycopg://airflow:pw@127.0.0.1:5432/flowlink",
    broker_url="redis://127.0.0.1:6379/0",
    api_port=8080,
    scheduler_health_port=8974,
)


def _command(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return command.split() if isinstance(command, str) else command


def _option(argv: list[str], name: str) -> str:
    assert name in argv, (name, argv)
    return argv[argv.index(name) + 1]


def test_the_services_of_the_scale_out():
    assert set(SERVICES) == {"postgres", "redis", *AIRFLOW_SERVICES, *AGENTS.values()}
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert [
        _command(s)[0] for s in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
    ] == ["api-server", "scheduler", "dag-processor", "triggerer"]
    assert SERVICES["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]
    assert SERVICES["flowlink-cli"]["profiles"] == ["cli"]  # not started by `docker compose up`


@pytest.mark.parametrize("service", sorted(set(SERVICES) - ONE_SHOT))
def test_every_long_running_service_has_a_health_check_and_restarts(service):
    check = SERVICES[service].get("healthcheck")
    assert check and check["test"][0] in ("CMD", "CMD-SHELL") and check.get("interval"), (service, check)
    assert SERVICES[service]["restart"] == "always"


def test_start_order_waits_for_health_and_the_init():
    healthy = {"condition": "service_healthy"}
    for service in AIRFLOW_SERVICES:
        needs = SERVICES[service]["depends_on"]
        assert needs["postgres"] == healthy and needs["redis"] == healthy, service
        if service != "airflow-init":
            assert needs["airflow-init"] == {"condition": "service_completed_successfully"}, service
    for service in [*WORKERS.values(), *AGENTS.values()]:
        assert SERVICES[service]["depends_on"]["airflow-apiserver"] == healthy, service


def test_every_airflow_service_reads_airflow_env_and_does_not_override_it():
    shared = read_env_file(ENV_FILE)
    for service in AIRFLOW_SERVICES:
        spec = SERVICES[service]
        assert spec["env_file"] == ["airflow.env"], service
        assert spec["image"] == COMPOSE["x-airflow-common"]["image"] and spec["build"] == ".", service
        overridden = set(spec["environment"]) & set(shared)
        assert not overridden, f"{service} sets {overridden} again: they belong in airflow.env only"
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert shared["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] in ENVIRONMENTS
    # No quotes and no trailing comments: Docker Compose and read_env_file must read the same values.
    assert not any(v[:1] in "'\"" or " #" in v or not v for v in shared.values()), shared


def test_each_environment_has_its_queue_worker_and_agent():
    for environment in ENVIRONMENTS:
        worker = _command(WORKERS[environment])
        assert worker[:2] == ["celery", "worker"] and _option(worker, "--queues") == environment, worker
        agent = SERVICES[AGENTS[environment]]
        argv = agent["command"]
        assert argv[:2] == ["flowlink", "agent"] and _option(argv, "--environment") == environment, argv
        assert _option(argv, "--server") == "http://airflow-apiserver:8080/flowlink"
        token = Path(_option(argv, "--token-file"))
        assert token.parent.name == environment
        # Its own token only, read-only; the live folder the dag-processor and the workers read.
        mounts = [m.split(":") for m in agent["volumes"]]
        assert [m for m in mounts if m[1].startswith("/opt/airflow/agent-tokens")] == [
            [f"flowlink-token-{environment.replace('_', '-')}", str(token.parent), "ro"]
        ], mounts
        live = [m for m in mounts if m[1] == "/opt/airflow/flowlink/live"]
        assert live and live[0][0] in {m.split(":")[0] for m in COMPOSE["x-airflow-common"]["volumes"]}
        # No database and no Airflow settings: an agent talks HTTP only, as at a customer's site.
        assert "env_file" not in agent and set(agent["environment"]) == {"FLOWLINK_HOME"}
        assert agent["image"] == COMPOSE["x-airflow-common"]["image"] and agent["build"] == "."
    # airflow-init creates exactly these environments (the first, cloud, is primary) and their tokens.
    script = compose_init_script()
    created = re.findall(r'\("(\w+)", "(cloud|on-premise)"\)', script)
    assert [name for name, _ in created] == list(ENVIRONMENTS) and created[0] == ("cloud", "cloud"), created


def test_the_volumes_and_the_published_and_deployed_files():
    common = {target: source for source, target, *_ in (m.split(":") for m in COMPOSE["x-airflow-common"]["volumes"])}
    env = COMPOSE["x-airflow-common"]["environment"]
    # Flowlink is the image's installed package: its DAG files are in the image's DAGs folder (Dockerfile), its
    # plugin comes from the package's entry point; no folder of the repository is mounted into a service but
    # the spec folder of the flowlink-cli service.
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags" and env["AIRFLOW__CORE__DAGS_FOLDER"] not in common
    assert "AIRFLOW__CORE__PLUGINS_FOLDER" not in env
    mounted = {service: [m for m in SERVICES[service].get("volumes", []) if m.startswith(".")] for service in SERVICES}
    assert {service: m for service, m in mounted.items() if m} == {"flowlink-cli": [".:/work:ro"]}, mounted
    assert "/opt/airflow/logs" in common and "/opt/airflow/config" in common
    for folder in ("published", "live", "staging"):
        assert common[f"{env['FLOWLINK_HOME']}/{folder}"] == f"flowlink-{folder}"
    assert set(COMPOSE["volumes"]) >= {"postgres-db-volume", "airflow-logs", "flowlink-published", "flowlink-live"}


def test_the_addresses_point_at_the_compose_services():
    env = COMPOSE["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND", "FLOWLINK_STORE_URL"):
        assert "@postgres/" in env[key], key
    assert env["FLOWLINK_STORE_URL"].endswith("/flowlink") and env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(
        "/airflow"
    )
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_the_distributed_test_uses_airflow_env_and_the_same_keys_as_compose(tmp_path):
    shared = read_env_file(ENV_FILE)
    env = distributed_env(tmp_path, **SITE)
    assert {k: env[k] for k in shared} == shared  # airflow.env exactly as the compose services get it
    compose_keys = set(COMPOSE["x-airflow-common"]["environment"])
    test_keys = set(site_settings(tmp_path, **SITE))
    assert compose_keys == test_keys, (
        f"only in docker-compose.yaml: {sorted(compose_keys - test_keys)}; "
        f"only in tests/test_distributed.py: {sorted(test_keys - compose_keys)}"
    )
    # Nothing else configures Airflow or Flowlink in the test's processes.
    extra = {k for k in env if k.startswith(("AIRFLOW", "FLOWLINK_"))} - set(shared) - test_keys
    assert extra == {"AIRFLOW_HOME"}, extra  # the image sets AIRFLOW_HOME=/opt/airflow


def test_the_image_is_the_official_one_with_the_pinned_requirements_and_the_wheel():
    dockerfile = (REPO / "Dockerfile").read_text()
    requirements = (REPO / "requirements.txt").read_text().splitlines()
    assert re.findall(r"^FROM\s+(.+)$", dockerfile, re.M) == ["apache/airflow:3.3.2 AS wheel", "apache/airflow:3.3.2"]
    assert "apache-airflow==3.3.2" in requirements
    # The pins the image installs: requirements.txt less what the Dockerfile's grep leaves out (the test and lint
    # tools and the editable install), applied here as the image build applies it.
    (pattern,) = re.findall(r"grep -vE '([^']+)'", dockerfile)
    kept = [line for line in requirements if not re.search(pattern, line)]
    for pin in (
        "apache-airflow==",
        "apache-airflow-providers-celery==",
        "redis==",
        "celery==",
        "asyncpg==",
        "psycopg[binary]==",
        "SQLAlchemy==",
        "lxml==",
    ):
        assert any(line.startswith(pin) for line in kept), pin
    assert not [line for line in kept if line.startswith(("-e", "pytest", "playwright", "hypothesis", "ruff", "mypy"))]
    # Flowlink itself: the wheel built in the first stage, installed (not editable) with the same pins, then its
    # DAG files written into the DAGs folder the services read.
    assert "pip wheel" in dockerfile and "--from=wheel" in dockerfile
    assert not re.search(r"pip install[^\n]* -e ", dockerfile)
    commands = re.sub(r"\\\n\s*", " ", dockerfile)  # continued lines joined
    assert re.search(
        r"pip install [^\n]*-r /tmp/requirements-image.txt +/tmp/flowlink-wheel/flowlink-\*\.whl", commands
    )
    (written,) = re.findall(r"flowlink dags write (\S+)", dockerfile)
    assert written == COMPOSE["x-airflow-common"]["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in (REPO / "docker-compose.yaml").read_text()  # built, not pip at start
