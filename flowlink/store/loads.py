"""What the earlier tries of a run's load step recorded: a later try (after a killed or cleared task) resumes from it."""

from __future__ import annotations

from sqlalchemy import select

from flowlink.states import RecordStatus, Step
from flowlink.store.db import Store
from flowlink.store.tables import bucket, steps


def earlier_tries(store: Store, workflow: str, run_id: str, touchpoint: str) -> dict[str, str] | None:
    """None when the run's load step of the touchpoint has not been started before. Else what its earlier tries
    recorded in the bucket in this run: source id -> success | failed."""
    with store.engine.connect() as conn:
        started = conn.execute(
            select(steps.c.id).where(
                steps.c.workflow == workflow,
                steps.c.run_id == run_id,
                steps.c.touchpoint == touchpoint,
                steps.c.step == Step.LOAD,
            )
        ).first()
        if started is None:
            return None
        q = select(bucket.c.source_id, bucket.c.status).where(
            bucket.c.workflow == workflow,
            bucket.c.touchpoint == touchpoint,
            bucket.c.last_run == run_id,
            bucket.c.status.in_((RecordStatus.SUCCESS, RecordStatus.FAILED)),
        )
        return {source_id: status for source_id, status in conn.execute(q).all()}
