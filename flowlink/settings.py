"""Where Flowlink keeps its files and its store. Read from the environment only (no database at import)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """FLOWLINK_HOME, else $AIRFLOW_HOME/flowlink, else ~/airflow/flowlink."""
    if os.environ.get("FLOWLINK_HOME"):
        return Path(os.environ["FLOWLINK_HOME"])
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow")) / "flowlink"


def published_dir() -> Path:
    """Immutable published versions: published/<workflow>/<workflow>-v0001.json."""
    return home() / "published"


def live_dir() -> Path:
    """The versions Airflow runs: live/<environment>/<workflow>.json, installed by each environment's agent
    (the folder name is the environment: its tasks go to that environment's worker queue). The DAG factory
    reads only this folder."""
    return home() / "live"


def staging_dir():
    """Run-scoped batch files: staging/<workflow>/<run>/<touchpoint>/<step>/batch-00001.xml.

    FLOWLINK_STAGING_DIR may be a folder, or an object-storage URL that every worker can reach
    (s3://conn_id@bucket/prefix, gs://..., file://...): then it is an Airflow ObjectStoragePath, whose
    credentials come from the Airflow connection in the URL."""
    configured = os.environ.get("FLOWLINK_STAGING_DIR", "")
    if "://" in configured:
        from flowlink.airflow_adapter import storage_path

        return storage_path(configured)
    return Path(configured or home() / "staging")


def store_url() -> str:
    """FLOWLINK_STORE_URL (any SQLAlchemy URL), else a SQLite file in FLOWLINK_HOME."""
    return os.environ.get("FLOWLINK_STORE_URL") or f"sqlite:///{home() / 'flowlink.db'}"


# Limits on untrusted input: name -> default. Each may be set in the environment (a whole number above 0).
LIMITS = {
    "FLOWLINK_MAX_FILE_BYTES": 100_000_000,  # one file of a file source (or the file a file target merges into)
    "FLOWLINK_MAX_VALUE_CHARS": 10_000_000,  # one field value going into the transform
    "FLOWLINK_MAX_DEPTH": 256,  # nesting of a JSON source record (XML files: libxml2 refuses more than 256 levels)
}


def limit(name: str) -> int:
    """The limit ``name`` (a key of LIMITS) from the environment, else its default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return LIMITS[name]
    if not raw.isdigit() or int(raw) < 1:
        from flowlink.errors import FlowlinkError

        raise FlowlinkError(f"{name} must be a whole number above 0, not {raw!r}")
    return int(raw)


RETENTION_DAYS = 15  # the default of FLOWLINK_RETENTION_DAYS
RETENTION_DAYS_MAX = 36_500  # 100 years: anything longer would reach back before the calendar's year 1


def check_retention_days(value, where: str) -> int:
    """A retention period in whole days, 1 to 36,500; anything else is a FlowlinkError naming ``where`` it came from."""
    from flowlink.errors import FlowlinkError

    text = str(value).strip()
    try:
        days = int(text) if not isinstance(value, bool) else None
    except ValueError:
        days = None
    if days is None or not 1 <= days <= RETENTION_DAYS_MAX:
        raise FlowlinkError(f"{where} must be a whole number from 1 to {RETENTION_DAYS_MAX:,} (days), not {text!r}")
    return days


def retention_days() -> int:
    """FLOWLINK_RETENTION_DAYS: how many days snapshots, Success bucket rows and feeds are kept (default 15)."""
    raw = os.environ.get("FLOWLINK_RETENTION_DAYS", "")
    return check_retention_days(raw, "FLOWLINK_RETENTION_DAYS") if raw.strip() else RETENTION_DAYS


UNREACHABLE_AFTER = 30.0  # seconds: the default of FLOWLINK_UNREACHABLE_AFTER
UNREACHABLE_AFTER_MAX = 3600.0


def unreachable_after() -> float:
    """FLOWLINK_UNREACHABLE_AFTER: for how many seconds a connector keeps trying an application it cannot connect to
    (connection refused, unknown host, connect timeout) before the step fails; default 30, 0 = one try only."""
    raw = os.environ.get("FLOWLINK_UNREACHABLE_AFTER", "").strip()
    if not raw:
        return UNREACHABLE_AFTER
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= UNREACHABLE_AFTER_MAX:  # also refuses nan and inf
        from flowlink.errors import FlowlinkError

        raise FlowlinkError(
            f"FLOWLINK_UNREACHABLE_AFTER must be a number of seconds from 0 to {UNREACHABLE_AFTER_MAX:g}, not {raw!r}"
        )
    return seconds
