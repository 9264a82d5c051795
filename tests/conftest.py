"""Test set-up: a throwaway AIRFLOW_HOME per test session, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_home = Path(tempfile.mkdtemp(prefix="flowlink-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["FLOWLINK_HOME"] = str(_home / "flowlink")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.pop("FLOWLINK_STORE_URL", None)

pytest_plugins = ["tests.fixtures"]


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database (SQLite in AIRFLOW_HOME), created once per session."""
    from airflow.utils.db import resetdb

    resetdb()
    return _home
