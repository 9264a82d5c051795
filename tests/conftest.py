"""Test set-up: a throwaway AIRFLOW_HOME per test session, set before Airflow is imported."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.airflow_env import use_throwaway_airflow

_home = Path(tempfile.mkdtemp(prefix="flowlink-test-airflow-"))
use_throwaway_airflow(_home)

pytest_plugins = ["tests.fixtures", "tests.reliability"]


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database (SQLite in AIRFLOW_HOME), created once per session."""
    from airflow.utils.db import resetdb

    resetdb()
    return _home


@pytest.fixture(autouse=True)
def _unreachable_quickly(monkeypatch):
    """In-process tests give up on an application they cannot connect to after 1 s (FLOWLINK_UNREACHABLE_AFTER);
    the default of 30 s is shown by tests/test_fail_fast.py, through a real Airflow run too. A test may set it."""
    monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", "1")
