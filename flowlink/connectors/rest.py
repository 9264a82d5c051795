"""The REST connector: read records from, and write records to, a JSON HTTP API.

Built on ``requests`` with one :class:`requests.Session` per connector and urllib3
retries:

* GET/PUT/PATCH/DELETE are retried on 429 and on 5xx (except 501 Not Implemented and
  505 HTTP Version Not Supported, which a retry cannot fix); POST, which is not
  idempotent, only on 429 and 503 (the request was refused, not processed).
* A read timeout or a dropped connection after the request was sent is retried
  for GET/PUT/PATCH/DELETE, never for POST (the record may have been created).
  ``retries`` (default 5) counts these retries and those of the answers above.
* Waits grow exponentially (urllib3's schedule: no wait before the first retry,
  then ``backoff * 2 ** (n - 1)`` seconds, at most 120 s).
* An answer that asks to slow down (429, or one of the retryable answers above with
  a ``Retry-After`` header) slows the whole connector down (:class:`_Throttle`): no
  request of any thread is sent until the moment it names (``Retry-After`` in seconds
  or as an HTTP date, at most 120 s; without one ``backoff * 2 ** n`` for the n-th
  such answer to that request), and at most half as many requests are in flight from
  then on, growing back by one after four rounds of answers that did not ask to slow
  down. The request is sent again up to ``retries`` times; then its last answer counts.
* Connection failures (refused, unknown host, connect timeout: the request never
  reached the service) are retried for every method, a POST too, by time, not by
  count: for ``FLOWLINK_UNREACHABLE_AFTER`` seconds (default 30, see
  :mod:`flowlink.reach`), then :class:`Unreachable` is raised. Connecting times out
  after at most 10 s (``timeout`` is the read timeout, default 30 s).

Reading (``GET base_url + endpoint``):

* ``extract.filter`` is a query string (``status=active&country=DE``) whose
  parameters are sent as they are.
* ``since`` is sent as ``?{incremental}__gt={since}`` (``updated_at__gt=...``,
  the Django/REST-framework convention). The connector then filters and orders
  client-side as well, so a service that ignores the parameter still gives the
  right records: only records whose incremental value is greater than ``since``
  (records without a value are left out, as SQL's ``>`` would), compared by
  :mod:`flowlink.ordering` (numbers and numeric strings as numbers, ISO 8601
  date-times as instants, other text as text), which also orders each page.
* ``ids`` reads the records and keeps those whose key, as a string, is in
  ``ids`` (simple and correct for any service; ``since`` is ignored).
* The JSON body is a list of records, or an object holding the list under
  ``extract.records_path`` (a dotted path such as ``data.items``).
* Pagination ``page``: ``?page=1&per_page=N``, ``page=2``, ... until an empty or
  short page (or a page that repeats the previous one: a service that ignores the
  page parameter). A short page ends the read, so ``size`` must not exceed the
  largest page the service gives. Pagination ``next``: follow the URL in ``next_field`` (dotted
  path allowed; relative URLs are resolved) until it is null/missing; the first
  request carries ``size_param``; a next URL on another scheme/host/port is
  refused so credentials are never sent elsewhere.
* Batches are yielded page by page, as the pages come (memory stays flat): each
  page is ordered by the incremental field, then by the key (records without an
  incremental value first, as SQL orders NULLs), or by the key alone; the order
  across pages is the service's. A key seen on an earlier page is not yielded
  again (the first copy wins), so a record that moves between pages while
  reading is not yielded twice.
* A record without a key, a non-2xx answer, or a body that is not what
  ``records_path`` says raises :class:`ConnectorError`.

Writing (one HTTP request per record, or ``load.bulk.size`` records per request):

* Up to ``concurrency`` requests at a time (the connection's extra ``concurrency``,
  1 to 64, default 16: see docs/benchmarks.md; 1 writes one record after the other),
  on a thread pool over the one session, whose connection pool is as large. Records
  with the same key in a batch are written one after the other in the batch's order,
  never at once (create_or_update: also records with the same destination id or the
  same look-up, which could find one target record); the others side by side. The
  results are one per record, in the batch's order. A ConnectorError of one record
  (bad credentials, a dropped connection after a POST was sent, ...) stops the other
  threads after the request each is in, and is raised.
* ``upsert``: ``PUT {endpoint}/{key}`` (key URL-encoded) with the record as JSON;
  ``insert``: ``POST {endpoint}`` (a 409 answer sets ``exists``).
* 2xx: ``ok``; ``destination_id`` is ``response[id_field]`` when ``id_field`` is
  set and present in the JSON answer, else the key.
* ``create_or_update``: a record whose destination id is known (``write``'s
  ``destination_ids``, kept by the bucket) is updated: ``PUT`` (or ``PATCH``,
  ``load.update``) ``{endpoint}/{destination id}``. One without, or whose update
  answers 404 while ``load.on_missing`` is ``create``, is looked up:
  ``GET {load.match.endpoint}`` with its ``{field}`` placeholders filled from the
  record (URL-encoded), the found records under ``load.match.records_path``. One
  found: updated by its ``id_field``; none: ``POST {endpoint}``, the new id read
  from the answer's ``id_field``; more than one: the record fails. So a record
  created by a try whose result was lost is found and updated, never created
  twice. ``action`` says created or updated; ``destination_id`` is the target's id.
* Any other status after retries: ``ok=False`` and
  ``error="PUT /customers/17: HTTP 422: <text>"`` (method, path and query of the
  request), the text being the JSON ``error``/``detail``/``message`` field when
  there is one, else the body; at most 300 characters.
* 401/407 (bad credentials) and connection problems after retries raise
  :class:`ConnectorError` (:class:`Unreachable` when no connection could be
  opened): the whole application is unreachable.
* ``load.bulk`` (upsert or insert): the records go ``bulk.size`` per request in their
  order (a request ends early before a key it holds already), as a JSON list, or an
  object holding it at ``bulk.records_path``, by ``bulk.method`` (default POST) to
  ``bulk.endpoint``. The answer's list of results (at ``bulk.result.path``) gives
  each record's outcome: by position, or by ``bulk.result.key`` (the result's field
  holding the record's key); written when ``result.ok`` is true, else when
  ``result.status`` is 2xx, else when ``result.error`` is empty; ``exists`` when the
  status is 409 or the result matches ``result.exists``; ``destination_id`` from
  ``result.id`` (else ``load.id_field``, else the key); the message from
  ``result.error`` (a text, or the message/reason of an object or a list of them):
  ``POST /shop/_bulk_docs: email: not a valid address``. A request refused as a whole
  with 4xx (not processed) is sent again one record per request, so a record the
  API refuses fails alone; any other error answer fails the request's records with
  its message, and an answer whose results cannot be read fails them saying why.

Credentials (password, token, secret-looking headers, the basic-auth header) are
replaced by ``***`` in every error message, including text a service echoes back,
plain, URL-encoded or JSON-escaped (flowlink.errors.secret_forms); a service's text
is redacted before it is shortened, so no piece of a credential is left either.
Credentials written into the host (``http://user:pw@host``, or ``user:pw@host``
without a scheme) are moved out of the URL before anything else sees it.
:func:`connection_secrets` lists them all (the Airflow hook hands them to Airflow's
secrets masker). OAuth2 client credentials (:mod:`flowlink.connectors.oauth2`): the
client secret and every access token are redacted the same way.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from flowlink.connectors.base import (
    Action,
    Batch,
    ConnectorError,
    Unreachable,
    WriteResult,
    dotted,
    json_safe,
    newest,
)
from flowlink.connectors.oauth2 import ClientCredentials
from flowlink.errors import is_sensitive, plural, redact, secret_forms
from flowlink.ordering import order_key
from flowlink.reach import Patience, connect_failed
from flowlink.reach import describe as _describe
from flowlink.spec import PLACEHOLDER, Bulk, Extract, Load, Match

__all__ = [
    "RestSource",
    "RestTarget",
    "connection_secrets",
    "look_up_path",
    "path",
    "rest_settings_from_connection",
    "write_request",
]

USER_AGENT = "flowlink/0.1"
MAX_WAIT = 120.0  # seconds: the longest backoff or Retry-After wait
CONNECT_TIMEOUT = 10.0  # seconds: the longest wait for a connection to open (a read may take `timeout`)
MAX_PAGES = 100_000
ERROR_TEXT = 300  # characters of a service's error text kept in WriteResult.error
CONCURRENCY = 16  # requests in flight at once per connector, unless the connection's extra says (measured: docs)
MAX_CONCURRENCY = 64
log = logging.getLogger(__name__)


class _Retry(Retry):
    """urllib3 Retry with per-method status codes: POST only on 429/503. An answer that asks to slow down (429, or a
    retryable one with Retry-After) is handed back: the connector's throttle waits for it, for every thread."""

    IDEMPOTENT_STATUS = frozenset({429, *range(500, 600)} - {501, 505})
    POST_STATUS = frozenset({429, 503})
    # PATCH too: create_or_update patches with the whole mapped record, so sending it twice changes nothing more
    METHODS = Retry.DEFAULT_ALLOWED_METHODS | {"PATCH"}

    def __init__(self, *, allowed_methods: Any = METHODS, **kwargs: Any):
        super().__init__(allowed_methods=allowed_methods, **kwargs)

    def retryable(self, method: str, status_code: int) -> bool:
        """Whether an answer with this status may be sent again: the request was not processed, or sending it twice
        changes nothing more."""
        if method.upper() == "POST":
            return status_code in self.POST_STATUS
        return self._is_method_retryable(method) and status_code in self.IDEMPOTENT_STATUS

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return self.retryable(method, status_code) and status_code != 429 and not has_retry_after

    def get_retry_after(self, response: Any) -> float | None:
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:  # an unparsable Retry-After: fall back to the backoff
            return None
        return None if seconds is None else min(seconds, self.backoff_max)


