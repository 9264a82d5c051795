"""DeploymentTrigger: waits in the triggerer until a deployment's agent has reported every step, or wait till passes.

It reads the deployment from the store each poll (wait till included, so a changed deadline counts) and
ends itself at the deadline: exact, and independent of the scheduler's defer-timeout checks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from flowlink import deployments
from flowlink.states import DeploymentStatus
from flowlink.store import Store
from flowlink.store.db import utcnow


class DeploymentTrigger(BaseTrigger):
    def __init__(self, deployment_id: int, poll_interval: float = 1.0):
        super().__init__()
        self.deployment_id = int(deployment_id)
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "flowlink_airflow.triggers.deployment.DeploymentTrigger", {
            "deployment_id": self.deployment_id,
            "poll_interval": self.poll_interval,
        }

    async def run(self):
        store = None
        try:
            store = await sync_to_async(Store.open)()
            while True:
                d = await sync_to_async(deployments.progress)(store, self.deployment_id)
                if d["status"] != DeploymentStatus.PENDING:
                    yield TriggerEvent({"status": d["status"], "message": d["message"]})
                    return
                if not d["remaining"]:
                    yield TriggerEvent({"status": "complete"})
                    return
                left = (d["wait_till"] - utcnow()).total_seconds()
                if left <= 0:
                    yield TriggerEvent({"status": "timeout", "remaining": d["remaining"]})
                    return
                await asyncio.sleep(min(self.poll_interval, left))
        except Exception as exc:  # errors become events: the sensor reports them
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            if store is not None:
                store.dispose()
