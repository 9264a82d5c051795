"""The REST connector: read records from, and write records to, a JSON HTTP API.

Built on ``requests`` with one :class:`requests.Session` per connector and urllib3
retries:

* GET/PUT/DELETE are retried on 429 and on 5xx (except 501 Not Implemented and
  505 HTTP Version Not Supported, which a retry cannot fix); POST, which is not
  idempotent, only on 429 and 503 (the request was refused, not processed).
* Connection failures (refused, DNS, connect timeout) are retried for every
  method: the request never reached the service. A read timeout or a dropped
  connection after the request was sent is retried for GET/PUT/DELETE, never for
  POST (the record may have been created).
* Waits grow exponentially (urllib3's schedule: no wait before the first retry,
  then ``backoff * 2 ** (n - 1)`` seconds, at most 120 s); a ``Retry-After``
  header (seconds or HTTP date) is honoured instead, capped at 120 s.

Reading (``GET base_url + endpoint``):

* ``extract.filter`` is a query string (``status=active&country=DE``) whose
  parameters are sent as they are.
* ``since`` is sent as ``?{incremental}__gt={since}`` (``updated_at__gt=...``,
  the Django/REST-framework convention). The connector then filters and orders
  client-side as well, so a service that ignores the parameter still gives the
  right records: only records whose incremental value is greater than ``since``
  (records without a value are left out, as SQL's ``>`` would), ordered by the
  incremental field, then by the key. Numbers, numeric strings and ISO 8601
  date-times are compared as what they are, not as text.
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
* Records are de-duplicated by key (the last copy wins), so a record that moves
  between pages while reading is not yielded twice. All pages are read before
  the first batch is yielded (the order is global).
* A record without a key, a non-2xx answer, or a body that is not what
  ``records_path`` says raises :class:`ConnectorError`.

Writing (one HTTP request per record, in order):

* ``upsert``: ``PUT {endpoint}/{key}`` (key URL-encoded) with the record as JSON;
  ``insert``: ``POST {endpoint}``.
* 2xx: ``ok``; ``destination_id`` is ``response[id_field]`` when ``id_field`` is
  set and present in the JSON answer, else the key.
* Any other status after retries: ``ok=False`` and ``error="HTTP 422: <text>"``,
  the text being the JSON ``error``/``detail``/``message`` field when there is
  one, else the body; at most 300 characters.
* 401/407 (bad credentials) and connection problems after retries raise
  :class:`ConnectorError`: the whole application is unreachable.

Credentials (password, token, secret-looking headers, the basic-auth header) are
replaced by ``***`` in every error message, including text a service echoes back,
plain, URL-encoded or JSON-escaped (flowlink.errors.secret_forms); a service's text
is redacted before it is shortened, so no piece of a credential is left either.
Credentials written into the host (``http://user:pw@host``, or ``user:pw@host``
without a scheme) are moved out of the URL before anything else sees it.
:func:`connection_secrets` lists them all (the Airflow hook hands them to Airflow's
secrets masker).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    InvalidHeader,
    NameResolutionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from flowlink.connectors.base import ConnectorError, WriteResult, json_safe
from flowlink.errors import redact, secret_forms
from flowlink.spec import Extract, Load

__all__ = ["RestSource", "RestTarget", "connection_secrets", "rest_settings_from_connection"]

USER_AGENT = "flowlink/0.1"
MAX_WAIT = 120.0  # seconds: the longest backoff or Retry-After wait
MAX_PAGES = 100_000
ERROR_TEXT = 300  # characters of a service's error text kept in WriteResult.error
_SECRET_HEADER = re.compile(r"auth|token|key|secret|password|cookie|session|signature", re.I)


class _Retry(Retry):
    """urllib3 Retry with per-method status codes: POST only on 429/503."""

    IDEMPOTENT_STATUS = frozenset({429, *range(500, 600)} - {501, 505})
    POST_STATUS = frozenset({429, 503})

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() == "POST":
            return status_code in self.POST_STATUS
        return self._is_method_retryable(method) and status_code in self.IDEMPOTENT_STATUS

    def get_retry_after(self, response: Any) -> float | None:
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:  # an unparsable Retry-After: fall back to the backoff
            return None
        return None if seconds is None else min(seconds, self.backoff_max)


class _RestClient:
    """What RestSource and RestTarget share: the session, retries, URLs and error texts."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | requests.auth.AuthBase | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] = 30,
        retries: int = 5,
        backoff: float = 0.5,
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
        self.timeout = timeout
        self.retries = retries
        self._secrets = _secrets(auth, headers or {})
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        self.session.headers.update({str(k): str(v) for k, v in (headers or {}).items()})
        retry = _Retry(
            total=retries,
            backoff_factor=backoff,
            backoff_max=MAX_WAIT,
            respect_retry_after_header=True,
            raise_on_status=False,  # after the last retry, hand back the last response
        )
        adapter = HTTPAdapter(max_retries=retry)
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
        path = "/" + endpoint.strip("/") if endpoint.strip("/") else ""
        return self.base_url + path + "".join("/" + quote(part, safe="") for part in tail)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request (with retries); raise ConnectorError when the service cannot be reached."""
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            reason = _describe(exc)
            where = f"{method} {self._path(url)}"
            raise ConnectorError(self.redact(f"{self.base_url}: {reason} ({where}, retries: {self.retries})")) from exc
        if response.status_code in (401, 407):
            raise ConnectorError(
                self.redact(f"{self.base_url}: HTTP {response.status_code}: authentication failed "
                            f"({method} {self._path(url)}); check the connection's login, password or token: "
                            f"{_error_text(response, self.redact)}")
            )
        return response

    def redact(self, text: str) -> str:
        """``text`` with every form of this connector's credentials replaced by ``***``."""
        return redact(text, self._secrets)

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
    ) -> Iterator[list[dict]]:
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

        low = _order_key(since) if since is not None else None
        seen: set[str] = set()  # keys only: memory stays flat however many pages there are
        batch: list[dict] = []
        for page in self._pages(extract, params):
            for record in self._page_order(page, extract):
                key = str(_get(record, extract.key))
                if key in seen or (wanted is not None and key not in wanted):
                    continue
                if low is not None:
                    value = _get(record, extract.incremental)
                    if value is None or _order_key(value) <= low:
                        continue
                seen.add(key)
                batch.append(record)
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

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
            present.sort(key=lambda r: (_order_key(_get(r, extract.incremental)), _order_key(_get(r, extract.key))))
            return missing + present  # no value first, as SQL orders NULLs
        return sorted(page, key=lambda r: _order_key(_get(r, extract.key)))

    def _pages(self, extract: Extract, params: list[tuple[str, str]]) -> Iterator[list[dict]]:
        url = self.url(extract.endpoint or "")
        pagination = extract.pagination
        if pagination is None:
            yield self._get_records(extract, url, params)[0]
            return
        if pagination.style == "page":
            previous: list[dict] | None = None
            for number in range(1, MAX_PAGES + 1):
                page_params = params + [(pagination.page_param, str(number)), (pagination.size_param, str(pagination.size))]
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
                raise ConnectorError(f"GET {extract.endpoint}: {pagination.next_field!r} is not a URL: {following!r}"[:400])
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
            raise ConnectorError(self.redact(f"{self.base_url}: {where}: HTTP {response.status_code}: "
                                             f"{_error_text(response, self.redact)}"))
        try:
            body = response.json()
        except ValueError:
            raise ConnectorError(f"{where}: the answer is not JSON ({response.headers.get('Content-Type', 'no content type')})") from None
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


