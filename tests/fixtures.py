"""Shared fixtures: real servers on loopback, real databases."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy

PG_INSTALL_HINT = "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql, or run .ci/postgres-install.sh)"


def _pg_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
    )
    for bindir in reversed(candidates):
        if (Path(bindir) / "initdb").exists() and (Path(bindir) / "pg_ctl").exists():
            return Path(bindir)
    return None


def missing(message: str) -> NoReturn:
    """A part the tests need is not installed: a failure under CI (its set-up installs it), a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PgServer:
    """A throwaway PostgreSQL cluster in a temp dir, run as the postgres user when we are root."""

    user = "flowlink"
    password = "s3cret:p@ss/w%rd"  # special characters: the URL must escape them
    database = "flowlink_test"

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="flowlink-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = 0
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root but there is no 'postgres' system user to run the test server as")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        cmd = [*self.prefix, str(self.bindir / args[0]), *args[1:]]
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")

    def start(self) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.prefix:
            owner = pwd.getpwnam("postgres")
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        for attempt in range(3):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def url(self, database: str) -> str:
        from sqlalchemy.engine import URL

        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password,
            host="127.0.0.1",
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def create_database(self) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.database}"')
        engine.dispose()

    def stop(self) -> None:
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL (postgresql+psycopg://...@127.0.0.1:PORT/flowlink_test) of a throwaway server.

    Skips (fails when CI is set) if the PostgreSQL server binaries are not installed.
    """
    bindir = _pg_bindir()
    if bindir is None:
        missing(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {PG_INSTALL_HINT}")
    server = _PgServer(bindir)
    try:
        server.start()
        server.create_database()
    except BaseException:
        server.stop()
        raise
    try:
        yield server.url(server.database)
    finally:
        server.stop()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh FLOWLINK_HOME (store, published, live and staging files) for one test."""
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path))
    monkeypatch.delenv("FLOWLINK_STORE_URL", raising=False)
    monkeypatch.delenv("FLOWLINK_STAGING_DIR", raising=False)
    return tmp_path


@pytest.fixture
def store(home):
    from flowlink.store import Store

    s = Store.open()
    yield s
    s.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """An empty database: a new SQLite file, or a new database created on the throwaway PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'flowlink.db'}"
        return
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    base = make_url(request.getfixturevalue("pg_url"))
    name = f"flowlink_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def app(home):
    """The Flowlink API and pages app (plugins/api), on this test's FLOWLINK_HOME."""
    from flowlink_airflow.api import create_app

    return create_app()


@pytest.fixture
def user(app, client, auth_manager):
    """The test module's `client`, logged in as Airflow's admin (SimpleAuthManager role admin: every permission):
    Airflow's get_user is overridden; the Flowlink permissions are still asked of the auth manager."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="admin", role="admin")
    yield client
    app.dependency_overrides.clear()


@pytest.fixture
def auth_manager():
    """Airflow's api-server initialises its auth manager before mounting plugins; a bare app needs this."""
    from airflow.api_fastapi.app import create_auth_manager

    return create_auth_manager()


def copy_erp_to_postgres(erp: str | Path, url: sqlalchemy.URL) -> None:
    """The demo ERP's tables and rows in a PostgreSQL database."""
    engine = sqlalchemy.create_engine(url)
    with sqlite3.connect(erp) as src, engine.begin() as dst:
        dst.exec_driver_sql(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, first_name TEXT NOT NULL, "
            "last_name TEXT NOT NULL, email TEXT NOT NULL, country_code TEXT NOT NULL, "
            "updated_at TEXT NOT NULL)"
        )
        dst.exec_driver_sql(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL "
            "REFERENCES customers(id), amount DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, "
            "updated_at TEXT NOT NULL)"
        )
        for table in ("customers", "orders"):
            cursor = src.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cursor.description]
            insert = sqlalchemy.text(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
            )
            rows = [dict(zip(columns, row, strict=False)) for row in cursor]
            if rows:
                dst.execute(insert, rows)
    engine.dispose()
