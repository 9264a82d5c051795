"""Measure one DagBag build in THIS (fresh) process; used by bench/parse.py, one subprocess per measurement.

    python bench/parse_measure.py DAGS_FOLDER EXPECTED_DAGS [--profile OUT.prof]
    python bench/parse_measure.py DAGS_FOLDER EXPECTED_DAGS --each

The environment (AIRFLOW_HOME, AIRFLOW__CORE__DAGS_FOLDER, ...) is set by the caller before Airflow is imported.
EXPECTED_DAGS -1: any number. Exits 1 on a mismatch or an import error.

Default: one DagBag of the whole folder; prints one JSON line PARSE_RESULT {"seconds", "cpu_seconds",
"peak_mb", "rss_before_mb", "dags", "task_counts", "import_errors", "files": [[file, seconds, dags], ...]} (per
file as the DagBag timed it, slowest first).

--each: every file parsed as Airflow's dag-processor parses it: in a child forked from a process that has imported
Airflow and frozen its heap (gc.freeze, as the dag-processor's manager before it forks its parsing processes),
through the processor's own _parse_file (import the file, then serialize every DAG), one file at a time; prints
PARSE_EACH {"files": [[file, seconds, dags, import_errors], ...]} (slowest first) with each child's own time,
start of _parse_file to its result.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path


def peak_mb() -> float:
    """This process's peak resident memory in MB: VmHWM, which starts afresh at exec (getrusage's ru_maxrss keeps the
    parent's peak from before the exec: bench/parse.py holds every published workflow)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def whole_folder(folder: str, expected: int, profile_out: str | None) -> int:
    import airflow  # noqa: F401  - configuration, sys.path (dags + plugins folders), logging
    from airflow.dag_processing.dagbag import DagBag

    usage = resource.getrusage(resource.RUSAGE_SELF)
    before, cpu_before = peak_mb(), usage.ru_utime + usage.ru_stime
    if profile_out:
        import cProfile

        prof = cProfile.Profile()
        started = time.perf_counter()
        prof.enable()
        bag = DagBag(dag_folder=folder)
        prof.disable()
        seconds = time.perf_counter() - started
        prof.dump_stats(profile_out)
    else:
        started = time.perf_counter()
        bag = DagBag(dag_folder=folder)
        seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak, cpu = peak_mb(), usage.ru_utime + usage.ru_stime - cpu_before
    files = sorted(([s.file, s.duration.total_seconds(), s.dag_num] for s in bag.dagbag_stats), key=lambda f: -f[1])
    result = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mb": peak,
        "rss_before_mb": before,
        "dags": len(bag.dags),
        "task_counts": {
            str(k): v for k, v in sorted(collections.Counter(len(d.tasks) for d in bag.dags.values()).items())
        },
        "import_errors": {str(k): str(v)[:2000] for k, v in bag.import_errors.items()},
        "files": files,
    }
    print("PARSE_RESULT " + json.dumps(result), flush=True)
    return check(expected, result["dags"], result["import_errors"])


def each_file(folder: str, expected: int) -> int:
    import airflow  # noqa: F401
    import structlog
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file

    log = structlog.get_logger(logger_name="bench")
    gc.freeze()  # as the dag-processor's manager does before its loop: the children's collections skip its heap
    files = []
    for path in sorted(Path(folder).glob("*.py")):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: what the dag-processor's parsing process does with one file
            os.close(read)
            code = 1
            try:
                request = DagFileParseRequest(
                    file=str(path), bundle_path=Path(folder), bundle_name="dags-folder", callback_requests=[]
                )
                started = time.perf_counter()
                result = _parse_file(request, log)
                seconds = time.perf_counter() - started
                errors = {str(k): str(v)[:2000] for k, v in (result.import_errors or {}).items()} if result else {}
                dags = len(result.serialized_dags) if result else 0
                os.write(write, json.dumps([path.name, seconds, dags, errors]).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not data:
            print(f"FAILED: parsing {path} in a child process ended with status {status}", file=sys.stderr)
            return 1
        files.append(json.loads(data))
    files.sort(key=lambda f: -f[1])
    print("PARSE_EACH " + json.dumps({"files": files}), flush=True)
    errors = {k: v for f in files for k, v in f[3].items()}
    return check(expected, sum(f[2] for f in files), errors)


def check(expected: int, dags: int, import_errors: dict) -> int:
    if (expected >= 0 and dags != expected) or import_errors:
        print(
            f"FAILED: expected {expected} DAGs and no import errors, got {dags} DAGs, import errors: {import_errors}",
            file=sys.stderr,
        )
        return 1
    return 0


def main() -> int:
    folder, expected = sys.argv[1], int(sys.argv[2])
    if "--each" in sys.argv:
        return each_file(folder, expected)
    return whole_folder(
        folder, expected, sys.argv[sys.argv.index("--profile") + 1] if "--profile" in sys.argv else None
    )


if __name__ == "__main__":
    sys.exit(main())
