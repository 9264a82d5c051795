"""Deployment latency against real processes on loopback (Airflow standalone + a `flowlink agent` process).

    .venv/bin/python bench/deploy.py [--quick]

Two figures per deployment, both from the deployment's own timestamps (one machine, one clock):
  * agent's last step -> Successful: the "deployed" step's "at" to the deployment's "ended_at" (target: within 5 s);
  * deploy -> Successful: the deployment's "started_at" (set by `flowlink deploy`) to "ended_at", the agent
    already connected and polling.
N deployments (5, --quick 2) alternate between two published versions, with the agent at --interval 0.5 and then
at its default 2 s. Prints a table, the machine and date, and last `ratio=<median last-step-to-Successful / 5.0>`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]
from tests.airflow_env import use_throwaway_airflow  # noqa: E402

use_throwaway_airflow(Path(tempfile.mkdtemp(prefix="flowlink-bench-airflow-")))  # as the tests, before Airflow

from examples.demo_erp import create as create_erp  # noqa: E402
from examples.demo_shop import DemoShop  # noqa: E402
from tests.airflow_helpers import demo_connections  # noqa: E402
from tests.live_server import BIN, AgentProcess, AirflowServer, wait_for  # noqa: E402

WF = "erp_to_shop"
TARGET = 5.0


def start_agent(server: AirflowServer, token: str, log: Path, interval: float | None) -> AgentProcess:
    """AgentProcess at --interval 0.5 (its fixed value), or the same process with another interval / the default."""
    if interval == 0.5:
        return AgentProcess(server, "cloud", token, log)
    agent = object.__new__(AgentProcess)
    agent.log_path, agent.log = log, open(log, "a")
    cmd = [str(BIN / "flowlink"), "agent", "--environment", "cloud", "--server", f"{server.url}/flowlink"]
    cmd += ["--interval", f"{interval:g}"] if interval is not None else []
    agent.proc = subprocess.Popen(
        cmd,
        env={**server.env, "FLOWLINK_AGENT_TOKEN": token},
        cwd=REPO,
        stdout=agent.log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return agent


def deploy_once(server: AirflowServer, version: int) -> tuple[float, float]:
    """One deployment to Successful: (seconds last step -> Successful, seconds deploy -> Successful)."""
    out = server.flowlink("deploy", WF, "--version", str(version)).stdout
    deployment_id = int(out.split()[1].rstrip(":"))

    def successful():
        d = next(d for d in server.flowlink_json("deployments") if d["workflow"] == WF)
        if d["id"] == deployment_id and d["status"] in ("successful", "unsuccessful"):
            return d

    d = wait_for(f"deployment {deployment_id} to end", successful, timeout=120)
    assert d["status"] == "successful", d
    log = server.flowlink_json("deployment-log", WF)
    assert log["deployment"]["id"] == deployment_id, log["deployment"]
    last = max(
        dt.datetime.fromisoformat(s["at"]) for s in log["steps"] if s["step"] == "deployed" and s["status"] == "done"
    )
    ended, started = (dt.datetime.fromisoformat(d[k]) for k in ("ended_at", "started_at"))
    return (ended - last).total_seconds(), (ended - started).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 deployments per agent interval instead of 5")
    n = 2 if parser.parse_args().quick else 5
    root = Path(tempfile.mkdtemp(prefix="flowlink-bench-deploy-"))
    shop = DemoShop()
    shop.start()
    create_erp(root / "erp.db", customers=20, orders=30)
    server = AirflowServer(root, demo_connections(root / "erp.db", shop.url))
    results: dict[str, list[tuple[float, float]]] = {}
    agent = None
    try:
        server.flowlink("env", "add", "cloud", "--kind", "cloud")
        token = server.flowlink("env", "token", "cloud").stdout.strip()
        spec = REPO / "examples" / "erp_to_shop.yaml"
        v2 = root / "v2.yaml"
        v2.write_text(spec.read_text().replace("Customers and their orders", "Version two,"))
        server.flowlink("publish", str(spec))
        server.flowlink("publish", str(v2))
        wait_for("the deployment tracker DAG", lambda: server.dag_known("flowlink_deployments"), timeout=90, every=1)
        i = 0
        for label, interval in (("--interval 0.5", 0.5), ("default (2 s)", None)):
            agent = start_agent(server, token, root / f"agent-{interval}.log", interval)
            wait_for("the agent to start", lambda agent=agent: "agent: environment cloud" in agent.output(), timeout=30)
            time.sleep(3)  # connected: past its first heartbeat and polls
            results[label] = []
            for _ in range(n):
                results[label].append(deploy_once(server, 1 + i % 2))
                i += 1
                print(
                    f"  {label}: deployment {i}: {results[label][-1][0]:.3f} s / {results[label][-1][1]:.2f} s",
                    flush=True,
                )
            agent.stop()
            agent = None
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
        shop.stop()

    def stats(xs):
        return f"{min(xs):7.3f} {statistics.median(xs):7.3f} {max(xs):7.3f}"

    print(f"\nDeployment latency, {n} deployments per agent interval, seconds (min / median / max)")
    print(f"{'metric':<38} {'agent':<15} {'min':>7} {'median':>7} {'max':>7}")
    for label, rows in results.items():
        print(f"{'agent last step -> Successful':<38} {label:<15} {stats([r[0] for r in rows])}")
        print(f"{'flowlink deploy -> Successful':<38} {label:<15} {stats([r[1] for r in rows])}")
    print(
        f"\nmachine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    print(f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    last_step = [r[0] for r in results["--interval 0.5"]]
    print(f"ratio={statistics.median(last_step) / TARGET:.2f}")


if __name__ == "__main__":
    main()