class _Throttle:
    """The pace of one connector's requests, shared by its threads.

    At most ``limit`` requests are in flight (``most`` at first). An answer that asks to slow down (429, or one with
    Retry-After) stops every thread from sending until the moment it names (else a backoff), and halves ``limit``
    (at least 1), once per round: the answers to requests sent before a cut do not cut again. ``limit`` grows back
    by one after ``GROW_AFTER * limit`` answers in a row that did not ask to slow down."""

    GROW_AFTER = 4  # rounds of answers without a slow-down before one more request may be in flight

    def __init__(self, most: int):
        self.most = most
        self.limit = most
        self.cuts = 0  # how many times the limit was cut; a request remembers the count it was sent under
        self._busy = 0  # requests in flight
        self._until = 0.0  # time.monotonic() before which nobody sends
        self._fine = 0  # answers since the last change of the limit that did not ask to slow down
        self._cond = threading.Condition()

    def enter(self) -> int:
        """Wait for a turn to send (the pause over, fewer than ``limit`` in flight); returns the turn's mark."""
        with self._cond:
            while True:
                wait = self._until - time.monotonic()
                if wait <= 0 and self._busy < self.limit:
                    self._busy += 1
                    return self.cuts
                self._cond.wait(timeout=wait if wait > 0 else None)

    def leave(self, mark: int, pause: float | None = None) -> bool:
        """The request sent at ``mark`` is answered (or failed); ``pause``: seconds the service asked to wait (None:
        it did not). Returns whether the limit was cut."""
        with self._cond:
            self._busy -= 1
            cut = False
            if pause is not None:
                self._until = max(self._until, time.monotonic() + pause)
                if mark == self.cuts:
                    self.limit, self.cuts, self._fine, cut = max(1, self.limit // 2), self.cuts + 1, 0, True
            elif self.limit < self.most:
                self._fine += 1
                if self._fine >= self.GROW_AFTER * self.limit:
                    self.limit, self._fine = self.limit + 1, 0
            self._cond.notify_all()
            return cut


class _RestClient:
    """What RestSource and RestTarget share: the session, retries, the throttle, URLs and error texts."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | requests.auth.AuthBase | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] = 30,
        retries: int = 5,
        backoff: float = 0.5,
        unreachable_after: float | None = None,
        concurrency: int = CONCURRENCY,
    ):
        try:
            parts = urlsplit(base_url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:  # e.g. a bad [IPv6] host; its text may hold credentials, so it is not repeated
            valid = False
        if not valid:
            raise ConnectorError(f"REST base URL must be http(s)://host[:port][/path], got {_shown(base_url)!r}")
        if parts.username is not None and auth is None:  # http://user:pw@host: move the credentials out of the URL
            auth = (unquote(parts.username), unquote(parts.password or ""))
        self.base_url = _strip_userinfo(base_url).rstrip("/")
        if isinstance(timeout, (int, float)):  # (connect, read): a dead host is given up sooner than a slow answer
            timeout = (min(float(timeout), CONNECT_TIMEOUT), float(timeout))
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ConnectorError(
                f"REST concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, got {concurrency!r}"
            )
        self.concurrency = concurrency
        self.throttle = _Throttle(concurrency)
        self._secrets = _secrets(auth, headers or {})
        # connection failures: retried for unreachable_after seconds (default FLOWLINK_UNREACHABLE_AFTER)
        self._patience = Patience(unreachable_after)
        self._lock = threading.Lock()  # guards _patience, shared by the threads
        self.session = requests.Session()
        # requests reads proxies, the CA bundle and ~/.netrc from the environment on every request (a scan of
        # os.environ each time: a fifth of a load's CPU); they are read once here instead, proxies once per host.
        self.session.trust_env = False
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.session.auth = auth if auth is not None else requests.utils.get_netrc_auth(self.base_url)
        self._proxies: dict[tuple[str, str], dict[str, str]] = {}
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        self.session.headers.update({str(k): str(v) for k, v in (headers or {}).items()})
        self._retry = _Retry(
            total=retries,
            connect=0,  # connection failures are retried by time, in request()
            backoff_factor=backoff,
            backoff_max=MAX_WAIT,
            respect_retry_after_header=True,
            raise_on_status=False,  # after the last retry, hand back the last response
        )
        # a connection kept for each request in flight (the default pool keeps 10)
        adapter = HTTPAdapter(max_retries=self._retry, pool_maxsize=max(10, concurrency))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session's connections; safe to call twice."""
        self.session.close()

    def url(self, endpoint: str, *tail: str) -> str:
        return self.base_url + path(endpoint, *tail)

    def _environment_proxies(self, url: str) -> dict[str, str]:
        """The proxies the environment names for this URL's host (HTTP(S)_PROXY, NO_PROXY), read once per host."""
        origin = urlsplit(url)[:2]
        found = self._proxies.get(origin)
        if found is None:
            found = self._proxies[origin] = requests.utils.get_environ_proxies(url)
        return found

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request (with retries), in its turn (the throttle); raise ConnectorError when the service cannot
        be reached (Unreachable when no connection opened for FLOWLINK_UNREACHABLE_AFTER seconds) or refuses the
        credentials. An answer that asks to slow down pauses the whole connector and is sent again, ``retries``
        times; the last such answer is handed back."""
        slowed = 0  # answers to this request that asked to slow down
        while True:
            mark = self.throttle.enter()
            started = time.monotonic()
            try:
                response = self.session.request(
                    method, url, timeout=self.timeout, proxies=self._environment_proxies(url), **kwargs
                )
            except requests.RequestException as exc:
                self.throttle.leave(mark)
                where = f"{method} {self._path(url)}"
                if not connect_failed(exc):
                    raise ConnectorError(
                        self.redact(f"{self.base_url}: {_describe(exc)} ({where}, retries: {self.retries})")
                    ) from exc
                with self._lock:
                    wait = self._patience.failed(started)
                if wait is None:
                    raise Unreachable(
                        self.redact(f"{self.base_url}: {_describe(exc)} ({where}); {self._patience.gave_up()}")
                    ) from exc
                time.sleep(wait)
                continue
            pause = self._pause(method, response, slowed)
            if self.throttle.leave(mark, pause):
                log.warning(
                    "%s: HTTP %d to %s %s: the connection waits %.3g s, then sends at most %s at a time",
                    self.base_url,
                    response.status_code,
                    method,
                    self._path(url),
                    pause,
                    plural(self.throttle.limit, "request"),
                )
            if pause is None or slowed >= self.retries:
                break
            slowed += 1
            response.close()
        with self._lock:
            self._patience.connected()
        if response.status_code in (401, 407):
            raise ConnectorError(
                self.redact(
                    f"{self.base_url}: HTTP {response.status_code}: authentication failed "
                    f"({method} {self._path(url)}); check the connection's login, password or token: "
                    f"{_error_text(response, self.redact)}"
                )
            )
        return response

    def _pause(self, method: str, response: requests.Response, slowed: int) -> float | None:
        """Seconds to wait when the answer asks to slow down (429, or a retryable status with Retry-After), else None:
        the Retry-After (at most 120 s), else ``backoff * 2 ** slowed``."""
        status = response.status_code
        if status != 429 and not (response.headers.get("Retry-After") and self._retry.retryable(method, status)):
            return None
        seconds = self._retry.get_retry_after(response)  # reads only .headers
        return seconds if seconds is not None else min(self.backoff * 2**slowed, MAX_WAIT)

    def redact(self, text: str) -> str:
        """``text`` with every form of this connector's credentials replaced by ``***`` (OAuth2 tokens too)."""
        text = redact(text, self._secrets)
        if isinstance(self.session.auth, ClientCredentials):  # its tokens change while the connector works
            text = redact(text, secret_forms(self.session.auth.secrets()))
        return text

    def _path(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path or "/"


class RestSource(_RestClient):
    """Reads records from ``GET base_url + extract.endpoint`` (see the module docstring)."""

    def read(
        self,
        extract: Extract,
        *,
        since: Any = None,
        ids: list[str] | None = None,
        batch_size: int = 500,
    ) -> Iterator[Batch]:
        """Yield batches of at most ``batch_size`` records, page by page (memory stays flat).

        Each page is ordered by incremental then key; pages come in the service's order, and a
        key seen on an earlier page is not yielded again.
        ``since`` is sent as ``{incremental}__gt`` and applied client-side too;
        ``ids`` reads the endpoint and keeps the records whose key (as a string) is
        in ``ids`` (``since`` is then ignored; an empty list yields nothing).
        """
        if not extract.endpoint:
            raise ConnectorError("a REST source reads an endpoint (extract.endpoint)")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        wanted: set[str] | None = None
        if ids is not None:
            wanted = {str(i) for i in ids}
            if not wanted:
                return
            since = None
        if not extract.incremental or since == "":
            since = None
        params = parse_qsl(extract.filter or "", keep_blank_values=True)
        if since is not None:
            params.append((f"{extract.incremental}__gt", _param_value(since)))

        low = order_key(since) if since is not None else None
        seen: set[str] = set()  # keys only: memory stays flat however many pages there are
        batch: Batch = []
        for page in self._pages(extract, params):
            for record in self._page_order(page, extract):
                key = str(_get(record, extract.key))
                if key in seen or (wanted is not None and key not in wanted):
                    continue
                if low is not None:
                    value = _get(record, extract.incremental)
                    if value is None or order_key(value) <= low:
                        continue
                seen.add(key)
                batch.append(record)
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def newest(self, extract: Extract, limit: int) -> Batch:
        """Source.newest: every page is read (a service offers no common way to ask for the newest records), only
        the newest ``limit`` kept; without extract.incremental, the first ``limit`` (reading stops there)."""
        return newest(self.read(extract, batch_size=min(limit, 500)), extract, limit)

    @staticmethod
    def _page_order(page: list[dict], extract: Extract) -> list[dict]:
        """A page's records in incremental-then-key order (each page is sorted; pages come as the service sends them)."""
        for record in page:
            if _get(record, extract.key) is None:
                raise ConnectorError(
                    f"GET {extract.endpoint}: a record has no key field {extract.key!r} "
                    f"(fields: {', '.join(sorted(map(str, record))[:20]) or 'none'})"
                )
        if extract.incremental:
            missing = [r for r in page if _get(r, extract.incremental) is None]
            present = [r for r in page if _get(r, extract.incremental) is not None]
            present.sort(key=lambda r: (order_key(_get(r, extract.incremental)), order_key(_get(r, extract.key))))
            return missing + present  # no value first, as SQL orders NULLs
        return sorted(page, key=lambda r: order_key(_get(r, extract.key)))

    def _pages(self, extract: Extract, params: list[tuple[str, str]]) -> Iterator[list[dict]]:
        url = self.url(extract.endpoint or "")
        pagination = extract.pagination
        if pagination is None:
            yield self._get_records(extract, url, params)[0]
            return
        if pagination.style == "page":
            previous: list[dict] | None = None
            for number in range(1, MAX_PAGES + 1):
                page_params = params + [
                    (pagination.page_param, str(number)),
                    (pagination.size_param, str(pagination.size)),
                ]
                records, _ = self._get_records(extract, url, page_params)
                if not records or records == previous:
                    return
                yield records
                if len(records) < pagination.size:
                    return
                previous = records
            raise ConnectorError(f"GET {extract.endpoint}: more than {MAX_PAGES} pages")
        # style "next"
        seen: set[str] = set()
        request_params: list[tuple[str, str]] | None = params + [(pagination.size_param, str(pagination.size))]
        for _ in range(MAX_PAGES):
            seen.add(url)
            records, body = self._get_records(extract, url, request_params)
            yield records
            following = _get(body, pagination.next_field) if isinstance(body, dict) else None
            if not following:
                return
            if not isinstance(following, str):
                raise ConnectorError(
                    f"GET {extract.endpoint}: {pagination.next_field!r} is not a URL: {following!r}"[:400]
                )
            url, request_params = urljoin(url, following), None  # the next URL carries its own query
            if not _same_origin(url, self.base_url):
                raise ConnectorError(
                    f"GET {extract.endpoint}: the next page is on another server ({_origin(url)}); "
                    f"refusing to send the connection's credentials there"
                )
            if url in seen:  # a loop: everything has been read
                return
        raise ConnectorError(f"GET {extract.endpoint}: more than {MAX_PAGES} pages")

    def _get_records(self, extract: Extract, url: str, params: list[tuple[str, str]] | None) -> tuple[list[dict], Any]:
        response = self.request("GET", url, params=params)
        where = f"GET {self._path(response.url or url)}"
        if not 200 <= response.status_code < 300:
            raise ConnectorError(
                self.redact(
                    f"{self.base_url}: {where}: HTTP {response.status_code}: {_error_text(response, self.redact)}"
                )
            )
        try:
            body = response.json()
        except ValueError:
            raise ConnectorError(
                f"{where}: the answer is not JSON ({response.headers.get('Content-Type', 'no content type')})"
            ) from None
        if extract.records_path:
            records = _get(body, extract.records_path) if isinstance(body, dict) else None
            if records is None:
                have = ", ".join(sorted(body)[:20]) if isinstance(body, dict) else type(body).__name__
                raise ConnectorError(f"{where}: the answer has no {extract.records_path!r} (it has: {have})")
        elif isinstance(body, dict):
            raise ConnectorError(
                f"{where}: the answer is an object ({', '.join(sorted(body)[:20])}); "
                f"set extract.records_path to the field holding the records"
            )
        else:
            records = body
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ConnectorError(f"{where}: expected a list of records (JSON objects)")
        return records, body


_Item = tuple[int, str, dict, "str | None"]  # a record to write: its place in the batch, key, record, destination id


class RestTarget(_RestClient):
    """Writes records to ``base_url + load.endpoint`` by ``load.method``, up to ``concurrency`` requests at a time
    (see the module docstring)."""

    _pool: concurrent.futures.ThreadPoolExecutor | None = None

    def write(
        self, load: Load, records: list[dict], destination_ids: list[str | None] | None = None
    ) -> list[WriteResult]:
        """One WriteResult per record, in order; ``destination_ids`` (create_or_update): each record's id in the
        target as recorded by an earlier load, None when unknown (see the module docstring).

        Records go out ``concurrency`` requests at a time (``load.bulk``: ``bulk.size`` records per request);
        records with the same key are written one after the other, in their order. A ConnectorError of one record
        stops the others after the request each is in, then is raised."""
        if not load.endpoint:
            raise ConnectorError("a REST target writes an endpoint (load.endpoint)")
        known = destination_ids if destination_ids is not None else [None] * len(records)
        if len(known) != len(records):
            raise ValueError(f"{len(records)} records but {len(known)} destination ids")
        results: list[WriteResult | None] = [None] * len(records)
        todo: list[_Item] = []
        for i, (record, dest) in enumerate(zip(records, known, strict=True)):
            key = _get(record, load.key)
            if key is None or key == "":
                results[i] = WriteResult(
                    key="", ok=False, error=f"the record has no value for the key field {load.key!r}"
                )
            else:
                todo.append((i, str(key), record, dest))
        bulk = load.bulk

        def work(job: list[_Item]) -> None:
            if bulk is None:
                [(i, _, record, dest)] = job
                results[i] = self._write_one(load, record, dest)
            else:
                for (i, _, _, _), result in zip(job, self._write_chunk(load, bulk, job), strict=True):
                    results[i] = result

        if bulk is None:
            jobs = [[item] for item in todo]
        else:
            jobs = self._chunks(todo, bulk.size, results)
        self._run(_lanes(jobs, lambda item: _ties(load, item)), work)
        return cast(list[WriteResult], results)  # every place filled: a lane that stops early raises

    def close(self) -> None:
        """Stop the threads (after the request each is in) and close the session's connections; safe twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        super().close()

    def _run(self, lanes: list[list[list[_Item]]], work: Callable[[list[_Item]], None]) -> None:
        """Each lane's jobs in order, lanes side by side on the thread pool (in this thread when one at a time)."""
        if self.concurrency == 1 or len(lanes) < 2:
            for lane in lanes:
                for job in lane:
                    work(job)
            return
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="flowlink-rest")
        stop = threading.Event()

        def run(lane: list[list[_Item]]) -> None:
            for job in lane:
                if stop.is_set():  # another record raised: the batch is written again one record at a time
                    return
                try:
                    work(job)
                except BaseException:
                    stop.set()
                    raise

        futures = [self._pool.submit(run, lane) for lane in lanes]
        try:
            concurrent.futures.wait(futures)
        finally:
            stop.set()  # also when this thread is interrupted: the others end after the request each is in
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            raise next((e for e in errors if isinstance(e, Unreachable)), errors[0])

    @staticmethod
    def _chunks(todo: list[_Item], size: int, results: list[WriteResult | None]) -> list[list[_Item]]:
        """The records of a bulk load, ``size`` per request in their order; a chunk ends early before a key it holds
        already (that record goes in a later request). A record JSON cannot carry fails here, alone."""
        chunks: list[list[_Item]] = []
        chunk: list[_Item] = []
        keys: set[str] = set()
        for i, key, record, dest in todo:
            try:
                row = json_safe(record)
            except ConnectorError as exc:
                results[i] = WriteResult(key=key, ok=False, error=str(exc))
                continue
            if len(chunk) == size or key in keys:
                chunks.append(chunk)
                chunk, keys = [], set()
            chunk.append((i, key, row, dest))
            keys.add(key)
        if chunk:
            chunks.append(chunk)
        return chunks

    def _write_one(self, load: Load, record: dict, known: str | None) -> WriteResult:
        key = _get(record, load.key)
        if key is None or key == "":
            return WriteResult(key="", ok=False, error=f"the record has no value for the key field {load.key!r}")
        key = str(key)
        try:
            body = json.dumps(json_safe(record), ensure_ascii=False).encode("utf-8")
        except ConnectorError as exc:
            return WriteResult(key=key, ok=False, error=str(exc))
        if load.method == "create_or_update":
            return self._create_or_update(load, key, record, body, known)
        method, where = write_request(load, key)
        url = self.base_url + where
        response = self._send(method, url, body)
        if not _ok(response):
            return self._failed(key, method, url, response, exists=method == "POST" and response.status_code == 409)
        value = _get(_json(response), load.id_field) if load.id_field else None
        return WriteResult(key=key, ok=True, destination_id=key if value is None else str(value))

    def _create_or_update(self, load: Load, key: str, record: dict, body: bytes, known: str | None) -> WriteResult:
        """Update by the known destination id; else (or when that answers 404 and on_missing is create) look the
        record up with match: one found is updated, none is created, more than one fails the record."""
        update = (load.update or "put").upper()
        if known is not None:
            url = self.url(load.endpoint or "", known)
            response = self._send(update, url, body)
            if _ok(response):
                return WriteResult(key=key, ok=True, destination_id=known, action=Action.UPDATED)
            if response.status_code != 404 or load.on_missing == "fail":
                gone = (
                    "; the record is no longer in the target (load.on_missing: fail)"
                    if response.status_code == 404
                    else ""
                )
                return self._failed(key, update, url, response, note=gone)
        found = self._look_up(load, key, record)
        if isinstance(found, WriteResult):
            return found
        if len(found) == 1:
            url = self.url(load.endpoint or "", found[0])
            response = self._send(update, url, body)
            if not _ok(response):
                return self._failed(key, update, url, response)
            return WriteResult(key=key, ok=True, destination_id=found[0], action=Action.UPDATED)
        url = self.url(load.endpoint or "")
        response = self._send("POST", url, body)
        if not _ok(response):
            return self._failed(key, "POST", url, response)
        value = _get(_json(response), load.id_field or "")
        if value is None or value == "":
            return WriteResult(
                key=key,
                ok=False,
                error=self.redact(
                    f"{self._where('POST', url)}: created, but the answer has no {load.id_field!r} (load.id_field) to "
                    f"update it by; a resync finds it with match"
                ),
            )
        return WriteResult(key=key, ok=True, destination_id=str(value), action=Action.CREATED)

    def _write_chunk(self, load: Load, bulk: Bulk, chunk: list[_Item]) -> list[WriteResult]:
        """One bulk request for the chunk's records; their results in the chunk's order. A request refused as a whole
        (4xx) is sent again one record per request, so a record the API refuses fails alone, with its message."""
        method = bulk.method.upper()
        url = self.url(bulk.endpoint or load.endpoint or "")
        rows = [row for _, _, row, _ in chunk]
        body = json.dumps(_nest(bulk.records_path, rows), ensure_ascii=False).encode("utf-8")
        response = self._send(method, url, body)
        if not _ok(response):
            if 400 <= response.status_code < 500 and len(chunk) > 1:  # not processed: find the record it refuses
                return [result for item in chunk for result in self._write_chunk(load, bulk, [item])]
            return [
                self._failed(key, method, url, response, exists=response.status_code == 409) for _, key, _, _ in chunk
            ]
        spec = bulk.result
        where = self._where(method, url)
        answer = _json(response)
        found = _get(answer, spec.path) if spec.path else answer
        if not isinstance(found, list):
            problem = (
                f"the answer has no list of results under {spec.path!r} (load.bulk.result.path)"
                if spec.path
                else "the answer is not a list of results (load.bulk.result.path names the field holding it)"
            )
            return [WriteResult(key=key, ok=False, error=f"{where}: {problem}") for _, key, _, _ in chunk]
        if spec.key is None and len(found) != len(chunk):
            problem = (
                f"{len(found)} results for {len(chunk)} records: cannot tell which is which "
                "(load.bulk.result.key names the field that does)"
            )
            return [WriteResult(key=key, ok=False, error=f"{where}: {problem}") for _, key, _, _ in chunk]
        if spec.key is None:
            return [
                self._bulk_result(load, bulk, key, item, where)
                for (_, key, _, _), item in zip(chunk, found, strict=True)
            ]
        by_key = {_param_value(_get(item, spec.key)): item for item in found if isinstance(item, dict)}
        return [
            self._bulk_result(load, bulk, key, by_key[key], where)
            if key in by_key
            else WriteResult(
                key=key,
                ok=False,
                error=f"{where}: the answer has no result for it (by {spec.key!r}, load.bulk.result.key)",
            )
            for _, key, _, _ in chunk
        ]

    def _bulk_result(self, load: Load, bulk: Bulk, key: str, item: Any, where: str) -> WriteResult:
        """A record's outcome from its result in a bulk answer (load.bulk.result says how to read it)."""
        spec = bulk.result
        if not isinstance(item, dict):
            return WriteResult(
                key=key,
                ok=False,
                error=self.redact(_short(f"{where}: its result is not an object: {json.dumps(item)}")),
            )
        status = _status(_get(item, spec.status)) if spec.status else None
        error = _get(item, spec.error)
        if spec.ok:
            written = _get(item, spec.ok) is True
        elif spec.status:
            written = status is not None and 200 <= status < 300
        else:
            written = error in (None, "", [], {})
        if written:
            field = spec.id or load.id_field
            value = _get(item, field) if field else None
            return WriteResult(key=key, ok=True, destination_id=key if value in (None, "") else str(value))
        exists = status == 409 or bool(
            spec.exists and all(_param_value(_get(item, f)) == _param_value(v) for f, v in spec.exists.items())
        )
        text = _reason_text(error) or f"refused: {json.dumps(item, ensure_ascii=False)}"
        shown = f"{where}: " + (f"HTTP {status}: " if status is not None else "") + self.redact(text)
        return WriteResult(key=key, ok=False, error=_short(self.redact(shown)), exists=exists)

    def _look_up(self, load: Load, key: str, record: dict) -> list[str] | WriteResult:
        """The destination ids of the target's records that load.match finds for this record (none or one), or a
        failed result (no value for a placeholder, an error answer, more than one found)."""
        match = load.match
        if match is None:
            raise ConnectorError("method: create_or_update needs load.match")
        for field in match.fields:
            if _get(record, field) in (None, ""):
                return WriteResult(
                    key=key,
                    ok=False,
                    error=f"the record has no value for {field!r}, which load.match.endpoint needs to look it up",
                )
        url = self.url(look_up_path(match, record))
        response = self.request("GET", url)
        if not _ok(response):
            return self._failed(key, "GET", url, response)
        body = _json(response)
        found = _get(body, match.records_path) if match.records_path else body
        where = self._where("GET", url)
        if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
            expected = f"a list of records under {match.records_path!r}" if match.records_path else "a list of records"
            return WriteResult(key=key, ok=False, error=self.redact(f"{where}: expected {expected} (load.match)"))
        if len(found) > 1:
            return WriteResult(
                key=key,
                ok=False,
                error=self.redact(f"{where}: {len(found)} records match, so the record is not written (at most 1 may)"),
            )
        ids = [_get(r, load.id_field or "") for r in found]
        if None in ids or "" in ids:
            return WriteResult(
                key=key,
                ok=False,
                error=self.redact(f"{where}: the record found has no {load.id_field!r} (load.id_field)"),
            )
        return [str(i) for i in ids]

    def _send(self, method: str, url: str, body: bytes) -> requests.Response:
        return self.request(method, url, data=body, headers={"Content-Type": "application/json"})

    def _where(self, method: str, url: str) -> str:
        """``PUT /customers/17``: the method and the path (and query) of a request, for a record's message."""
        parts = urlsplit(url)
        return f"{method} {parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")

    def _failed(
        self, key: str, method: str, url: str, response: requests.Response, *, exists: bool = False, note: str = ""
    ) -> WriteResult:
        """``PUT /customers/17: HTTP 404: <the service's text>``, credentials redacted."""
        error = f"{self._where(method, url)}: HTTP {response.status_code}: {_error_text(response, self.redact)}{note}"
        return WriteResult(key=key, ok=False, error=self.redact(error), exists=exists)


