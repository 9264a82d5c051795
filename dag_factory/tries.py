"""The Airflow DAG that fetches the Try page's samples: one run per try, conf {"try_id": N, "queue": ENV}.

Its task runs on the queue of the environment the workflow runs in (flowlink_airflow.policy routes it by the
run's conf), so it reaches a source that only that environment's worker can reach. It reads at most 100 records
and writes nothing but the try's result, which the page takes from the store (flowlink.tries); the task log says
what was read and why a try failed, never a record's values.
"""

import datetime as dt

from airflow.sdk import DAG, Param, get_current_context, task

with DAG(
    dag_id="flowlink_try",
    description="Fetches sample records for the Flowlink Try page, on the workflow's environment queue",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=16,
    default_args={"owner": "flowlink", "retries": 0},  # the page waits: a failure is shown at once, not retried
    tags=["flowlink"],
    params={
        "try_id": Param(None, type=["null", "integer"], description="the try to fetch samples for"),
        "queue": Param(None, type=["null", "string"], description="the environment whose worker fetches them"),
    },
    doc_md=__doc__,
) as dag:

    @task(task_id="fetch")
    def fetch() -> None:
        from flowlink import tries
        from flowlink.errors import FlowlinkError, plural
        from flowlink.states import TrialStatus
        from flowlink.store import Store
        from flowlink_airflow.hooks.application import ApplicationHook

        try_id = get_current_context()["params"]["try_id"]
        if try_id is None:
            raise FlowlinkError(
                'flowlink_try fetches the samples of a try: the Try page starts it with conf {"try_id": N}'
            )
        store = Store.open()
        try:
            result = tries.run(  # a source that cannot be reached is said at once: the page waits
                store,
                int(try_id),
                lambda app: ApplicationHook(app.connection, app.type).get_source(unreachable_after=0),
            )
        finally:
            store.dispose()
        tries.log.info(
            "try %s of %s.%s: %s from %s; %d ready, %d failed, %d skipped",
            try_id,
            result.workflow,
            result.touchpoint,
            plural(len(result.records), "record"),
            result.source,
            result.count(TrialStatus.READY),
            result.count(TrialStatus.FAILED),
            result.count(TrialStatus.SKIPPED),
        )

    fetch()
