"""FlowlinkEmailNotifier: an alert by e-mail through an Airflow SMTP connection (the SMTP provider's notifier)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

DEFAULT_FROM = "flowlink@localhost"


class FlowlinkEmailNotifier(SmtpNotifier):
    """Mails ``subject`` and ``text`` (as HTML, ``html`` if given) to ``to`` through the SMTP connection
    ``smtp_conn_id`` (default: Airflow's [email] email_conn_id, else ``smtp_default``); the sender is ``from_email``,
    else the connection's extra ``from_email``, else flowlink@localhost.

    Usable as a DAG or task callback (``on_failure_callback=FlowlinkEmailNotifier(to="ops@example.com")``: without
    a subject it tells which DAG, run and task failed) and called directly by flowlink.alerts. Unlike the
    provider's SmtpNotifier nothing is rendered as a Jinja template: alert texts quote what target applications
    answered, and a template in such an answer must stay text (it could otherwise read connections)."""

    template_fields = ()

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing here is a template (and a DAG callback under dag.test() gets a DAG without a template env)."""

    def __init__(self, *, to: str | Iterable[str], subject: str | None = None, text: str | None = None,
                 html: str | None = None, from_email: str | None = None, smtp_conn_id: str | None = None, **kwargs):
        super().__init__(to=to, from_email=from_email, subject=subject, html_content=html, smtp_conn_id=smtp_conn_id,
                         **kwargs)
        self.text = text

    def _content(self, context) -> tuple[str, str]:
        if self.subject and (self.html_content or self.text is not None):
            return self.subject, self.html_content or f"<pre>{escape(self.text)}</pre>"
        text = self.text or _describe(context)
        subject = self.subject or f"[Flowlink] {text.splitlines()[0][:150]}"
        return subject, self.html_content or f"<pre>{escape(text)}</pre>"

    def notify(self, context) -> None:
        subject, html_content = self._content(context or {})
        with self.hook as smtp:
            smtp.send_email_smtp(to=self.to, from_email=self.from_email or smtp.from_email or DEFAULT_FROM,
                                 subject=subject, html_content=html_content, cc=self.cc, bcc=self.bcc,
                                 mime_charset=self.mime_charset)


def _describe(context) -> str:
    """What a callback context tells: the DAG, the run, the task, the reason (no connection or variable values)."""
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    parts = [f"DAG {getattr(dag, 'dag_id', '?')}", f"run {context.get('run_id', '?')}"]
    if ti is not None:
        parts.append(f"task {getattr(ti, 'task_id', '?')} ({getattr(ti, 'state', None) or 'failed'})")
    reason = context.get("reason")
    return " ".join(parts) + (f": {reason}" if reason else "")
