"""FlowlinkWebhookNotifier: an alert as JSON over HTTP POST to the URL of an Airflow HTTP connection."""

from __future__ import annotations

import time

from airflow.sdk import BaseNotifier

from flowlink.errors import plural


class WebhookError(Exception):
    """The webhook did not take the alert (the message names the status, never the connection's secrets)."""


class FlowlinkWebhookNotifier(BaseNotifier):
    """POSTs ``payload`` as JSON to the connection's URL: host is the URL (or host + port + schema http/https);
    login/password = basic auth, extra ``token`` = bearer token, extra ``headers`` = more headers, extra
    ``timeout`` = seconds (default 10). Connection errors and 5xx answers are tried ``tries`` times in all
    (backoff 0.5 s, 1 s, ...); 4xx is not retried. ``notify`` returns the HTTP status.

    Usable as a DAG or task callback (``on_failure_callback=FlowlinkWebhookNotifier(http_conn_id="ops_hook")``:
    without a payload it posts the DAG, run, task and reason) and called directly by flowlink.alerts. Nothing is
    rendered as a template."""

    template_fields = ()

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing here is a template (and a DAG callback under dag.test() gets a DAG without a template env)."""

    def __init__(self, *, http_conn_id: str, payload: dict | None = None, timeout: float | None = None,
                 tries: int = 3, backoff: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.http_conn_id = http_conn_id
        self.payload = payload
        self.timeout = timeout
        self.tries = max(1, tries)
        self.backoff = backoff

    def _target(self) -> tuple[str, dict]:
        from airflow.sdk import BaseHook

        from flowlink.connectors.rest import rest_settings_from_connection

        conn = BaseHook.get_connection(self.http_conn_id)
        s = rest_settings_from_connection(conn.conn_type, conn.host, conn.login, conn.password, conn.port, conn.schema,
                                          conn.extra_dejson)
        return s["base_url"], {"auth": s["auth"], "headers": {**s["headers"], "User-Agent": "Flowlink alerts"},
                               "timeout": self.timeout or float(s.get("timeout") or 10)}

    def notify(self, context) -> int:
        import requests

        url, options = self._target()
        payload = self.payload if self.payload is not None else _from_context(context or {})
        for attempt in range(1, self.tries + 1):
            last = attempt == self.tries
            try:
                resp = requests.post(url, json=payload, **options)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise WebhookError(f"POST {url} failed after {plural(self.tries, 'try', 'tries')}: {type(exc).__name__}") from None
            else:
                if resp.status_code < 400:
                    return resp.status_code
                if resp.status_code < 500 or last:
                    raise WebhookError(f"POST {url} answered {resp.status_code} {resp.reason}"
                                       + (f" after {plural(self.tries, 'try', 'tries')}" if resp.status_code >= 500 else ""))
            time.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")


def _from_context(context) -> dict:
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    return {"event": "task_failed" if ti is not None else "dag_failed", "dag_id": getattr(dag, "dag_id", None),
            "run_id": context.get("run_id"), "task_id": getattr(ti, "task_id", None),
            "reason": context.get("reason")}
