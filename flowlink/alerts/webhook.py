"""Posting an alert as JSON to the URL of an Airflow HTTP connection."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from flowlink import airflow_adapter
from flowlink.errors import FlowlinkError, plural


class WebhookError(FlowlinkError):
    """The webhook did not take the alert (the message names the status, never the connection's secrets)."""


def post(
    conn_id: str, payload: dict[str, Any], *, timeout: float | None = None, tries: int = 3, backoff: float = 0.5
) -> int:
    """POST ``payload`` as JSON to the connection's URL: host is the URL (or host + port + schema http/https);
    login/password = basic auth, extra ``token`` = bearer token, extra ``headers`` = more headers, extra
    ``timeout`` = seconds (default 10). Connection errors and 5xx answers are tried ``tries`` times in all
    (backoff 0.5 s, 1 s, ...); 4xx is not retried. Returns the HTTP status; raises WebhookError."""
    import requests

    from flowlink.connectors.rest import rest_settings_from_connection

    conn = airflow_adapter.task_connection(conn_id)
    if conn is None:
        raise WebhookError(f"Airflow has no connection {conn_id!r}")
    s = rest_settings_from_connection(**dataclasses.asdict(conn))
    url, tries = s["base_url"], max(1, tries)
    options = {
        "auth": s["auth"],
        "headers": {**s["headers"], "User-Agent": "Flowlink alerts"},
        "timeout": timeout or float(s.get("timeout") or 10),
    }
    for attempt in range(1, tries + 1):
        last = attempt == tries
        try:
            resp = requests.post(url, json=payload, **options)
        except (requests.ConnectionError, requests.Timeout) as exc:
            if last:
                raise WebhookError(
                    f"POST {url} failed after {plural(tries, 'try', 'tries')}: {type(exc).__name__}"
                ) from None
        else:
            if resp.status_code < 400:
                return resp.status_code
            if resp.status_code < 500 or last:
                raise WebhookError(
                    f"POST {url} answered {resp.status_code} {resp.reason}"
                    + (f" after {plural(tries, 'try', 'tries')}" if resp.status_code >= 500 else "")
                )
        time.sleep(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable: the last try returns or raises")
