"""DagBag parse benchmark: Flowlink vs dag-factory 1.1.0 vs a plain hand-written Airflow loader.

    .venv/bin/python bench/parse.py [--quick] [--repeat K] [--profile] [--keep]
    .venv/bin/python bench/parse.py --workflows N [N ...] [--repeat K]

Every contender builds the same DAG per workflow: 3 touchpoints a -> b -> c, each a task group of
extract -> transform -> load, then one end task after the three groups (trigger rule none_failed, as Flowlink's
`all-loaded` that fails a run in which a load failed): 10 tasks.
Each measurement runs in a FRESH process (bench/parse_measure.py)
that imports Airflow and times DagBag(dag_folder=...) and reads the peak RSS (VmHWM); the contenders'
runs at one N alternate (plain, dag-factory, flowlink, plain, ...) and the median of each is kept.

* flowlink    N specs derived from examples/erp_to_shop.yaml (compiled once by flowlink.publish.compile_content,
              each then published by flowlink.publish.publish_content under its own name, as `flowlink publish`
              does), put live (flowlink.publish.make_live) in a temp FLOWLINK_HOME; DagBag over the real
              /work/main/dags (every DAG file of the folder: the N workflows spread over the workflow files, plus
              Flowlink's own DAGs, counted first without workflows).
* dag-factory dag-factory 1.1.0 (installed on demand with pip --target under /tmp, never into the project venv),
              one YAML file per DAG, a loader file calling dagfactory.load_yaml_dags.
* plain       one JSON file per DAG, ONE loader file building the DAGs with airflow.sdk + EmptyOperator.

Default: N = 100, 500 and 1,000 (--quick 100 and 300), all three contenders; the last line printed is
`ratio=<Flowlink seconds / dag-factory seconds at the largest N>`.

--workflows N [N ...]: Flowlink vs the plain loader at these N (dag-factory, one file of N YAML documents, is left
out: at 10,000 it would pass Airflow's 30 s import timeout). The plain loader's one file runs without that timeout
(AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=0): past about 18,000 workflows a real Airflow would drop all of its DAGs; it
stays the baseline of the work. Flowlink runs with Airflow's defaults. Besides the DagBag of the folder, every
Flowlink DAG file is also parsed alone as the dag-processor parses it (parse_measure.py --each): the slowest file's
time is printed against the 10 s bound. The last line is `ratio=<Flowlink seconds / plain seconds at the largest N>`.
--shards K: Flowlink's workflows spread over K DAG files (`flowlink dags write --shards K`) instead of the repository's
dags/ (16).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MEASURE = Path(__file__).resolve().parent / "parse_measure.py"
DAGS = REPO / "dags"
EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"
DAGFACTORY_VERSION = "1.1.0"
DAGFACTORY_TARGET = Path(tempfile.gettempdir()) / f"flowlink-bench-dagfactory-{DAGFACTORY_VERSION}"
EMPTY = "airflow.providers.standard.operators.empty.EmptyOperator"
SCHEDULE = "* * * * *"  # the example's schedule: every minute
GROUPS = (("a", ()), ("b", ("a",)), ("c", ("b",)))
STEPS = ("extract", "transform", "load")
END = "all_loaded"  # dag-factory task ids: letters, digits, underscores


def wf_name(i: int) -> str:
    return f"bench_wf_{i:05d}"


# --------------------------------------------------------------------------------------------- dag-factory
def ensure_dagfactory() -> Path | None:
    """The --target folder holding dag-factory 1.1.0 (installed when missing), or None if it cannot be installed."""
    marker = DAGFACTORY_TARGET / f"dag_factory-{DAGFACTORY_VERSION}.dist-info"
    if not marker.is_dir():
        print(
            f"installing dag-factory=={DAGFACTORY_VERSION} into {DAGFACTORY_TARGET} (not the project venv) ...",
            flush=True,
        )
        shutil.rmtree(DAGFACTORY_TARGET, ignore_errors=True)
        # --no-deps: its requirements (apache-airflow, pyyaml, packaging, pathspec, typer) must not be re-resolved;
        # the ones the venv lacks are added to the same --target folder below.
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(DAGFACTORY_TARGET),
            f"dag-factory=={DAGFACTORY_VERSION}",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"SKIPPING dag-factory: cannot install it ({exc})")
            return None
        if proc.returncode != 0 or not marker.is_dir():
            print(f"SKIPPING dag-factory: pip install failed:\n{proc.stderr.strip()[-2000:]}")
            return None
    missing = []
    for module, dist in (("yaml", "pyyaml"), ("packaging", "packaging"), ("pathspec", "pathspec"), ("typer", "typer")):
        check = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
        if check.returncode != 0:
            missing.append(dist)
    if missing:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                str(DAGFACTORY_TARGET),
                *missing,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"SKIPPING dag-factory: cannot install its requirements {missing}:\n{proc.stderr.strip()[-2000:]}")
            return None
    return DAGFACTORY_TARGET


def write_dagfactory(root: Path, n: int) -> tuple[Path, dict]:
    import yaml

    dags, configs = root / "dags", root / "configs"
    dags.mkdir(parents=True)
    configs.mkdir()
    for i in range(1, n + 1):
        task_groups = {
            g: {"tooltip": f"touchpoint {g}", **({"dependencies": list(deps)} if deps else {})} for g, deps in GROUPS
        }
        tasks = {}
        for g, _ in GROUPS:
            prev = None
            for step in STEPS:
                tasks[f"{g}_{step}"] = {
                    "operator": EMPTY,
                    "task_group_name": g,
                    **({"dependencies": [prev]} if prev else {}),
                }
                prev = f"{g}_{step}"
        tasks[END] = {
            "operator": EMPTY,
            "trigger_rule": "none_failed",
            "dependencies": [f"{g}_load" for g, _ in GROUPS],
        }
        doc = {
            wf_name(i): {
                "description": f"benchmark workflow {i}",
                "schedule": SCHEDULE,
                "catchup": False,
                "max_active_runs": 1,
                "default_args": {"owner": "flowlink"},
                "tags": ["bench", "sql->rest"],
                "task_groups": task_groups,
                "tasks": tasks,
            }
        }
        (configs / f"{wf_name(i)}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (dags / "dagfactory_loader.py").write_text(
        "# Airflow DAG loader: every YAML file of the configs folder through dag-factory\n"
        "from dagfactory import load_yaml_dags\n\n"
        f"load_yaml_dags(globals_dict=globals(), dags_folder={str(configs)!r})\n"
    )
    env = {
        "PYTHONPATH": str(DAGFACTORY_TARGET),
        "DO_NOT_TRACK": "True",
        "SCARF_ANALYTICS": "false",
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
    }
    return dags, env


# --------------------------------------------------------------------------------------------------- plain
PLAIN_LOADER = '''\
"""Airflow DAG loader: every JSON file of the configs folder as a DAG, with airflow.sdk and no factory."""
import json
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup

for path in sorted(Path(CONFIGS).glob("*.json")):
    cfg = json.loads(path.read_text())
    with DAG(dag_id=cfg["dag_id"], description=cfg["description"], schedule=cfg["schedule"], catchup=False,
             max_active_runs=1, default_args={"owner": "flowlink"}, tags=cfg["tags"]) as dag:
        groups = {}
        for g in cfg["groups"]:
            with TaskGroup(group_id=g["name"], tooltip=g["description"]) as group:
                EmptyOperator(task_id="extract") >> EmptyOperator(task_id="transform") >> EmptyOperator(task_id="load")
            groups[g["name"]] = group
        for g in cfg["groups"]:
            for dep in g["depends_on"]:
                groups[dep] >> groups[g["name"]]
        list(groups.values()) >> EmptyOperator(task_id="all-loaded", trigger_rule="none_failed")
    globals()[cfg["dag_id"]] = dag
'''


def write_plain(root: Path, n: int) -> tuple[Path, dict]:
    dags, configs = root / "dags", root / "configs"
    dags.mkdir(parents=True)
    configs.mkdir()
    for i in range(1, n + 1):
        cfg = {
            "dag_id": wf_name(i),
            "description": f"benchmark workflow {i}",
            "schedule": SCHEDULE,
            "tags": ["bench", "sql->rest"],
            "groups": [{"name": g, "description": f"touchpoint {g}", "depends_on": list(deps)} for g, deps in GROUPS],
        }
        (configs / f"{wf_name(i)}.json").write_text(json.dumps(cfg))
    (dags / "plain_loader.py").write_text(f"CONFIGS = {str(configs)!r}\n" + PLAIN_LOADER)
    return dags, {}


# ------------------------------------------------------------------------------------------------ flowlink
def publish_flowlink(work: Path, n: int) -> list:
    """Publish n workflows of 3 touchpoints (c after b after a); returns their artifacts. The spec is validated and
    its stylesheets compiled once (they are the same for every workflow); each workflow is then published under its
    own name and description by publish_content, as `flowlink publish` does after compiling."""
    import yaml

    os.environ["FLOWLINK_HOME"] = str(work / "publish_home")
    from flowlink.publish import compile_content, publish_content

    base = yaml.safe_load(EXAMPLE.read_text())
    customers, orders = base["touchpoints"][0], base["touchpoints"][1]
    spec = copy.deepcopy(base)
    spec["name"] = wf_name(1)
    a = copy.deepcopy(customers) | {"name": "a"}
    b = copy.deepcopy(orders) | {"name": "b", "depends_on": ["a"]}
    c = copy.deepcopy(orders) | {"name": "c", "depends_on": ["b"], "description": "orders again, after b"}
    spec["touchpoints"] = [a, b, c]
    specs = work / "specs"
    specs.mkdir()
    path = specs / f"{wf_name(1)}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    compiled = compile_content(path)
    artifacts = []
    for i in range(1, n + 1):
        content = copy.deepcopy(compiled)
        content["spec"]["name"] = wf_name(i)
        content["spec"]["description"] = f"benchmark workflow {i}, derived from erp_to_shop"
        artifacts.append(publish_content(content).artifact)
    return artifacts


def live_flowlink(work: Path, artifacts: list, n: int, dags: Path = DAGS) -> tuple[Path, dict]:
    from flowlink.publish import make_live

    home = work / f"flowlink_{n}"
    os.environ["FLOWLINK_HOME"] = str(home)
    for art in artifacts[:n]:
        make_live(art)
    live = sorted((home / "live").glob("*.json"))
    if len(live) != n:
        raise SystemExit(f"FAILED: {len(live)} live files in {home / 'live'}, expected {n}")
    return dags, {"FLOWLINK_HOME": str(home), "PYTHONPATH": str(REPO)}


def shard_files(work: Path, shards: int) -> Path:
    """A DAGs folder with the workflows spread over ``shards`` files, as `flowlink dags write --shards` writes it."""
    from flowlink.dag_files import write

    folder = work / f"dags_{shards}_shards"
    write(folder, shards)
    return folder


# ----------------------------------------------------------------------------------------------- measuring
def measure(
    dags: Path,
    expected: int,
    extra_env: dict,
    work: Path,
    label: str,
    profile: Path | None = None,
    each: bool = False,
) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FLOWLINK_", "PYTHONPATH"))}
    airflow_home = Path(tempfile.mkdtemp(prefix="airflow-home-", dir=work))
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(airflow_home / "plugins"),  # Flowlink: its entry point
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            **extra_env,
        }
    )
    cmd = [sys.executable, str(MEASURE), str(dags), str(expected)]
    cmd += ["--profile", str(profile)] if profile else ["--each"] if each else []
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    prefix = "PARSE_EACH " if each else "PARSE_RESULT "
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(prefix)), None)
    if proc.returncode != 0 or line is None:
        sys.stdout.write(proc.stdout[-3000:])
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"FAILED: {label}: the DagBag measurement failed (exit {proc.returncode}), see above")
    return json.loads(line.removeprefix(prefix))


def print_profile(prof: Path, top: int = 10) -> None:
    roots = tuple(str(p) + os.sep for p in (REPO / "flowlink", REPO / "dag_factory", REPO / "plugins", DAGS))
    stats = pstats.Stats(str(prof))
    rows = [
        (ct, tt, nc, f, ln, fn)
        for (f, ln, fn), (cc, nc, tt, ct, _callers) in stats.stats.items()
        if f.startswith(roots)
    ]
    total = max(ct for (ct, *_rest) in [(v[3],) for v in stats.stats.values()])
    rows.sort(reverse=True)
    print(
        f"\ncProfile of the Flowlink DagBag (top {top} cumulative, flowlink/dag_factory/plugins/dags code; "
        f"profiled total {total:.2f} s):"
    )
    print(f"{'cum s':>7} {'own s':>7} {'calls':>7}  function")
    for ct, tt, nc, f, ln, fn in rows[:top]:
        print(f"{ct:7.3f} {tt:7.3f} {nc:7d}  {Path(f).relative_to(REPO)}:{ln}({fn})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 and 300 workflows instead of 100, 500 and 1,000")
    ap.add_argument(
        "--workflows",
        type=int,
        nargs="+",
        metavar="N",
        help="Flowlink vs the plain loader at these numbers of workflows, with each Flowlink DAG file's own time",
    )
    ap.add_argument(
        "--repeat", type=int, default=None, help="fresh processes per point, median kept (default 3, --quick 1)"
    )
    ap.add_argument("--profile", action="store_true", help="also cProfile the Flowlink DagBag at the largest N")
    ap.add_argument("--keep", action="store_true", help="keep the temp work folder")
    ap.add_argument(
        "--shards",
        type=int,
        help="Flowlink's workflows over this many DAG files (flowlink dags write --shards K) instead of the repository's",
    )
    args = ap.parse_args()
    scale = bool(args.workflows)
    sizes = sorted(set(args.workflows)) if scale else [100, 300] if args.quick else [100, 500, 1000]
    repeat = args.repeat or (1 if args.quick else 3)

    work = Path(tempfile.mkdtemp(prefix="flowlink-bench-parse-"))
    saved_env = {k: os.environ.get(k) for k in ("FLOWLINK_HOME",)}
    try:
        target = None if scale else ensure_dagfactory()
        print(f"publishing {max(sizes)} workflows (3 touchpoints, 10 tasks each) in {work} ...", flush=True)
        artifacts = publish_flowlink(work, max(sizes))

        results: dict[tuple[str, int], dict] = {}
        # One discarded run (at most 1,000 workflows): the first process pays cold caches.
        warm = write_plain(work / "warm_up", min(*sizes, 1000))
        measure(warm[0], -1, warm[1], work, "warm-up")
        # Flowlink's own DAGs (deployment tracking, retry, alerts, maintenance) load beside the workflows
        flowlink_dags = shard_files(work, args.shards) if args.shards else DAGS
        dags_folder, env0 = live_flowlink(work, artifacts, 0, flowlink_dags)
        own = measure(dags_folder, -1, env0, work, "flowlink without workflows")
        contenders = ["plain", *(["dag-factory"] if target else []), "flowlink"]
        no_timeout = {"AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "0"} if scale else {}  # the plain loader's one file
        for n in sizes:
            setups = {
                "plain": lambda n=n: (write_plain(work / f"plain_{n}", n)[0], no_timeout, n),
                "dag-factory": lambda n=n: (*write_dagfactory(work / f"dagfactory_{n}", n), n),
                "flowlink": lambda n=n: (*live_flowlink(work, artifacts, n, flowlink_dags), n + own["dags"]),
            }
            prepared = {name: setups[name]() for name in contenders}
            all_runs: dict[str, list[dict]] = {name: [] for name in contenders}
            for _ in range(repeat):  # interleaved, so that a change in the machine's load touches every contender
                for name in contenders:
                    dags, extra_env, expected = prepared[name]
                    all_runs[name].append(measure(dags, expected, extra_env, work, f"{name} N={n}"))
            for name in contenders:
                dags, extra_env, expected = prepared[name]
                runs = all_runs[name]
                want = {"10": n}
                for tasks, count in own["task_counts"].items() if name == "flowlink" else ():
                    want[tasks] = want.get(tasks, 0) + count
                if runs[0]["task_counts"] != want:
                    raise SystemExit(
                        f"FAILED: {name} N={n}: DAG sizes (tasks: DAGs) {runs[0]['task_counts']}, expected {want}"
                    )
                res = {
                    "seconds": statistics.median(r["seconds"] for r in runs),
                    "peak_mb": statistics.median(r["peak_mb"] for r in runs),
                    "before_mb": statistics.median(r["rss_before_mb"] for r in runs),
                    "dags": runs[0]["dags"],
                    "files": len(runs[0]["files"]),
                    "slowest": max(runs, key=lambda r: r["files"][0][1])["files"][0],  # as the DagBag timed it
                    "extra_env": extra_env,
                    "folder": dags,
                    "expected": expected,
                }
                if scale and name == "flowlink":  # each file alone, as the dag-processor parses it
                    res["alone"] = measure(dags, expected, extra_env, work, f"{name} N={n}, each file", each=True)
                results[name, n] = res
                print(
                    f"  {name:<12} N={n:<6} {res['seconds']:7.3f} s  {res['peak_mb']:7.1f} MB  "
                    f"({res['dags']} DAGs from {res['files']} files, no import errors; runs: "
                    + ", ".join(f"{r['seconds']:.3f}" for r in runs)
                    + f"; slowest file {res['slowest'][0]} {res['slowest'][1]:.3f} s"
                    + (
                        f", alone as the dag-processor parses it: {res['alone']['files'][0][0]} "
                        f"{res['alone']['files'][0][1]:.3f} s"
                        if "alone" in res
                        else ""
                    )
                    + ")",
                    flush=True,
                )

        if args.profile:
            n = max(sizes)
            prof = work / "flowlink.prof"
            res = results["flowlink", n]
            live_flowlink(work, artifacts, n, flowlink_dags) if not (work / f"flowlink_{n}").exists() else None
            measure(res["folder"], res["expected"], res["extra_env"], work, "flowlink profile", profile=prof)
            print_profile(prof)

        import airflow

        from flowlink.dag_files import SHARDS

        print(
            f"\nDagBag parse benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}; "
            f"{platform.node()}, {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"Airflow {airflow.__version__}; median of {repeat} fresh process(es) per point; 10 tasks per DAG; "
            f"Flowlink's workflows over {args.shards or SHARDS} DAG files"
        )
        if scale:
            print(
                "slowest file: the slowest DAG file's time in the DagBag of the folder (Airflow's FileLoadStat); "
                "alone: parsed by itself in a forked child through the dag-processor's _parse_file (import + serialize)"
            )
        print(
            f"{'contender':<12} {'workflows':>9} {'seconds':>8} {'peak MB':>8} {'x plain time':>12} {'x plain mem':>11}"
            + (f" {'files':>5} {'slowest file s':>14} {'alone s':>8}" if scale else "")
        )
        for n in sizes:
            plain = results["plain", n]
            for name in contenders:
                r = results[name, n]
                print(
                    f"{name:<12} {n:>9} {r['seconds']:>8.3f} {r['peak_mb']:>8.1f} "
                    f"{r['seconds'] / plain['seconds']:>12.2f} {r['peak_mb'] / plain['peak_mb']:>11.2f}"
                    + (f" {r['files']:>5} {r['slowest'][1]:>14.3f}" if scale else "")
                    + (f" {r['alone']['files'][0][1]:>8.3f}" if "alone" in r else f" {'':>8}" if scale else "")
                )
        if scale:
            for n in sizes:
                fl, pl = results["flowlink", n], results["plain", n]
                slowest = fl["alone"]["files"][0][1]
                time_x, mem = fl["seconds"] / pl["seconds"], 100 * (fl["peak_mb"] / pl["peak_mb"] - 1)
                met = slowest <= 10 and time_x <= 1.1 and mem <= 10
                print(
                    f"targets at N={n}: all {n} workflows loaded; slowest Flowlink file {slowest:.2f} s alone, "
                    f"{fl['slowest'][1]:.2f} s in the DagBag (target <= 10 s; the plain loader's one file "
                    f"{pl['slowest'][1]:.2f} s); time {time_x:.2f}x plain (target <= 1.10x); peak memory {mem:+.1f}% "
                    f"(target <= +10%): {'met' if met else 'NOT met'}"
                )
            n = max(sizes)
            print(f"ratio={results['flowlink', n]['seconds'] / results['plain', n]['seconds']:.2f}")
            return 0
        n = max(sizes)
        fl, pl = results["flowlink", n], results["plain", n]
        print(
            f"targets at N={n}: Flowlink time {fl['seconds'] / pl['seconds']:.2f}x plain (target <= 1.20x), "
            f"peak memory {100 * (fl['peak_mb'] / pl['peak_mb'] - 1):+.1f}% (target <= +10%)"
        )
        if target:
            print(f"ratio={fl['seconds'] / results['dag-factory', n]['seconds']:.2f}")
        else:
            print("dag-factory column skipped: it could not be installed (see above)")
            print("ratio=nan")
        return 0
    finally:
        for k, v in saved_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        if args.keep:
            print(f"(work folder kept: {work})", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