def rest_settings_from_connection(
    conn_type: str | None,
    host: str | None,
    login: str | None,
    password: str | None,
    port: int | None,
    schema: str | None,
    extra: Mapping[str, Any] | str | None,
) -> dict[str, Any]:
    """Keyword arguments for RestSource/RestTarget from an Airflow connection's fields.

    * ``host`` is a full URL (``http://127.0.0.1:8765/api``) or a bare host; a bare
      host gets ``port`` and the scheme from ``schema`` (``http``/``https``), else
      from ``conn_type`` when that is ``http``/``https``, else ``http`` (as
      Airflow's HttpHook). A port in the URL wins over ``port``.
    * ``login``/``password`` -> HTTP basic auth (``auth=(login, password)``);
      credentials in the URL (``http://user:pw@host``) are used when there is no login.
    * ``extra["token"]`` -> ``Authorization: Bearer <token>`` (and no basic auth).
    * ``extra["oauth2_token_url"]`` -> OAuth2 client credentials: ``login`` is the client id, ``password`` the
      client secret; ``extra["oauth2_scope"]``, ``extra["oauth2_audience"]`` are sent when given;
      ``extra["oauth2_client_auth"]`` is ``basic`` (default) or ``body`` (see :mod:`flowlink.connectors.oauth2`).
    * ``extra["headers"]`` (a dict, or a JSON object as text) -> extra headers.
    * ``extra["timeout"]``, ``extra["retries"]``, ``extra["backoff"]`` are passed on when given.
    * ``extra["concurrency"]`` (1 to 64, a number or its text): requests a load sends at a time (default 16).

    Returns ``{"base_url", "auth", "headers"}`` plus those optional keys.
    """
    if isinstance(extra, str):
        extra = _json_object(extra, "the connection's extra")
    extra = dict(extra or {})
    host = (host or "").strip()
    if not host:
        raise ConnectorError("the REST connection has no host (give a URL such as http://127.0.0.1:8765)")
    if "://" in host:
        try:
            parts = urlsplit(host)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            url_port = parts.port if valid else None
        except ValueError:  # a bad [IPv6] host or port; its text may hold credentials, so it is not repeated
            valid = False
        if not valid:
            raise ConnectorError(f"the REST connection's host must be an http(s) URL, got {_shown(host)!r}")
        if parts.username is not None and not login:
            login, password = unquote(parts.username), unquote(parts.password or "")
        netloc = _host_port(parts.hostname or "", url_port or port)
        base_url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    else:
        scheme = next((s.lower() for s in (schema, conn_type) if s and s.lower() in ("http", "https")), "http")
        # user:pw@host/path: the credentials (up to the last @, as a password may hold a /) go to basic auth, never
        # into the URL or a message
        userinfo, at, rest = host.rpartition("@")
        if at and not login:
            user, _, secret = userinfo.partition(":")
            login, password = unquote(user), unquote(secret)
        name, _, path = (rest if at else host).partition("/")
        hostname, found_port = _split_host_port(name)
        path = path.strip("/")
        base_url = f"{scheme}://{_host_port(hostname, found_port or port)}" + (f"/{path}" if path else "")
    settings: dict[str, Any] = {"base_url": base_url, "auth": None, "headers": {}}
    headers = extra.get("headers") or {}
    if isinstance(headers, str):
        headers = _json_object(headers, "extra['headers']")
    if not isinstance(headers, Mapping):
        raise ConnectorError("the REST connection's extra 'headers' must be an object of header: value")
    settings["headers"] = {str(k): str(v) for k, v in headers.items()}
    token = extra.get("token")
    if token and extra.get("oauth2_token_url"):
        raise ConnectorError("the REST connection's extra sets both 'token' and 'oauth2_token_url': keep one")
    if extra.get("oauth2_token_url"):
        settings["auth"] = ClientCredentials(
            str(extra["oauth2_token_url"]),
            login or "",
            password or "",
            scope=_text(extra.get("oauth2_scope")),
            audience=_text(extra.get("oauth2_audience")),
            client_auth=str(extra.get("oauth2_client_auth") or "basic"),
        )
    elif token:
        settings["headers"]["Authorization"] = f"Bearer {token}"
    elif login:
        settings["auth"] = (login, password or "")
    for name in ("timeout", "retries", "backoff"):
        if extra.get(name) is not None:
            settings[name] = float(extra[name]) if name != "retries" else int(extra[name])
    if extra.get("concurrency") is not None:
        settings["concurrency"] = _concurrency(extra["concurrency"])
    return settings


