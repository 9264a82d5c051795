"""The environment for a throwaway Airflow: set it before Airflow is imported (tests and benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def use_throwaway_airflow(home: Path, flowlink_home: Path | None = None) -> None:
    """AIRFLOW_HOME in `home`, this project's DAGs and plugins, no examples, Flowlink files beside it."""
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["FLOWLINK_HOME"] = str(flowlink_home or home / "flowlink")
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(home / "plugins")  # Flowlink comes from its entry point
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    os.environ.pop("FLOWLINK_STORE_URL", None)
