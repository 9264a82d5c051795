"""The distribution: a wheel built from this repository works in an Airflow that has never seen the checkout.

The wheel tests (seconds): the wheel holds the packages flowlink and flowlink_airflow and nothing else at the top,
every file of flowlink/, plugins/ (as flowlink_airflow) and dag_factory/ (as flowlink_airflow.dag_factory), the
`flowlink` command and the `airflow.plugins` entry point, and dependency ranges that requirements.txt's pins meet.

The slow end-to-end test (minutes): pip installs the wheel, apache-airflow 3.3.2 and requirements.txt's pins into a
new virtual environment outside the checkout. With no checkout on sys.path (working folder outside the repository,
no PYTHONPATH), beside a plugins folder that holds the team's own `operators` and `hooks` packages and a DAGs folder
that `flowlink dags write` fills: `airflow plugins` lists Flowlink and the team's plugin, the team's DAG imports its
packages, and that environment's `airflow standalone`, `flowlink` command and agent publish, deploy and run the
example workflow; Flowlink's pages answer.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from examples.demo_erp import create as create_erp
from examples.demo_shop import DemoShop
from tests.airflow_helpers import REPO, demo_connections
from tests.live_server import AgentProcess, AirflowServer, wait_for

# The repository's folders and where they install.
PACKAGES = {"flowlink": "flowlink", "plugins": "flowlink_airflow", "dag_factory": "flowlink_airflow/dag_factory"}
AIRFLOW_PIN = "apache-airflow==3.3.2"
WF = "erp_to_shop"


def _run(argv: list, *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        command = " ".join(map(str, argv))
        raise AssertionError(f"{command} -> {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """This machine's variables without Airflow's, Flowlink's and PYTHONPATH: nothing points into the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FLOWLINK_")) and k != "PYTHONPATH"}
    return {**env, **extra}


def _pins() -> dict[str, str]:
    """requirements.txt's exact pins: {normalized name: version} (its `-e .` line and comments left out)."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[_norm(req.name)] = spec.version
    return pins


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The repository's files as a clone has them, with uncommitted changes (git ls-files): no build/ folder or
    egg-info left by an earlier build can slip into the wheel."""
    dest = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a file deleted but not yet committed is still listed
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, source],
        cwd=out,
        env=_clean_env(),
    )
    (built,) = out.glob("flowlink-*.whl")
    return built