def _concurrency(value: Any) -> int:
    """extra["concurrency"]: a whole number from 1 to MAX_CONCURRENCY (a number or its text)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_CONCURRENCY:
        raise ConnectorError(
            f"the REST connection's extra 'concurrency' must be a whole number from 1 to {MAX_CONCURRENCY} "
            f"(requests at a time), got {str(value)[:40]!r}"
        )
    return int(text)


# ---------------------------------------------------------------- helpers


def path(endpoint: str, *tail: str) -> str:
    """The path of a request below the base URL: ``/customers`` and, with ``tail``, ``/customers/17`` (each part
    URL-encoded); "" for the base URL itself."""
    head = "/" + endpoint.strip("/") if endpoint.strip("/") else ""
    return head + "".join("/" + quote(part, safe="") for part in tail)


def look_up_path(match: Match, record: dict) -> str:
    """create_or_update: the GET path and query that finds a record in the target, its placeholders filled."""
    return PLACEHOLDER.sub(lambda m: quote(_param_value(_get(record, m[1])), safe=""), match.endpoint)


def write_request(load: Load, key: str, known: str | None = None) -> tuple[str, str]:
    """(method, path) of the request that writes a record whose load key is ``key``: upsert ``PUT endpoint/key``,
    insert ``POST endpoint``; create_or_update with a known destination id ``PUT`` (or ``PATCH``) ``endpoint/id``,
    without one ``POST endpoint`` once load.match has found nothing."""
    endpoint = load.endpoint or ""
    if load.bulk is not None:
        return load.bulk.method.upper(), path(load.bulk.endpoint or endpoint)
    if load.method == "upsert":
        return "PUT", path(endpoint, key)
    if load.method == "create_or_update" and known is not None:
        return (load.update or "put").upper(), path(endpoint, known)
    return "POST", path(endpoint)


def _ties(load: Load, item: _Item) -> Iterator[Hashable]:
    """What a record shares with the records that must be written one after the other with it: its key and, for
    create_or_update, its destination id and its look-up (two records the look-up finds as one)."""
    _, key, record, known = item
    yield ("key", key)
    if load.method == "create_or_update":
        if known is not None:
            yield ("id", known)
        if load.match is not None and all(_get(record, f) not in (None, "") for f in load.match.fields):
            yield ("look-up", look_up_path(load.match, record))


def _lanes(jobs: list[list[_Item]], ties: Callable[[_Item], Iterator[Hashable]]) -> list[list[list[_Item]]]:
    """The jobs in lanes: jobs whose records share a tie (a key, ...) in one lane, in their order; the lanes in the
    order of their first job. Lanes may run side by side."""
    parent = list(range(len(jobs)))

    def root(j: int) -> int:
        while parent[j] != j:
            parent[j] = parent[parent[j]]
            j = parent[j]
        return j

    owner: dict[Hashable, int] = {}
    for j, job in enumerate(jobs):
        for item in job:
            for tie in ties(item):
                if tie in owner:
                    parent[root(j)] = root(owner[tie])
                else:
                    owner[tie] = j
    lanes: dict[int, list[list[_Item]]] = {}
    for j, job in enumerate(jobs):
        lanes.setdefault(root(j), []).append(job)
    return list(lanes.values())


def _nest(path: str | None, rows: list[Any]) -> Any:
    """A bulk request's body: the list itself, or an object holding it at ``path`` (``a.b``: {"a": {"b": [...]}})."""
    if not path:
        return rows
    body: Any = rows
    for part in reversed(path.split(".")):
        body = {part: body}
    return body


