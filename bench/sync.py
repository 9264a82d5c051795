"""Benchmark: a real Flowlink DAG run (SQLite ERP -> REST demo shop on loopback) vs hand-written scripts.

    .venv/bin/python bench/sync.py [--quick] [--latency MS] [--concurrency N] [--profile]

Sync: N customers with a one-touchpoint variant of examples/erp_to_shop.yaml (customers only, batch_size 200):
100,000 (--quick 10,000); with --latency, 10,000 (--quick 2,000). The demo shop runs in its own process (threaded:
a thread per connection) and, with --latency MS, answers each request MS milliseconds after it arrived, as an API
over the internet would. Each contender gets a FRESH shop, so each sends every record.
Contenders: Flowlink, dag.test() of the live DAG (DAG parsing not timed; first an untimed run over an empty ERP,
as Airflow's in-process execution API builds its schemas on its first requests, which a deployment's api-server does
once), its REST connection at the default concurrency (or --concurrency N, in the connection's extra); the
sequential script, one requests.Session, PUT /customers/<customer_id> per record with the same mapped fields,
SQLAlchemy reading the same rows in batches of 200; the concurrent script, the same with a thread pool of the same
concurrency over one Session (its connection pool as large), every record submitted as it is read.
Memory (without --latency): peak RSS (ru_maxrss) of a fresh subprocess that calls flowlink.sync.transform and
flowlink.sync.load (SqlTarget into a SQLite file) on staged batch files, at 1,000,000 and 100,000 records (--quick:
100,000, 10,000).
--profile: afterwards a cProfile of one more Flowlink run (top functions by own time; not part of the timings).
Last line: ratio=<sequential script time / Flowlink time>.
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


# ------------------------------------------------------------------ the demo shop, in its own process


def shop_child(latency_ms: float) -> None:
    """Serve the demo shop, answering each request latency_ms after it arrived; print its URL, serve until SIGTERM."""
    import signal
    import threading

    from examples.demo_shop import DemoShop, _Handler

    class SlowHandler(_Handler):
        def _dispatch(self, method: str) -> None:
            time.sleep(latency_ms / 1000)  # in the request's own thread: the others are answered meanwhile
            super()._dispatch(method)

    class SlowShop(DemoShop):
        handler = SlowHandler

    shop = SlowShop()
    server = shop.bind()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(shop.url, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


class Shop:
    """The demo shop in a fresh process (bench/sync.py --shop-child), so it takes no CPU time from the contender's."""

    def __init__(self, latency_ms: float):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--shop-child", str(latency_ms)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://"), self.url

    def customers(self) -> int:
        import requests

        return requests.get(f"{self.url}/_admin/stats", timeout=30).json()["records"]["customers"]

    def __enter__(self) -> Shop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# ------------------------------------------------------------------ the hand-written scripts


