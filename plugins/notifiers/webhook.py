"""FlowlinkWebhookNotifier: an alert as JSON over HTTP POST to the URL of an Airflow HTTP connection."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier

from flowlink.alerts.webhook import post


class FlowlinkWebhookNotifier(BaseNotifier):
    """POSTs ``payload`` as JSON to the connection's URL (flowlink.alerts.webhook.post: host is the URL, login/password
    basic auth, extra ``token`` a bearer token, extra ``headers`` more headers; 5xx and connection errors are tried
    ``tries`` times in all, 4xx not retried).

    Usable as a DAG or task callback (``on_failure_callback=FlowlinkWebhookNotifier(http_conn_id="ops_hook")``:
    without a payload it posts the DAG, run, task and reason). Nothing is rendered as a template."""

    template_fields = ()

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing here is a template (and a DAG callback under dag.test() gets a DAG without a template env)."""

    def __init__(
        self,
        *,
        http_conn_id: str,
        payload: dict[str, Any] | None = None,
        timeout: float | None = None,
        tries: int = 3,
        backoff: float = 0.5,
    ):
        super().__init__()
        self.http_conn_id = http_conn_id
        self.payload = payload
        self.timeout = timeout
        self.tries = tries
        self.backoff = backoff

    def notify(self, context: Any) -> None:
        payload = self.payload if self.payload is not None else _from_context(context or {})
        post(self.http_conn_id, payload, timeout=self.timeout, tries=self.tries, backoff=self.backoff)


def _from_context(context: Any) -> dict[str, Any]:
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    return {
        "event": "task_failed" if ti is not None else "dag_failed",
        "dag_id": getattr(dag, "dag_id", None),
        "run_id": context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
        "reason": context.get("reason"),
    }