def _status(value: Any) -> int | None:
    """An HTTP status from a bulk result (201 or "201"), None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _reason_text(value: Any) -> str:
    """A refused record's message from its bulk result: a text, or the message/reason/error/detail of an object or
    of each item of a list (joined by "; "); "" when there is none."""
    if value in (None, "", [], {}):
        return ""
    if isinstance(value, list):
        return "; ".join(t for t in (_reason_text(v) for v in value) if t)
    if isinstance(value, dict):
        for field in ("message", "reason", "error", "detail", "description"):
            if isinstance(value.get(field), str) and value[field]:
                return value[field]
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _short(text: str) -> str:
    """One line of at most ERROR_TEXT characters (redact first: a cut must not leave a piece of a credential)."""
    text = " ".join(text.split())
    return text if len(text) <= ERROR_TEXT else text[: ERROR_TEXT - 3] + "..."


def _get(data: Any, path: str | None) -> Any:
    """base.dotted for any JSON value: None unless ``data`` is an object."""
    return dotted(data, path) if isinstance(data, dict) else None


def _ok(response: requests.Response) -> bool:
    return 200 <= response.status_code < 300


def _json(response: requests.Response) -> Any:
    """The JSON answer, None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _param_value(value: Any) -> str:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_text(response: requests.Response, redact_: Callable[[str], str] | None = None) -> str:
    """The service's error message: a JSON error/detail/message field, else the body; at most 300 characters.

    ``redact_`` (the connector's redact) is applied to the whole text first: shortening a text that echoes a
    credential must not leave a piece of it."""
    text = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for field in ("error", "detail", "message"):
            value = body.get(field)
            if value not in (None, ""):
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                break
    if not text:
        text = (response.text or "").strip() or (response.reason or "no details")
    if redact_ is not None:
        text = redact_(text)
    text = " ".join(text.split())
    return text if len(text) <= ERROR_TEXT else text[: ERROR_TEXT - 3] + "..."


