"""FlowlinkEmailNotifier: an alert by e-mail through an Airflow SMTP connection (the SMTP provider's hook)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from airflow.sdk import BaseNotifier

from flowlink.airflow_adapter import send_email


class FlowlinkEmailNotifier(BaseNotifier):
    """Mails ``subject`` and ``text`` (as HTML, ``html`` if given) to ``to`` through the SMTP connection
    ``smtp_conn_id`` (default: Airflow's [email] email_conn_id, else ``smtp_default``); the sender is ``from_email``,
    else the connection's extra ``from_email``, else flowlink@localhost.

    Usable as a DAG or task callback (``on_failure_callback=FlowlinkEmailNotifier(to="ops@example.com")``: without
    a subject it tells which DAG, run and task failed). flowlink.alerts mails through the same function
    (flowlink.airflow_adapter.send_email). Nothing is rendered as a Jinja template: alert texts quote what target
    applications answered, and a template in such an answer must stay text (it could otherwise read connections)."""

    template_fields = ()

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing here is a template (and a DAG callback under dag.test() gets a DAG without a template env)."""

    def __init__(
        self,
        *,
        to: str | Iterable[str],
        subject: str | None = None,
        text: str | None = None,
        html: str | None = None,
        from_email: str | None = None,
        smtp_conn_id: str | None = None,
    ):
        super().__init__()
        self.to, self.subject, self.text, self.html = to, subject, text, html
        self.from_email, self.smtp_conn_id = from_email, smtp_conn_id

    def _content(self, context: Any) -> tuple[str, str]:
        text = self.text if self.text is not None else _describe(context)
        subject = self.subject or f"[Flowlink] {text.splitlines()[0][:150]}"
        return subject, self.html or f"<pre>{escape(text)}</pre>"

    def notify(self, context: Any) -> None:
        subject, html = self._content(context or {})
        send_email(self.to, subject, html, from_email=self.from_email, conn_id=self.smtp_conn_id)


def _describe(context: Any) -> str:
    """What a callback context tells: the DAG, the run, the task, the reason (no connection or variable values)."""
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    parts = [f"DAG {getattr(dag, 'dag_id', '?')}", f"run {context.get('run_id', '?')}"]
    if ti is not None:
        parts.append(f"task {getattr(ti, 'task_id', '?')} ({getattr(ti, 'state', None) or 'failed'})")
    reason = context.get("reason")
    return " ".join(parts) + (f": {reason}" if reason else "")
