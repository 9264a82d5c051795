"""Reaching an application: connection failures retried within a time budget, and told in a few words.

A connection that cannot be opened (refused, unknown host, timed out connecting) never carried a request, so
trying again is safe for every request, a POST too. Connectors try again after 0.5, 1, 2, 4, then every 5 s
(:class:`Patience`) until ``FLOWLINK_UNREACHABLE_AFTER`` seconds (flowlink.settings, default 30) have passed
since the first failure; any connection that opens ends the outage. A request that fails once the budget is
spent is not waited for again, so a connector whose application is down gives up once, not once per request.
"""

from __future__ import annotations

import socket
import ssl
import time

import requests
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, ProtocolError, ReadTimeoutError

from flowlink import settings

FIRST_WAIT, LONGEST_WAIT = 0.5, 5.0  # seconds between connection attempts: doubling from the first to the longest
_PERMANENT = ("authentication failed", "does not exist", "pg_hba.conf", "permission denied")  # retrying cannot help


class Patience:
    """How long to keep trying an application that cannot be connected to (see the module docstring)."""

    def __init__(self, budget: float | None = None):
        self.budget = settings.unreachable_after() if budget is None else budget
        self._since: float | None = None  # when the current outage began (monotonic), None while connected
        self._wait = FIRST_WAIT

    def failed(self, started: float) -> float | None:
        """The connection attempt begun at ``started`` (time.monotonic()) failed: the seconds to wait before the next
        one, or None when the budget is spent (counted from the start of the outage's first attempt)."""
        now = time.monotonic()
        if self._since is None:
            self._since, self._wait = started, FIRST_WAIT
        left = self._since + self.budget - now
        if left <= 0:
            return None
        wait = min(self._wait, left)
        self._wait = min(self._wait * 2, LONGEST_WAIT)
        return wait

    def connected(self) -> None:
        """A connection opened: the outage, if any, is over."""
        self._since = None

    def gave_up(self) -> str:
        """The end of an Unreachable message: how long was tried, and the setting that says so."""
        if self.budget <= 0:
            return "not tried again"
        return f"gave up after {self.budget:g} s (FLOWLINK_UNREACHABLE_AFTER)"


def connect_failed(exc: BaseException) -> bool:
    """Whether a requests error says the connection could not be opened (refused, unknown host, connect timeout),
    as opposed to a failure after the request was sent (a read timeout, a dropped connection) or a TLS error."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError) or isinstance(
        exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError)
    ):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None  # urllib3's MaxRetryError
    return isinstance(reason, ConnectTimeoutError)  # NewConnectionError and NameResolutionError are kinds of it


def describe(exc: BaseException) -> str:
    """A short, credential-free reason for a connection failure."""
    chain: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is seen for seen in chain) or len(chain) > 50:
            continue
        chain.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None)]
        todo += [arg for arg in getattr(item, "args", ()) if isinstance(arg, BaseException)]
    kinds = tuple(type(e) for e in chain)

    def has(*types: type) -> bool:
        return any(issubclass(kind, types) for kind in kinds)

    if has(NameResolutionError, socket.gaierror):
        return "cannot resolve the host name"
    if has(ConnectionRefusedError):
        return "connection refused"
    if has(requests.exceptions.ReadTimeout, ReadTimeoutError):
        return "timed out waiting for the answer"
    if has(requests.exceptions.ConnectTimeout, TimeoutError):
        return "timed out connecting"
    if has(requests.exceptions.SSLError, ssl.SSLError):
        return "TLS/SSL error"
    if has(requests.exceptions.TooManyRedirects):
        return "too many redirects"
    if has(ConnectionResetError, BrokenPipeError, ProtocolError, requests.exceptions.ChunkedEncodingError):
        return "the connection was closed by the service"
    reason = next((e.strerror for e in chain if isinstance(e, OSError) and e.strerror), None)
    if reason is not None:
        return f"cannot connect: {reason.lower()}"
    if has(requests.exceptions.InvalidURL, requests.exceptions.MissingSchema):
        return "invalid URL"
    return f"cannot connect ({type(exc).__name__})"


def db_unreachable(error: BaseException) -> bool:
    """Whether a PostgreSQL driver error says the server could not be reached or dropped the connection, as opposed
    to a wrong password, a missing database or a bug. SQLite has no server: its errors are never this."""
    if not {"OperationalError", "InterfaceError"} & {kind.__name__ for kind in type(error).__mro__}:
        return False  # (psycopg's ConnectionTimeout is a kind of OperationalError)
    if not (hasattr(error, "sqlstate") or hasattr(error, "pgcode")):  # psycopg, psycopg2
        return False
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if code:
        return code.startswith(("08", "57P"))  # connection exception; the server shutting down or starting up
    return not any(text in str(error) for text in _PERMANENT)  # libpq's connection errors carry no code