def _dist_info(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        (path,) = [n for n in z.namelist() if n.endswith(f".dist-info/{name}")]
        return z.read(path).decode()


def test_the_wheel_holds_the_two_packages_with_every_module_and_data_file(wheel, source):
    with zipfile.ZipFile(wheel) as z:
        names = {n for n in z.namelist() if ".dist-info/" not in n}
    assert {n.split("/")[0] for n in names} == {"flowlink", "flowlink_airflow"}
    expected = {
        f"{PACKAGES[path.relative_to(source).parts[0]]}/{'/'.join(path.relative_to(source).parts[1:])}"
        for folder in PACKAGES
        for path in (source / folder).rglob("*")
        if path.is_file()
    }
    assert names == expected, (
        f"missing from the wheel: {sorted(expected - names)}; not from the source folders: {sorted(names - expected)}"
    )
    # What the installed package reads at run time besides its modules.
    for data in (
        "flowlink/py.typed",
        "flowlink_airflow/py.typed",
        "flowlink/store/migrations/env.py",
        "flowlink/store/migrations/script.py.mako",
        "flowlink/store/migrations/versions/0001_initial.py",
        "flowlink_airflow/api/templates/base.html",
        "flowlink_airflow/api/static/flowlink.css",
        "flowlink_airflow/plugin.py",
        "flowlink_airflow/timetable.py",
        "flowlink_airflow/dag_factory/__init__.py",
    ):
        assert data in names, data


def test_the_wheel_declares_the_command_and_the_airflow_plugin(wheel):
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_dist_info(wheel, "entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {"flowlink": "flowlink.cli:main"}
    assert dict(entry_points["airflow.plugins"]) == {"flowlink": "flowlink_airflow.plugin:FlowlinkPlugin"}
    assert set(_dist_info(wheel, "top_level.txt").split()) == {"flowlink", "flowlink_airflow"}


def test_the_declared_dependencies_are_ranges_that_the_pins_meet(wheel):
    from importlib.metadata import version

    requires = [
        Requirement(line.split(":", 1)[1].strip())
        for line in _dist_info(wheel, "METADATA").splitlines()
        if line.startswith("Requires-Dist:")
    ]
    core = {_norm(r.name): r for r in requires if r.marker is None}
    assert {"apache-airflow", "sqlalchemy", "alembic", "lxml", "pydantic", "pyyaml", "requests"} <= set(core)
    airflow = core["apache-airflow"].specifier
    assert airflow.contains("3.3.2") and not airflow.contains("3.4.0") and not airflow.contains("3.2.0")
    pins = _pins()
    for name, req in core.items():
        assert req.specifier, f"{name}: no version range"
        # The version `make test` runs with: requirements.txt's pin, else what pip chose for Airflow.
        used = pins.get(name) or version(name)
        assert req.specifier.contains(used), f"{name} {used} (requirements.txt / .venv) is outside {req.specifier}"
    postgres = [r for r in requires if r.marker is not None and _norm(r.name) == "psycopg"]
    assert postgres and postgres[0].specifier.contains(pins["psycopg"])


# ------------------------------------------------------------------ installed into a fresh Airflow

TEAM_OPERATORS = '''"""The team's own operators package (not Flowlink's)."""
from airflow.sdk import BaseOperator


class TeamOperator(BaseOperator):
    def execute(self, context):
        return "team"


def team_macro():
    return "team operators"
'''
TEAM_HOOKS = '''"""The team's own hooks package (not Flowlink's)."""
TEAM_HOOK = "team hooks"
'''
TEAM_PLUGIN = """from airflow.plugins_manager import AirflowPlugin

from hooks import TEAM_HOOK
from operators import team_macro


class TeamPlugin(AirflowPlugin):
    name = "team"
    macros = [team_macro]
"""
TEAM_DAG = """from airflow.sdk import DAG

from hooks import TEAM_HOOK
from operators import TeamOperator

with DAG("team_dag", schedule=None, tags=[TEAM_HOOK]):
    TeamOperator(task_id="team")
"""


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment outside the checkout with the wheel, Airflow 3.3.2 and requirements.txt's pins
    (as constraints: pip installs what the wheel needs, at the versions `make test` uses)."""
    root = tmp_path_factory.mktemp("venv")
    assert not root.resolve().is_relative_to(REPO)
    python = shutil.which("python3.11") or sys.executable
    _run([python, "-m", "venv", root], cwd=root, env=_clean_env())
    constraints = root / "constraints.txt"  # pip takes no extras in a constraint: psycopg[binary] -> psycopg
    constraints.write_text("".join(f"{name}=={v}\n" for name, v in _pins().items()))
    started = time.monotonic()
    _run(
        [root / "bin" / "python", "-m", "pip", "install", "--quiet", "--constraint", constraints, wheel, AIRFLOW_PIN],
        cwd=root,
        env=_clean_env(),
        timeout=900,
    )
    print(f"\npip installed the wheel with Airflow into a fresh venv in {time.monotonic() - started:.0f}s")
    return root


def _write_team_folders(root: Path) -> tuple[Path, Path]:
    plugins, dags = root / "plugins", root / "dags"
    for folder, text in (("operators", TEAM_OPERATORS), ("hooks", TEAM_HOOKS)):
        (plugins / folder).mkdir(parents=True)
        (plugins / folder / "__init__.py").write_text(text)
    (plugins / "team_plugin.py").write_text(TEAM_PLUGIN)
    dags.mkdir()
    (dags / "team_dag.py").write_text(TEAM_DAG)
    return plugins, dags


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_installed_into_a_fresh_airflow_it_deploys_and_runs_a_workflow(venv, tmp_path_factory):
    bin_dir = venv / "bin"
    root = tmp_path_factory.mktemp("fresh-airflow")
    work = root / "work"  # every command's working folder: no checkout in it or above it
    work.mkdir()
    plugins, dags = _write_team_folders(root)

    # The packages come from the environment's site-packages; nothing of the checkout is on sys.path.
    probe = json.loads(
        _run(
            [
                bin_dir / "python",
                "-c",
                "import json, sys, flowlink, flowlink_airflow; "
                "print(json.dumps([flowlink.__file__, flowlink_airflow.__file__, sys.path]))",
            ],
            cwd=work,
            env=_clean_env(),
        )
    )
    site_packages = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert [Path(p).resolve().parent.parent for p in probe[:2]] == [site_packages.resolve()] * 2, probe
    assert not [p for p in probe[2] if p and Path(p).resolve().is_relative_to(REPO)], probe[2]

    spec = yaml.safe_load((REPO / "examples" / f"{WF}.yaml").read_text())
    spec["schedule"] = {"sync": "manual"}  # run once, by hand
    (work / f"{WF}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    create_erp(root / "erp.db", customers=20, orders=30)
    shop = DemoShop()
    shop.start()
    folders = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins)}
    server = AirflowServer(root, {**demo_connections(root / "erp.db", shop.url), **folders}, bin_dir=bin_dir, cwd=work)
    agent = None
    try:
        # Into the running Airflow: Flowlink's DAG files (the DAGs folder from Airflow's config), the store.
        written = server.flowlink("dags", "write").stdout
        files = sorted(p.name for p in dags.iterdir())
        assert files == sorted(["team_dag.py", *(p.name for p in (REPO / "dags").glob("*.py"))]), written
        server.flowlink("db-upgrade")

        listed = json.loads(_run([bin_dir / "airflow", "plugins", "--output", "json"], cwd=work, env=server.env))
        by_name = {p["name"]: p for p in listed}
        assert set(by_name) == {"flowlink", "team"}, listed  # the OpenLineage provider is the user's choice
        assert "flowlink_airflow.plugin:FlowlinkPlugin" in by_name["flowlink"]["source"]
        assert sorted(by_name["flowlink"]["timetables"]) == [
            "flowlink_airflow.timetable.ManualTimetable",
            "flowlink_airflow.timetable.WorkflowTimetable",
        ]
        assert by_name["team"]["source"] == "$PLUGINS_FOLDER/team_plugin.py" and by_name["team"]["macros"]

        server.flowlink("env", "add", "cloud", "--kind", "cloud")
        token = server.flowlink("env", "token", "cloud").stdout.strip()
        server.flowlink("publish", f"{WF}.yaml")
        wait_for("the deployment tracker DAG", lambda: server.dag_known("flowlink_deployments"), timeout=120, every=1)
        wait_for("the team's DAG", lambda: server.dag_known("team_dag"), timeout=60, every=1)
        errors = server.api("GET", "/api/v2/importErrors").json()
        assert errors["total_entries"] == 0, errors

        agent = AgentProcess(server, "cloud", token, root / "agent.log")
        out = server.flowlink("deploy", WF).stdout
        assert " is Pending " in out, out
        deployed = wait_for(
            "the deployment",
            lambda: next(
                (d for d in server.flowlink_json("deployments") if d["workflow"] == WF and d["status"] != "pending"),
                None,
            ),
            timeout=90,
            every=1,
        )
        assert deployed["status"] == "successful", (deployed, agent.output())
        wait_for("the workflow DAG", lambda: server.dag_known(WF), timeout=90, every=1)
        run_id = server.flowlink("run", WF).stdout.split("run ")[-1].strip()
        state = wait_for(
            "the workflow run to end",
            lambda: (s := server.run_state(WF, run_id)) in ("success", "failed") and s,
            timeout=180,
            every=1,
        )
        assert state == "success", f"run {run_id}: {state}; read {root / 'standalone.log'}"
        assert len(shop.records("customers")) == 20 and len(shop.records("orders")) == 30

        # The class path Airflow stores for the workflow's timetable is the package's.
        with sqlite3.connect(root / "airflow" / "airflow.db") as db:
            (timetable,) = db.execute("SELECT timetable_type FROM dag WHERE dag_id = ?", (WF,)).fetchone()
        assert timetable == "flowlink_airflow.timetable.ManualTimetable"

        # Flowlink's pages, their static files (package data) and its REST API.
        page = server.api("GET", "/flowlink/ui/deployments")
        assert page.status_code == 200 and WF in page.text and "text/html" in page.headers["content-type"]
        assert server.api("GET", "/flowlink/ui/snapshots").status_code == 200
        css = server.api("GET", "/flowlink/ui/static/flowlink.css")
        assert css.status_code == 200 and css.text.strip()
        api = server.api("GET", "/flowlink/api/v1/deployments")
        assert api.status_code == 200 and [d["status"] for d in api.json() if d["workflow"] == WF] == ["successful"]
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
        shop.stop()
