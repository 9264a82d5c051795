"""Benchmark: a real Flowlink DAG run (SQLite ERP -> REST demo shop on loopback) vs a hand-written script.

    .venv/bin/python bench/sync.py [--quick] [--profile]

Sync: N customers (100,000; --quick 10,000) with a one-touchpoint variant of examples/erp_to_shop.yaml
(customers only, batch_size 200). Flowlink: dag.test() of the live DAG (DAG parsing not timed). Script: one
requests.Session, PUT /customers/<customer_id> per record with the same mapped fields; SQLAlchemy reads the
same rows in batches of 200. Each contender gets a FRESH shop, so both send every record.
Memory: peak RSS (ru_maxrss) of a fresh subprocess that calls flowlink.sync.transform and flowlink.sync.load
(SqlTarget into a SQLite file) on staged batch files, at 1,000,000 and 100,000 records (--quick: 100,000, 10,000).
--profile: afterwards a cProfile of one more Flowlink run (top functions by own time; not part of the timings).
Last line: ratio=<script time / Flowlink time>.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.airflow_env import use_throwaway_airflow  # noqa: E402

_home = Path(tempfile.mkdtemp(prefix="flowlink-bench-sync-"))
use_throwaway_airflow(_home / "airflow", _home / "flowlink")  # as the tests do, before Airflow is imported
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # keep dag.test quiet on stdout
os.environ.pop("FLOWLINK_STAGING_DIR", None)

import datetime as dt  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import yaml  # noqa: E402

BATCH = 200
COUNTRIES = {"DE": "Germany", "FR": "France", "US": "United States"}


def spec_variant(folder: Path, target: dict | None = None, load: dict | None = None) -> Path:
    """examples/erp_to_shop.yaml with the customers touchpoint only (optionally another target/load)."""
    spec = yaml.safe_load((REPO / "examples" / "erp_to_shop.yaml").read_text())
    spec["touchpoints"] = [tp for tp in spec["touchpoints"] if tp["name"] == "customers"]
    assert spec["touchpoints"][0]["batch_size"] == BATCH
    if target:
        spec["target"] = target
    if load:
        spec["touchpoints"][0]["load"] = load
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "erp_to_shop.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# ------------------------------------------------------------------ the hand-written script


def script_sync(erp: Path, url: str) -> int:
    import requests
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{erp}")
    session = requests.Session()
    sent = 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
            sa.text("SELECT * FROM customers ORDER BY updated_at, id")
        )
        for rows in result.mappings().partitions(BATCH):
            for r in rows:
                cid = str(r["id"])
                body = {
                    "customer_id": cid,
                    "name": f"{r['first_name']} {r['last_name']}",
                    "email": r["email"].lower(),
                    "country": COUNTRIES.get(r["country_code"], "Other"),
                    "channel": "erp",
                }
                resp = session.put(
                    f"{url}/customers/{cid}",
                    data=json.dumps(body, ensure_ascii=False).encode(),
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                resp.raise_for_status()
                sent += 1
    session.close()
    engine.dispose()
    return sent


# ------------------------------------------------------------------ the Flowlink DAG run


def flowlink_sync(erp: Path, profile: bool = False) -> tuple[float, int]:
    from examples.demo_shop import DemoShop
    from tests.airflow_helpers import load_dags

    with DemoShop() as shop:
        os.environ["AIRFLOW_CONN_DEMO_SHOP"] = json.dumps({"conn_type": "http", "host": shop.url})
        dag = load_dags().get_dag("erp_to_shop")
        t0 = time.perf_counter()
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            run = prof.runcall(dag.test)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        else:
            run = dag.test()
        seconds = time.perf_counter() - t0
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert run.state == "success", states
        return seconds, len(shop.records("customers"))


def bench_sync(n: int, profile: bool) -> list[tuple[str, int, float]]:
    from airflow.utils.db import resetdb

    from examples.demo_erp import create as create_erp
    from examples.demo_shop import DemoShop
    from flowlink.actions import publish_workflow
    from flowlink.publish import make_live
    from flowlink.store import Store

    resetdb()
    erp = _home / "erp.db"
    create_erp(erp, customers=n, orders=0)
    os.environ["AIRFLOW_CONN_DEMO_ERP"] = json.dumps({"conn_type": "sqlite", "host": str(erp)})
    store = Store.open()
    make_live(publish_workflow(store, spec_variant(_home / "spec")).result.artifact)
    store.dispose()

    rows = []
    seconds, got = flowlink_sync(erp)
    assert got == n, (got, n)
    rows.append(("flowlink (dag.test)", got, seconds))

    with DemoShop() as shop:
        t0 = time.perf_counter()
        got = script_sync(erp, shop.url)
        seconds = time.perf_counter() - t0
        assert got == n and len(shop.records("customers")) == n
    rows.append(("script (requests+SQLAlchemy)", got, seconds))

    if profile:  # a second Flowlink run needs a fresh Flowlink home (watermark) and a fresh shop
        os.environ["FLOWLINK_HOME"] = str(_home / "flowlink-profile")
        store = Store.open()
        make_live(publish_workflow(store, spec_variant(_home / "spec")).result.artifact)
        store.dispose()
        print(f"\ncProfile of one more Flowlink run ({n:,} records), top functions by own time:")
        flowlink_sync(erp, profile=True)
    return rows


# ------------------------------------------------------------------ memory of transform + load (child process)


def memory_child(n: int) -> None:
    """Stage n extracted records as batch files, then time/measure transform and load directly."""
    import sqlite3

    from flowlink import staging, sync
    from flowlink.actions import publish_workflow
    from flowlink.connectors.sql import SqlTarget
    from flowlink.mapping import output_types
    from flowlink.recordxml import RecordWriter
    from flowlink.states import Step
    from flowlink.store import Store, bucket
    from flowlink.transform import Transformer

    logging.disable(logging.INFO)
    db = _home / "target.db"
    with sqlite3.connect(db) as c:
        c.execute(
            "CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, email TEXT, country TEXT, channel TEXT)"
        )
    store = Store.open()
    spec = spec_variant(
        _home / "spec-mem",
        target={"type": "sql", "connection": "bench_target"},
        load={"table": "customers", "method": "upsert", "key": "customer_id"},
    )
    artifact = publish_workflow(store, spec).result.artifact
    tp = artifact.workflow_model().touchpoint("customers")
    ctx = sync.RunContext(store, artifact, "bench_run")
    folder, batches = ctx.folder("customers", Step.EXTRACT), []
    writer = RecordWriter(tp.extract.key)
    for b, start in enumerate(range(1, n + 1, BATCH), 1):  # what extract leaves behind, one batch at a time
        records = [
            {
                "id": i,
                "first_name": "Anna",
                "last_name": f"Müller{i}",
                "email": f"Anna.M{i}@Example.de",
                "country_code": "DEFRUSGB"[2 * (i % 4) : 2 * (i % 4) + 2],
                "updated_at": "2024-03-05T08:15:00Z",
            }
            for i in range(start, min(start + BATCH, n + 1))
        ]
        path = folder / f"batch-{b:05d}.xml"
        staging.write_batch(path, writer.write(records).document)
        bucket.mark_unprocessed(store, ctx.workflow, tp.name, ctx.run_id, [str(r["id"]) for r in records], resync=False)
        batches.append(str(path))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    types = output_types(tp)
    transformer = Transformer(artifact.stylesheets[tp.name], types, tp.extract.key)  # as the TransformOperator
    t0 = time.perf_counter()
    extracted = sync.Extracted(version=artifact.version, batches=batches, count=n, failed=0, watermark=None)
    transformed = sync.transform(ctx, tp, transformer, extracted)
    t1 = time.perf_counter()
    after_transform = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = sync.load(ctx, tp, lambda: SqlTarget(f"sqlite:///{db}"), transformed)  # closed by the load
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert result["count"] == n, result
    print(
        json.dumps(
            {
                "records": n,
                "base_mb": base,
                "after_transform_mb": after_transform,
                "peak_mb": peak,
                "transform_s": t1 - t0,
                "load_s": t2 - t1,
            }
        )
    )


def bench_memory(n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--memory-child"]:
        memory_child(int(argv[1]))
        return 0
    quick, profile = "--quick" in argv, "--profile" in argv
    n, big = (10_000, 100_000) if quick else (100_000, 1_000_000)
    logging.getLogger("airflow").setLevel(logging.WARNING)

    print(
        f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )
    print(f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}")
    print(f"sync: customers only (one-touchpoint variant of examples/erp_to_shop.yaml), batch_size {BATCH}\n")

    mem = [bench_memory(k) for k in (big // 10, big)]
    rows = bench_sync(n, profile)

    print(f"\n{'contender':<30} {'records':>10} {'seconds':>9} {'records/s':>10}")
    for name, count, seconds in rows:
        print(f"{name:<30} {count:>10,} {seconds:>9.2f} {count / seconds:>10,.0f}")
    print("\npeak memory (fresh subprocess, ru_maxrss) of sync.transform + sync.load (SqlTarget, SQLite):")
    print(f"{'records':>10} {'staged MB':>10} {'transform MB':>13} {'peak MB':>8} {'transform s':>12} {'load s':>8}")
    for m in mem:
        print(
            f"{m['records']:>10,} {m['base_mb']:>10.0f} {m['after_transform_mb']:>13.0f} {m['peak_mb']:>8.0f} "
            f"{m['transform_s']:>12.1f} {m['load_s']:>8.1f}"
        )
    small, large = mem
    growth = large["peak_mb"] - small["peak_mb"]
    flat = growth < 0.1 * small["peak_mb"]
    print(
        f"peak at {large['records']:,}: {large['peak_mb']:.0f} MB (target < 300: {'met' if large['peak_mb'] < 300 else 'NOT met'}); "
        f"vs {small['records']:,}: {growth:+.0f} MB ({'flat' if flat else 'NOT flat'})"
    )
    flowlink_s, script_s = rows[0][2], rows[1][2]
    ratio = script_s / flowlink_s
    print(f"sync target >= 0.5x the script: {'met' if ratio >= 0.5 else 'NOT met'}")
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
