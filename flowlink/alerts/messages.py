"""Alert messages: subject, text and JSON payload, the links to where to look, and scrubbing secrets."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from flowlink.errors import redact, secret_forms
from flowlink.store.db import utcnow

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")


# ------------------------------------------------------------------ messages

@dataclass
class Alert:
    """One alert: a subject and a text for people, a JSON payload for machines (both name where to look)."""

    event: str
    subject: str
    text: str
    payload: dict = field(default_factory=dict)

    def html(self) -> str:
        body = html.escape(self.text)
        for url in self.payload.get("links", {}).values():
            body = body.replace(html.escape(url), f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        return f'<pre style="font-family: monospace; white-space: pre-wrap">{body}</pre>'


def airflow_base_url() -> str:
    """Airflow's [api] base_url (the address users reach the UI at), read when an alert is built."""
    try:
        from airflow.sdk.configuration import conf

        return (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
    except Exception:  # no Airflow configuration here: links still show the paths
        return "http://localhost:8080"


def links(*, workflow: str | None = None, run_id: str | None = None, touchpoint: str | None = None,
          environment: str | None = None, dag_id: str | None = None, deployments_page: bool = False,
          environments_page: bool = False, snapshots_page: bool = False, bucket_page: bool = True) -> dict:
    """Where to look: the Airflow run, the Flowlink snapshot of the run, the bucket filtered to failed records."""
    base = airflow_base_url()
    ui = f"{base}/flowlink/ui"
    out = {}
    if run_id and (dag_id or workflow):
        out["airflow_run"] = f"{base}/dags/{quote(dag_id or workflow, safe='')}/runs/{quote(run_id, safe='')}"
    if run_id and workflow:
        out["snapshot"] = f"{ui}/snapshot?" + urlencode({"workflow": workflow, "run_id": run_id})
    if workflow and bucket_page and not deployments_page:
        query = {"workflow": workflow, **({"touchpoint": touchpoint} if touchpoint else {}), "status": "failed"}
        out["bucket"] = f"{ui}/bucket?" + urlencode(query)
    if snapshots_page and workflow:
        out["snapshots"] = f"{ui}/snapshots?" + urlencode({"workflow": workflow})
    if deployments_page:
        out["deployments"] = f"{ui}/deployments" + (f"?{urlencode({'environment': environment})}" if environment else "")
    if environments_page:
        out["environments"] = f"{ui}/environments"
    return out


_LINK_NAMES = {"airflow_run": "Airflow run", "snapshot": "Snapshot", "bucket": "Failed records (resync bucket)",
               "snapshots": "Runs (snapshots)", "deployments": "Deployments", "environments": "Environments"}


def message(event: str, *, subject: str, lines: list[str], facts: dict, link_map: dict, workflow: str | None = None,
            environment: str | None = None, secrets: tuple[str, ...] = ()) -> Alert:
    """An alert of ``event``: subject + text (the lines, then where to look) + a JSON payload, all scrubbed."""
    clean = lambda s: scrub(s, secrets)  # noqa: E731
    text = "\n".join(clean(x) for x in lines)
    if link_map:
        text += "\n\nWhere to look:\n" + "\n".join(f"  {_LINK_NAMES.get(k, k)}: {v}" for k, v in link_map.items())
    payload = {"event": event, "workflow": workflow, "environment": environment, "subject": clean(subject),
               "text": text, "facts": _scrub_tree(facts, secrets), "links": link_map,
               "at": utcnow().isoformat(timespec="seconds")}
    return Alert(event, clean(subject), text, payload)


def scrub(text, secrets: tuple[str, ...] = ()) -> str:
    """No credentials: URL user info becomes ***, and so does any of the given secrets, in every form a text may
    hold it (plain, URL-encoded, JSON-escaped: flowlink.errors.secret_forms)."""
    return redact(_USERINFO.sub(r"\1***@", str(text)), secret_forms(secrets))


def _scrub_tree(value, secrets):
    if isinstance(value, dict):
        return {k: _scrub_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_tree(v, secrets) for v in value]
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return value


_SENSITIVE = ("pass", "secret", "token", "key", "auth", "credential", "cookie")


def connection_secrets(conn_ids) -> tuple[str, ...]:
    """The passwords and secret-looking extras of these Airflow connections, to scrub from alert texts."""
    found: set[str] = set()
    for conn_id in dict.fromkeys(c for c in conn_ids if c):
        try:
            from airflow.sdk import BaseHook

            conn = BaseHook.get_connection(conn_id)
        except Exception:  # not defined here, or no Airflow: nothing of it can be in the store either
            continue
        if conn.password:
            found.add(conn.password)
        try:
            extra = conn.extra_dejson
        except Exception:
            extra = {}

        def walk(value, sensitive=False):
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(v, sensitive or any(w in str(k).lower() for w in _SENSITIVE) or str(k).lower() == "headers")
            elif isinstance(value, list):
                for v in value:
                    walk(v, sensitive)
            elif sensitive and isinstance(value, str) and len(value) >= 4:
                found.add(value)

        walk(extra)
    return tuple(s for s in found if len(s) >= 4)


def _workflow_secrets(workflow: str | None) -> tuple[str, ...]:
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
