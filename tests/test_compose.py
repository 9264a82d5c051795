"""docker-compose.yaml (Docker does not run here): it must parse and point Airflow at this project's folders."""

import yaml

from tests.airflow_helpers import REPO


def test_compose_mounts_the_project_and_pins_the_same_airflow():
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    service = compose["services"]["airflow"]
    env = service["environment"]
    assert service["image"] == "apache/airflow:3.3.2"
    assert "apache-airflow==3.3.2" in (REPO / "requirements.txt").read_text()
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/flowlink/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/flowlink/plugins"
    assert service["ports"] == ["127.0.0.1:8080:8080"]
    pins = {line for line in (REPO / "requirements.txt").read_text().splitlines() if "==" in line}
    extra = set(env["_PIP_ADDITIONAL_REQUIREMENTS"].split())
    assert extra <= pins, extra - pins  # the same pinned versions as requirements.txt