class RestTarget(_RestClient):
    """Writes records to ``base_url + load.endpoint``: PUT {endpoint}/{key} (upsert) or POST {endpoint} (insert)."""

    def write(self, load: Load, records: list[dict]) -> list[WriteResult]:
        """One request and one WriteResult per record, in order (see the module docstring)."""
        if not load.endpoint:
            raise ConnectorError("a REST target writes an endpoint (load.endpoint)")
        return [self._write_one(load, record) for record in records]

    def _write_one(self, load: Load, record: dict) -> WriteResult:
        key = _get(record, load.key)
        if key is None or key == "":
            return WriteResult(key="", ok=False, error=f"the record has no value for the key field {load.key!r}")
        key = str(key)
        try:
            body = json.dumps(json_safe(record), ensure_ascii=False).encode("utf-8")
        except ConnectorError as exc:
            return WriteResult(key=key, ok=False, error=str(exc))
        if load.method == "upsert":
            method, url = "PUT", self.url(load.endpoint or "", key)
        else:
            method, url = "POST", self.url(load.endpoint or "")
        response = self.request(method, url, data=body, headers={"Content-Type": "application/json"})
        if 200 <= response.status_code < 300:
            destination = key
            if load.id_field:
                try:
                    answer = response.json()
                except ValueError:
                    answer = None
                value = _get(answer, load.id_field) if isinstance(answer, dict) else None
                if value is not None:
                    destination = str(value)
            return WriteResult(key=key, ok=True, destination_id=destination)
        return WriteResult(key=key, ok=False,
                           error=self.redact(f"HTTP {response.status_code}: {_error_text(response, self.redact)}"))


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
    * ``extra["headers"]`` (a dict, or a JSON object as text) -> extra headers.
    * ``extra["timeout"]``, ``extra["retries"]``, ``extra["backoff"]`` are passed on when given.

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
        netloc = _host_port(parts.hostname, url_port or port)
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
    if token:
        settings["headers"]["Authorization"] = f"Bearer {token}"
    elif login:
        settings["auth"] = (login, password or "")
    for name in ("timeout", "retries", "backoff"):
        if extra.get(name) is not None:
            settings[name] = float(extra[name]) if name != "retries" else int(extra[name])
    return settings