def connection_secrets(settings: Mapping[str, Any]) -> list[str]:
    """Every form of the credentials in :func:`rest_settings_from_connection`'s settings (password, the basic-auth
    header's base64, token, secret-looking header values; plain, URL-encoded, JSON-escaped), longest first."""
    return _secrets(settings.get("auth"), settings.get("headers") or {})


def _secrets(auth: Any, headers: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    if isinstance(auth, tuple) and len(auth) == 2:
        user, password = (str(x) for x in auth)
        found.append(base64.b64encode(f"{user}:{password}".encode()).decode())
        found.append(password)
    if isinstance(auth, ClientCredentials):  # the client secret, and the tokens fetched so far
        found += auth.secrets()
    for name in ("password", "token"):  # requests auth objects (HTTPBasicAuth, custom bearer auth)
        value = getattr(auth, name, None)
        if isinstance(value, str):
            found.append(value)
    for name, value in headers.items():
        if is_sensitive(str(name)):
            value = str(value)
            found.append(value)
            scheme, _, credential = value.partition(" ")
            if credential and scheme.lower() in ("bearer", "basic", "token"):
                found.append(credential)
    # the longest first, so a secret containing another is replaced whole; short ones would mangle text
    return secret_forms(found)


def _strip_userinfo(url: str) -> str:
    """A valid URL without ``user:password@`` (the URL requests are sent to)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, parts.fragment))


def _shown(url: str) -> str:
    """A URL for a message: without ``user:password@``, also when it cannot be parsed (a password with an
    unescaped ``/`` or ``@`` is cut away whole: everything up to the last ``@`` before the query goes)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, tail = rest[:cut], rest[cut:]
    return f"{scheme}{sep}{head.rpartition('@')[2]}{tail}"


def _split_host_port(text: str) -> tuple[str, int | None]:
    """'host', 'host:8080', '[::1]:8080' or '::1' -> (host, port or None)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if port and not port.isdigit():
        raise ConnectorError(f"the REST connection's host has an invalid port: {text!r}")
    return host, int(port) if port else None


def _host_port(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def _origin(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or default}"


def _same_origin(url: str, base_url: str) -> bool:
    return _origin(url) == _origin(base_url)


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        raise ConnectorError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ConnectorError(f"{what} must be a JSON object")
    return value