def _rows(erp: Path):
    """The ERP's customers as the scripts send them: (customer id, JSON body), read in batches of BATCH."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{erp}")
    try:
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
                    yield cid, json.dumps(body, ensure_ascii=False).encode()
    finally:
        engine.dispose()


def script_sync(erp: Path, url: str) -> int:
    """The sequential script: one PUT after the other."""
    import requests

    session = requests.Session()
    sent = 0
    for cid, data in _rows(erp):
        resp = session.put(
            f"{url}/customers/{cid}", data=data, headers={"Content-Type": "application/json"}, timeout=30
        )
        resp.raise_for_status()
        sent += 1
    session.close()
    return sent


def concurrent_script_sync(erp: Path, url: str, concurrency: int) -> int:
    """The concurrent script: the same PUTs on a thread pool of `concurrency` threads over one Session."""
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=concurrency))  # a kept connection for each thread

    def put(cid: str, data: bytes) -> None:
        resp = session.put(
            f"{url}/customers/{cid}", data=data, headers={"Content-Type": "application/json"}, timeout=30
        )
        resp.raise_for_status()

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(put, cid, data) for cid, data in _rows(erp)]
        for future in futures:
            future.result()
    session.close()
    return len(futures)


# ------------------------------------------------------------------ the Flowlink DAG run


def warm_up() -> None:
    """One untimed run of the DAG over an empty ERP: Airflow's in-process execution API (the api-server of a real
    deployment) builds its schemas on its first requests, several seconds that a deployment spends once, at start."""
    from examples.demo_erp import create as create_erp
    from tests.airflow_helpers import load_dags

    empty = _home / "erp-empty.db"
    create_erp(empty, customers=0, orders=0)
    erp = os.environ["AIRFLOW_CONN_DEMO_ERP"]
    os.environ["AIRFLOW_CONN_DEMO_ERP"] = json.dumps({"conn_type": "sqlite", "host": str(empty)})
    try:
        with Shop(0) as shop:
            os.environ["AIRFLOW_CONN_DEMO_SHOP"] = json.dumps({"conn_type": "http", "host": shop.url})
            run = load_dags().get_dag("erp_to_shop").test()
            assert run.state == "success", run.state
    finally:
        os.environ["AIRFLOW_CONN_DEMO_ERP"] = erp


def flowlink_sync(latency_ms: float, concurrency: int | None, profile: bool = False) -> tuple[float, int]:
    from tests.airflow_helpers import load_dags

    with Shop(latency_ms) as shop:
        extra = {} if concurrency is None else {"concurrency": concurrency}
        os.environ["AIRFLOW_CONN_DEMO_SHOP"] = json.dumps({"conn_type": "http", "host": shop.url, "extra": extra})
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
        return seconds, shop.customers()


def bench_sync(n: int, latency_ms: float, concurrency: int | None, profile: bool) -> list[tuple[str, int, float]]:
    from airflow.utils.db import resetdb

    from examples.demo_erp import create as create_erp
    from flowlink.actions import publish_workflow
    from flowlink.connectors.rest import CONCURRENCY
    from flowlink.publish import make_live
    from flowlink.store import Store

    resetdb()
    erp = _home / "erp.db"
    create_erp(erp, customers=n, orders=0)
    os.environ["AIRFLOW_CONN_DEMO_ERP"] = json.dumps({"conn_type": "sqlite", "host": str(erp)})
    store = Store.open()
    make_live(publish_workflow(store, spec_variant(_home / "spec")).result.artifact)
    store.dispose()
    threads = concurrency or CONCURRENCY

    warm_up()
    rows = []
    seconds, got = flowlink_sync(latency_ms, concurrency)
    assert got == n, (got, n)
    rows.append((f"flowlink (dag.test, {threads} at a time)", got, seconds))

    for name, script in (
        ("sequential script", lambda url: script_sync(erp, url)),
        (f"concurrent script ({threads} threads)", lambda url: concurrent_script_sync(erp, url, threads)),
    ):
        with Shop(latency_ms) as shop:
            t0 = time.perf_counter()
            got = script(shop.url)
            seconds = time.perf_counter() - t0
            assert got == n and shop.customers() == n, (got, n)
        rows.append((name, got, seconds))

    if profile:  # a second Flowlink run needs a fresh Flowlink home (watermark) and a fresh shop
        os.environ["FLOWLINK_HOME"] = str(_home / "flowlink-profile")
        store = Store.open()
        make_live(publish_workflow(store, spec_variant(_home / "spec")).result.artifact)
        store.dispose()
        print(f"\ncProfile of one more Flowlink run ({n:,} records), top functions by own time:")
        flowlink_sync(latency_ms, concurrency, profile=True)
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


def _option(argv: list[str], name: str) -> str | None:
    if name not in argv:
        return None
    i = argv.index(name)
    if i + 1 >= len(argv):
        raise SystemExit(f"{name} needs a value")
    return argv[i + 1]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--memory-child"]:
        memory_child(int(argv[1]))
        return 0
    if argv[:1] == ["--shop-child"]:
        shop_child(float(argv[1]))
        return 0
    quick, profile = "--quick" in argv, "--profile" in argv
    latency = float(_option(argv, "--latency") or 0)
    concurrency = int(_option(argv, "--concurrency") or 0) or None
    if latency:
        n, big = (2_000, 0) if quick else (10_000, 0)
    else:
        n, big = (10_000, 100_000) if quick else (100_000, 1_000_000)
    logging.getLogger("airflow").setLevel(logging.WARNING)

    print(
        f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )
    print(f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}")
    print(
        f"sync: customers only (one-touchpoint variant of examples/erp_to_shop.yaml), batch_size {BATCH}; the demo "
        f"shop in its own process, answering each request after {latency:g} ms\n"
    )

    mem = [bench_memory(k) for k in (big // 10, big)] if big else []
    rows = bench_sync(n, latency, concurrency, profile)

    print(f"\n{'contender':<34} {'records':>10} {'seconds':>9} {'records/s':>10}")
    for name, count, seconds in rows:
        print(f"{name:<34} {count:>10,} {seconds:>9.2f} {count / seconds:>10,.0f}")
    if mem:
        print("\npeak memory (fresh subprocess, ru_maxrss) of sync.transform + sync.load (SqlTarget, SQLite):")
        print(
            f"{'records':>10} {'staged MB':>10} {'transform MB':>13} {'peak MB':>8} {'transform s':>12} {'load s':>8}"
        )
        for m in mem:
            print(
                f"{m['records']:>10,} {m['base_mb']:>10.0f} {m['after_transform_mb']:>13.0f} {m['peak_mb']:>8.0f} "
                f"{m['transform_s']:>12.1f} {m['load_s']:>8.1f}"
            )
        small, large = mem
        growth = large["peak_mb"] - small["peak_mb"]
        flat = growth < 0.1 * small["peak_mb"]
        print(
            f"peak at {large['records']:,}: {large['peak_mb']:.0f} MB "
            f"(target < 300: {'met' if large['peak_mb'] < 300 else 'NOT met'}); "
            f"vs {small['records']:,}: {growth:+.0f} MB ({'flat' if flat else 'NOT flat'})"
        )
    flowlink_s, sequential_s, concurrent_s = (seconds for _, _, seconds in rows)
    ratio = sequential_s / flowlink_s
    versus_concurrent = concurrent_s / flowlink_s
    print(f"\nFlowlink vs the sequential script: {ratio:.2f}x; vs the concurrent script: {versus_concurrent:.2f}x")
    if latency:
        print(
            "targets at --latency 20, 10,000 records: "
            f">= 8x the sequential script: {'met' if ratio >= 8 else 'NOT met'}; "
            f">= 0.8x the concurrent script: {'met' if versus_concurrent >= 0.8 else 'NOT met'}"
        )
    else:
        print(f"target without latency: >= 0.85x the sequential script: {'met' if ratio >= 0.85 else 'NOT met'}")
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