# ---------------------------------------------------------------- helpers


def _get(data: Any, path: str) -> Any:
    """data[path], else the dotted path (``meta.updated_at``) through nested objects; None when missing."""
    if not isinstance(data, dict):
        return None
    if path in data:
        return data[path]
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _order_key(value: Any) -> tuple[int, Any]:
    """A sort/compare key: None < numbers < date-times < text < anything else; each compared as what it is."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, dt.datetime):
        return (2, value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc))
    if isinstance(value, dt.date):
        return (2, dt.datetime.combine(value, dt.time(), dt.timezone.utc))
    if isinstance(value, str):
        text = value.strip()
        if _INT.fullmatch(text):
            return (1, int(text))
        if _FLOAT.fullmatch(text):
            return (1, float(text))
        if _DATE.match(text):
            try:
                moment = dt.datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                return (2, moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc))
        return (3, value)
    return (4, json.dumps(value, sort_keys=True, default=str))


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
    return text if len(text) <= ERROR_TEXT else text[:ERROR_TEXT - 3] + "..."


def _describe(exc: BaseException) -> str:
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
    error = next((e for e in chain if isinstance(e, OSError) and e.strerror), None)
    if error is not None:
        return f"cannot connect: {error.strerror.lower()}"
    if has(requests.exceptions.InvalidURL, requests.exceptions.MissingSchema):
        return "invalid URL"
    return f"cannot connect ({type(exc).__name__})"


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
    for name in ("password", "token"):  # requests auth objects (HTTPBasicAuth, custom bearer auth)
        value = getattr(auth, name, None)
        if isinstance(value, str):
            found.append(value)
    for name, value in headers.items():
        if _SECRET_HEADER.search(str(name)):
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


def _json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        raise ConnectorError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ConnectorError(f"{what} must be a JSON object")
    return value
