"""Alert messages: subject, text and JSON payload, the links to where to look, and scrubbing secrets."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from flowlink import airflow_adapter
from flowlink.errors import is_sensitive, redact, secret_forms
from flowlink.states import AlertEvent
from flowlink.store.db import utcnow

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")


@dataclass(frozen=True)
class Alert:
    """One alert: a subject and a text for people, a JSON payload for machines (both name where to look)."""

    event: AlertEvent
    subject: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)

    def html(self) -> str:
        body = html.escape(self.text)
        for url in self.payload.get("links", {}).values():
            body = body.replace(html.escape(url), f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        return f'<pre style="font-family: monospace; white-space: pre-wrap">{body}</pre>'


def airflow_base_url() -> str:
    """Airflow's [api] base_url (the address users reach the UI at), read when an alert is built."""
    try:
        return (airflow_adapter.config("api", "base_url", "") or "http://localhost:8080").rstrip("/")
    except Exception:  # no Airflow configuration here: links still show the paths
        return "http://localhost:8080"


def links(
    *,
    workflow: str | None = None,
    run_id: str | None = None,
    touchpoint: str | None = None,
    environment: str | None = None,
    dag_id: str | None = None,
    deployments_page: bool = False,
    environments_page: bool = False,
    snapshots_page: bool = False,
    bucket_page: bool = True,
) -> dict[str, str]:
    """Where to look: the Airflow run, the Flowlink snapshot of the run, the bucket filtered to failed records."""
    base = airflow_base_url()
    ui = f"{base}/flowlink/ui"
    out = {}
    dag = dag_id or workflow
    if run_id and dag:
        out["airflow_run"] = f"{base}/dags/{quote(dag, safe='')}/runs/{quote(run_id, safe='')}"
    if run_id and workflow:
        out["snapshot"] = f"{ui}/snapshot?" + urlencode({"workflow": workflow, "run_id": run_id})
    if workflow and bucket_page and not deployments_page:
        query = {"workflow": workflow, **({"touchpoint": touchpoint} if touchpoint else {}), "status": "failed"}
        out["bucket"] = f"{ui}/bucket?" + urlencode(query)
    if snapshots_page and workflow:
        out["snapshots"] = f"{ui}/snapshots?" + urlencode({"workflow": workflow})
    if deployments_page:
        out["deployments"] = f"{ui}/deployments" + (
            f"?{urlencode({'environment': environment})}" if environment else ""
        )
    if environments_page:
        out["environments"] = f"{ui}/environments"
    return out


_LINK_NAMES = {
    "airflow_run": "Airflow run",
    "snapshot": "Snapshot",
    "bucket": "Failed records (resync bucket)",
    "snapshots": "Runs (snapshots)",
    "deployments": "Deployments",
    "environments": "Environments",
}


def message(
    event: AlertEvent,
    *,
    subject: str,
    lines: list[str],
    facts: Mapping[str, Any],
    link_map: dict[str, str],
    workflow: str | None = None,
    environment: str | None = None,
    secrets: tuple[str, ...] = (),
) -> Alert:
    """An alert of ``event``: subject + text (the lines, then where to look) + a JSON payload, all scrubbed."""
    text = "\n".join(scrub(x, secrets) for x in lines)
    if link_map:
        text += "\n\nWhere to look:\n" + "\n".join(f"  {_LINK_NAMES.get(k, k)}: {v}" for k, v in link_map.items())
    payload = {
        "event": event.value,
        "workflow": workflow,
        "environment": environment,
        "subject": scrub(subject, secrets),
        "text": text,
        "facts": _scrub_tree(facts, secrets),
        "links": link_map,
        "at": utcnow().isoformat(timespec="seconds"),
    }
    return Alert(event, scrub(subject, secrets), text, payload)


def scrub(text: object, secrets: Iterable[str] = ()) -> str:
    """No credentials: URL user info becomes ***, and so does any of the given secrets, in every form a text may
    hold it (plain, URL-encoded, JSON-escaped: flowlink.errors.secret_forms)."""
    return redact(_USERINFO.sub(r"\1***@", str(text)), secret_forms(secrets))


def _scrub_tree(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, Mapping):
        return {k: _scrub_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_tree(v, secrets) for v in value]
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return value


def _sensitive_values(value: Any, sensitive: bool, found: set[str]) -> None:
    """The strings under a sensitive key (flowlink.errors.is_sensitive) or under "headers", at any depth."""
    if isinstance(value, dict):
        for k, v in value.items():
            _sensitive_values(v, sensitive or is_sensitive(str(k)) or str(k).lower() == "headers", found)
    elif isinstance(value, list):
        for v in value:
            _sensitive_values(v, sensitive, found)
    elif sensitive and isinstance(value, str):
        found.add(value)


def connection_secrets(conn_ids: Iterable[str | None]) -> tuple[str, ...]:
    """The passwords and secret-looking extras of these Airflow connections, to scrub from alert texts."""
    found: set[str] = set()
    for conn_id in dict.fromkeys(c for c in conn_ids if c):
        try:
            conn = airflow_adapter.task_connection(conn_id)
        except Exception:  # no Airflow here: nothing of the connection can be in the store either
            conn = None
        if conn is None:
            continue
        if conn.password:
            found.add(conn.password)
        _sensitive_values(conn.extra, False, found)
    return tuple(s for s in found if len(s) >= 4)


def workflow_secrets(workflow: str | None) -> tuple[str, ...]:
    """The secrets of the live workflow's source and target connections."""
    if not workflow:
        return ()
    try:
        from flowlink import publish

        art = publish.live(workflow)
        spec = art.spec if art else None
    except Exception:
        spec = None
    if not spec:
        return ()
    return connection_secrets([spec.get("source", {}).get("connection"), spec.get("target", {}).get("connection")])
