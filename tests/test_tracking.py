"""The deployment trigger and sensor on their own: serialize round trip, run() driven to each ending."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import update

from flowlink import deployments, publish
from flowlink.states import DEPLOYMENT_STEPS, DeploymentAction
from flowlink.store import Store
from flowlink.store.tables import deployments as table
from flowlink_airflow.triggers.deployment import DeploymentTrigger
from tests.airflow_helpers import REPO


@pytest.fixture
def pending(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path / "flowlink"))
    store = Store.open()
    deployments.add_environment(store, "cloud", "cloud")
    publish.publish(REPO / "examples" / "erp_to_shop.yaml")
    d = deployments.deploy(store, "erp_to_shop")
    yield store, d
    store.dispose()


def first_event(trigger: DeploymentTrigger) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first(), timeout=20))


def test_serialize_round_trips():
    classpath, kwargs = DeploymentTrigger(7, poll_interval=0.5).serialize()
    assert classpath == "flowlink_airflow.triggers.deployment.DeploymentTrigger"
    assert kwargs == {"deployment_id": 7, "poll_interval": 0.5}
    assert DeploymentTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_ends_successful_when_the_agent_reports_the_last_step(pending):
    store, d = pending
    for step in DEPLOYMENT_STEPS[DeploymentAction.DEPLOY]:
        deployments.report_step(store, "cloud", d["id"], step, "done")
    assert first_event(DeploymentTrigger(d["id"], 0.1)) == {
        "status": "successful",
        "message": "every step reported by the agent",
    }


def test_ends_itself_at_wait_till_even_when_it_moves_closer(pending):
    store, d = pending
    with store.engine.begin() as conn:
        conn.execute(
            update(table)
            .where(table.c.id == d["id"])
            .values(wait_till=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
        )
    event = first_event(DeploymentTrigger(d["id"], 5.0))  # a long poll: the deadline still ends it on time
    assert event == {"status": "timeout", "remaining": list(DEPLOYMENT_STEPS[DeploymentAction.DEPLOY])}


def test_reports_a_failed_step(pending):
    store, d = pending
    deployments.report_step(store, "cloud", d["id"], "downloading workflow data", "failed", "checksum mismatch")
    event = first_event(DeploymentTrigger(d["id"], 0.1))
    assert event["status"] == "unsuccessful" and "checksum mismatch" in event["message"]


def test_an_unknown_deployment_is_an_error_event_not_an_exception(pending):
    event = first_event(DeploymentTrigger(999, 0.1))
    assert event["status"] == "error" and "no deployment 999" in event["message"]
