"""Measure one DagBag build in THIS (fresh) process; used by bench/parse.py, one subprocess per measurement.

    python bench/parse_measure.py DAGS_FOLDER EXPECTED_DAGS [--profile OUT.prof]

The environment (AIRFLOW_HOME, AIRFLOW__CORE__DAGS_FOLDER, ...) is set by the caller before Airflow is imported.
EXPECTED_DAGS -1: any number. Prints one JSON line: {"seconds", "peak_mb", "rss_before_mb", "dags", "import_errors"}; exits 1 on a mismatch.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> int:
    folder, expected = sys.argv[1], int(sys.argv[2])
    profile_out = sys.argv[sys.argv.index("--profile") + 1] if "--profile" in sys.argv else None

    import airflow  # noqa: F401  - configuration, sys.path (dags + plugins folders), logging
    from airflow.dag_processing.dagbag import DagBag

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {
        "seconds": seconds,
        "peak_mb": peak,
        "rss_before_mb": before,
        "dags": len(bag.dags),
        "task_counts": {
            str(k): v
            for k, v in sorted(__import__("collections").Counter(len(d.tasks) for d in bag.dags.values()).items())
        },
        "import_errors": {str(k): str(v)[:2000] for k, v in bag.import_errors.items()},
    }
    print("PARSE_RESULT " + json.dumps(result), flush=True)
    if (expected >= 0 and result["dags"] != expected) or result["import_errors"]:
        print(
            f"FAILED: expected {expected} DAGs and no import errors, got {result['dags']} DAGs, "
            f"import errors: {result['import_errors']}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
