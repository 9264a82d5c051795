"""DeploymentSensor: tracks one deployment from Pending to Successful, or Unsuccessful after wait till."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from flowlink.states import DeploymentStatus

if TYPE_CHECKING:
    from flowlink.deployments import Progress
    from flowlink.store import Store

# The store (SQLAlchemy) is imported where it is used: a DAG file importing this sensor parses fast.


class DeploymentSensor(BaseSensorOperator):
    """Pokes once, then defers to DeploymentTrigger; ends the deployment Successful or Unsuccessful."""

    template_fields = ("deployment_id",)
    ui_color = "#fff8e1"

    def __init__(self, *, deployment_id: int | str, poll_interval: float = 1.0, **kwargs):
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        self.poll_interval = poll_interval

    def _id(self) -> int:
        try:
            return int(self.deployment_id)
        except (TypeError, ValueError):
            raise AirflowFailException(
                f'this run needs conf {{"deployment_id": N}}, got {self.deployment_id!r}'
            ) from None

    def poke(self, context) -> bool:
        from flowlink import deployments
        from flowlink.store import Store

        store = Store.open()
        try:
            return self._settle(store, deployments.progress(store, self._id()))
        finally:
            store.dispose()

    def _settle(self, store: Store, d: Progress) -> bool:
        """True once the deployment has ended (and is Successful); raises if it ended Unsuccessful."""
        from flowlink import deployments
        from flowlink.store.db import utcnow

        if d["status"] == DeploymentStatus.PENDING and not d["remaining"]:
            deployments.complete(store, d["id"])
            d = deployments.progress(store, d["id"])
        elif d["status"] == DeploymentStatus.PENDING and utcnow() >= d["wait_till"]:
            deployments.expire_if_due(store, d["id"])
            d = deployments.progress(store, d["id"])
        if d["status"] == DeploymentStatus.SUCCESSFUL:
            self.log.info(
                "deployment %s: %s of %s v%s to %s is Successful",
                d["id"],
                d["action"],
                d["workflow"],
                d["version"],
                d["environment"],
            )
            return True
        if d["status"] == DeploymentStatus.UNSUCCESSFUL:
            from flowlink import alerts

            alerts.deployment_unsuccessful(store, d)  # once per deployment and channel; never raises
            raise AirflowFailException(
                f"deployment {d['id']} of {d['workflow']} v{d['version']} is Unsuccessful: {d['message']}"
            )
        self.log.info(
            "deployment %s pending: waiting for %s until %s", d["id"], ", ".join(d["remaining"]), d["wait_till"]
        )
        return False

    def execute(self, context):
        if self.poke(context):
            return
        from flowlink import deployments
        from flowlink.store import Store
        from flowlink.store.db import utcnow
        from flowlink_airflow.triggers.deployment import DeploymentTrigger

        store = Store.open()
        try:
            wait_till = deployments.get(store, self._id())["wait_till"]
        finally:
            store.dispose()
        # The trigger ends itself at wait till; Airflow's defer timeout is only the backstop.
        backstop = max(wait_till - utcnow(), dt.timedelta(0)) + dt.timedelta(minutes=1)
        self.defer(
            trigger=DeploymentTrigger(self._id(), self.poll_interval), method_name="execute_complete", timeout=backstop
        )

    def execute_complete(self, context, event: dict):
        if event.get("status") == "error":
            raise AirflowException(f"tracking deployment {self.deployment_id} failed: {event.get('message')}")
        from flowlink import deployments
        from flowlink.store import Store

        store = Store.open()
        try:
            self._settle(store, deployments.progress(store, self._id()))
        finally:
            store.dispose()
