"""The two one-line files that bring Flowlink's DAGs into an Airflow DAGs folder (``flowlink dags write FOLDER``).

They only import the installed package (flowlink_airflow.dag_factory), so upgrading Flowlink never needs them
written again. This repository's dags/ folder holds the same two files.
"""

from __future__ import annotations

from pathlib import Path

from flowlink.files import write_atomic

DAG_FILES = {
    "flowlink_dags.py": "from flowlink_airflow.dag_factory import dags; globals().update(dags())  # Flowlink's DAGs\n",
    "flowlink_import_errors.py": "from flowlink_airflow.dag_factory import report_broken_files; report_broken_files()"
    "  # Flowlink's live files that cannot become a DAG (airflow dag)\n",
}


def write(folder: Path) -> list[Path]:
    """Write both files into ``folder`` (created if missing), each atomically; returns their paths."""
    return [write_atomic(folder / name, text) for name, text in DAG_FILES.items()]
