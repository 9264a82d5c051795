"""Benchmark: what an idle run costs, and whether every tick starts on time (issue 16, item 2).

    .venv/bin/python bench/schedule.py [--quick] [--workflows N] [--minutes M] [--before REV]

N workflows (100; --quick 20), each examples/erp_to_shop.yaml under another name (two touchpoints, orders after
customers, every minute), all live, against a demo ERP with nothing in it: every run is idle. Airflow standalone
with `make run`'s settings (examples/run.sh: LocalExecutor, parallelism 16, one api-server worker, DAG folder
refreshed every 15 s, task retries 2; the other settings Airflow's defaults) runs them for M minutes (10; --quick 3)
from a minute boundary after every DAG is known.

- CPU: user + system seconds of every process of the standalone tree (scheduler, its executor workers and their
  task processes, dag-processor and its parsing processes, api-server, triggerer), the children they reaped
  included (/proc), over the window; per idle run = that / the runs that ended in the window.
- On time: a tick (workflow, minute) is on time when its run's first task (customers.extract) started within 30 s
  of the tick; a tick the scheduler never ran counts as late. ticks due = N x M.
- --before REV runs the same with the code of git revision REV (flowlink, plugins, dag_factory and dags/ from
  `git archive`, put first on PYTHONPATH), first, for the table's comparison.

Prints a table, the CPU by component, the machine and the date, whether the target is met,
`cpu_per_idle_run=<seconds>` (this tree's code), and last `ratio=<ticks on time / ticks due>`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]
from tests.airflow_env import use_throwaway_airflow  # noqa: E402

use_throwaway_airflow(Path(tempfile.mkdtemp(prefix="flowlink-bench-schedule-")))  # as the tests, before Airflow

import yaml  # noqa: E402

from examples.demo_erp import create as create_erp  # noqa: E402
from examples.demo_shop import DemoShop  # noqa: E402
from tests.airflow_helpers import demo_connections  # noqa: E402
from tests.live_server import AirflowServer, wait_for  # noqa: E402

ON_TIME = 30.0  # seconds from the tick to the run's first task
TARGET_CPU = 1.0  # CPU seconds per idle run, at 100 workflows with every tick on time
FIRST_TASK = "customers.extract"
CLOCK = os.sysconf("SC_CLK_TCK")
# examples/run.sh's settings where tests/live_server.AirflowServer chooses others (faster parsing and heartbeats).
MAKE_RUN = {
    "AIRFLOW__CORE__PARALLELISM": "16",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "15",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "5",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "2",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "60",
}
COMPONENTS = (
    "scheduler",
    "executor workers",
    "task processes",
    "dag-processor",
    "DAG file parsing",
    "api-server",
    "triggerer",
    "standalone",
)


def wf_name(i: int) -> str:
    return f"idle_{i:04d}"


def publish_workflows(home: Path, n: int) -> None:
    """n renamed copies of the example, published and live (what an agent's install does) in FLOWLINK_HOME=home."""
    os.environ["FLOWLINK_HOME"] = str(home)
    from flowlink.publish import make_live, publish

    base = yaml.safe_load((REPO / "examples" / "erp_to_shop.yaml").read_text())
    assert base["schedule"]["repeat"] == "every_minute" and len(base["touchpoints"]) == 2
    specs = home.parent / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        path = specs / f"{wf_name(i)}.yaml"
        path.write_text(yaml.safe_dump({**base, "name": wf_name(i)}, sort_keys=False))
        make_live(publish(path).artifact)


def code_of(rev: str, work: Path) -> dict[str, str]:
    """Revision `rev`'s packages laid out as they install (flowlink, flowlink_airflow with dag_factory inside) and
    its dags/ folder: the environment that runs them instead of this tree's."""
    src = work / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "flowlink", "plugins", "dag_factory", "dags"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    path = work / "path"
    path.mkdir()
    shutil.move(src / "flowlink", path / "flowlink")
    shutil.move(src / "plugins", path / "flowlink_airflow")
    shutil.move(src / "dag_factory", path / "flowlink_airflow" / "dag_factory")
    return {"PYTHONPATH": str(path), "AIRFLOW__CORE__DAGS_FOLDER": str(src / "dags")}


# ------------------------------------------------------------------------------------------------ CPU from /proc
@dataclass
class Proc:
    pid: int
    ppid: int
    own: float  # utime + stime, seconds
    reaped: float  # cutime + cstime: the children it waited for


def _stat(pid: int) -> Proc | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "(comm)": state, ppid, ...; utime is field 14 of stat
    utime, stime, cutime, cstime = (int(x) / CLOCK for x in fields[11:15])
    return Proc(pid, int(fields[1]), utime + stime, cutime + cstime)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Tree:
    """The processes under `root` at one moment, each with its component."""

    procs: dict[int, Proc] = field(default_factory=dict)
    component: dict[int, str] = field(default_factory=dict)  # where a process's own CPU goes
    children_component: dict[int, str] = field(default_factory=dict)  # where the CPU of its reaped children goes


def sample(root: int) -> Tree:
    procs = {p.pid: p for p in (_stat(int(d)) for d in os.listdir("/proc") if d.isdigit()) if p is not None}
    kids: dict[int, list[int]] = {}
    for p in procs.values():
        kids.setdefault(p.ppid, []).append(p.pid)
    tree = Tree()

    def walk(pid: int, depth: int, top: str) -> None:
        tree.procs[pid] = procs[pid]
        if depth == 0:
            comp = child = "standalone"
        elif depth == 1:  # `airflow scheduler`, `airflow dag-processor`, `airflow api_server ...`, `airflow triggerer`
            cmd = _cmdline(pid).replace("_", "-")
            top = next((c for c in ("scheduler", "dag-processor", "api-server", "triggerer") if c in cmd), "standalone")
            comp = top
            child = {"scheduler": "executor workers", "dag-processor": "DAG file parsing"}.get(top, top)
        elif top == "scheduler":
            comp = "executor workers" if depth == 2 else "task processes"
            child = "task processes"
        elif top == "dag-processor":
            comp = child = "DAG file parsing"
        else:
            comp = child = top
        tree.component[pid], tree.children_component[pid] = comp, child
        for k in kids.get(pid, []):
            walk(k, depth + 1, top)

    if root in procs:
        walk(root, 0, "standalone")
    return tree


def cpu_between(start: Tree, end: Tree) -> dict[str, float]:
    """CPU seconds per component between two samples. A process that ended in between has its CPU in its parent's
    reaped time; the part it had used before `start` is taken off again."""
    used = dict.fromkeys(COMPONENTS, 0.0)
    for pid, p in end.procs.items():
        before = start.procs.get(pid)
        if before is not None and before.ppid != p.ppid:  # a pid reused by another process
            before = None
        used[end.component[pid]] += p.own - (before.own if before else 0.0)
        used[end.children_component[pid]] += p.reaped - (before.reaped if before else 0.0)
    for pid, p in start.procs.items():
        if pid not in end.procs and p.ppid in end.procs:  # ended in between, reaped by a process still there
            used[start.children_component[p.ppid]] -= p.own + p.reaped
    return used


# ------------------------------------------------------------------------------------------------- one contender
@dataclass
class Result:
    label: str
    runs: int  # idle runs that ended in the window
    failed: int
    cpu: dict[str, float]
    due: int
    on_time: int
    delays: list[float]  # tick -> first task start, seconds, of the ticks that ran
    tasks: int  # task processes started in the window (every DAG's)

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    @property
    def per_run(self) -> float:
        return self.cpu_total / self.runs if self.runs else float("inf")


def _utc(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    t = dt.datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def run_contender(label: str, n: int, minutes: int, extra_env: dict[str, str]) -> Result:
    root = Path(tempfile.mkdtemp(prefix="flowlink-bench-schedule-"))
    # Bytecode cached as an installed package has it (pip writes .pyc files): a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile Flowlink's modules again in every task process.
    extra_env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(root / "pycache"), **extra_env}
    create_erp(root / "erp.db", customers=0, orders=0)  # nothing to sync: every run is idle
    shop = DemoShop()
    shop.start()
    publish_workflows(root / "flowlink", n)
    print(f"{label}: {n} workflows live; starting Airflow standalone ...", flush=True)
    server = AirflowServer(root, {**demo_connections(root / "erp.db", shop.url), **MAKE_RUN, **extra_env})
    try:
        known = wait_for(
            f"the {n} workflow DAGs",
            lambda: (
                (r := server.api("GET", "/api/v2/dags", params={"dag_id_pattern": "idle_", "limit": 1})).ok
                and r.json()["total_entries"] >= n
                and r
            ),
            timeout=600,
            every=5,
        )
        assert known
        now = dt.datetime.now(dt.UTC)
        t0 = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1 if now.second < 50 else 2)
        print(f"{label}: all DAGs known; measuring from {t0:%H:%M:%S} for {minutes} min", flush=True)
        time.sleep(max(0.0, (t0 - dt.datetime.now(dt.UTC)).total_seconds()))
        start = sample(server.proc.pid)
        t1 = t0 + dt.timedelta(minutes=minutes)
        time.sleep(max(0.0, (t1 - dt.datetime.now(dt.UTC)).total_seconds()))
        end = sample(server.proc.pid)
    finally:
        server.stop()
        shop.stop()
    cpu = cpu_between(start, end)
    db = sqlite3.connect(Path(server.env["AIRFLOW_HOME"]) / "airflow.db")
    runs = db.execute(
        "SELECT r.dag_id, r.run_after, r.end_date, r.state, t.start_date FROM dag_run r LEFT JOIN task_instance t"
        " ON t.dag_id = r.dag_id AND t.run_id = r.run_id AND t.task_id = ? WHERE r.dag_id LIKE 'idle_%'",
        (FIRST_TASK,),
    ).fetchall()
    tasks = db.execute(  # task instances that ran in a process of their own (skipped ones never got a pid)
        "SELECT start_date FROM task_instance WHERE pid IS NOT NULL AND start_date IS NOT NULL"
    ).fetchall()
    db.close()
    ended = [r for r in runs if (e := _utc(r[2])) is not None and t0 <= e < t1]
    ticks = {t0 + dt.timedelta(minutes=k) for k in range(minutes)}
    delays = []
    for _, run_after, _, _, first_start in runs:
        tick, first = _utc(run_after), _utc(first_start)
        if tick in ticks and first is not None:
            delays.append((first - tick).total_seconds())
    return Result(
        label=label,
        runs=sum(1 for r in ended if r[3] == "success"),
        failed=sum(1 for r in ended if r[3] != "success"),
        cpu=cpu,
        due=n * minutes,
        on_time=sum(1 for d in delays if d <= ON_TIME),
        delays=delays,
        tasks=sum(1 for (s,) in tasks if t0 <= (_utc(s) or t0) < t1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 workflows for 3 minutes")
    parser.add_argument("--workflows", type=int, help="how many workflows (default 100; --quick 20)")
    parser.add_argument("--minutes", type=int, help="minutes measured (default 10; --quick 3)")
    parser.add_argument("--before", metavar="REV", help="also run git revision REV's code first, for comparison")
    args = parser.parse_args()
    n = args.workflows or (20 if args.quick else 100)
    minutes = args.minutes or (3 if args.quick else 10)
    results = []
    if args.before:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", args.before], capture_output=True, text=True, check=True
        ).stdout.strip()
        env = code_of(args.before, Path(tempfile.mkdtemp(prefix="flowlink-bench-before-")))
        results.append(run_contender(f"before ({rev})", n, minutes, env))
    results.append(run_contender("this tree", n, minutes, {}))

    print(
        f"\nIdle runs: {n} workflows x 2 touchpoints every minute, nothing new, {minutes} min measured; Airflow "
        f"standalone, LocalExecutor, parallelism {MAKE_RUN['AIRFLOW__CORE__PARALLELISM']} (make run's settings)"
    )
    print(
        f"{'code':<20} {'idle runs':>9} {'failed':>6} {'task processes':>14} {'CPU-s':>8} {'CPU-s/run':>9}"
        f" {'ticks on time':>15} {'start delay median / max':>25}"
    )
    for r in results:
        delay = f"{statistics.median(r.delays):.1f} / {max(r.delays):.1f} s" if r.delays else "-"
        print(
            f"{r.label:<20} {r.runs:>9} {r.failed:>6} {r.tasks:>14} {r.cpu_total:>8.1f} {r.per_run:>9.2f}"
            f" {f'{r.on_time}/{r.due}':>15} {delay:>25}"
        )
    print("\nCPU seconds by component over the window")
    print(f"{'component':<18}" + "".join(f" {r.label:>20}" for r in results))
    for comp in COMPONENTS:
        print(f"{comp:<18}" + "".join(f" {r.cpu[comp]:>20.1f}" for r in results))
    print(
        f"\nmachine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )
    print(f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    now = results[-1]
    met = now.on_time == now.due and now.per_run <= TARGET_CPU
    scale = "" if n >= 100 else f" (set for 100 workflows; this run has {n})"
    print(
        f"target: every tick on time, at most {TARGET_CPU:g} CPU-s per idle run{scale}: {'met' if met else 'NOT met'}"
    )
    print(f"cpu_per_idle_run={now.per_run:.2f}")
    print(f"ratio={now.on_time / now.due:.2f}")


if __name__ == "__main__":
    main()
