"""OAuth2 client credentials for the REST connector: a ``requests`` auth that sends ``Authorization: Bearer <token>``.

* The token comes from ``POST token_url`` with ``grant_type=client_credentials`` (and ``scope``/``audience`` when
  set); the client authenticates with HTTP basic auth (``client_auth="basic"``, RFC 6749's default; id and secret
  URL-encoded first, as section 2.3.1 says) or with ``client_id``/``client_secret`` in the form
  (``client_auth="body"``).
* The token is cached in the process (shared by every connector with the same token URL, client, secret and
  scope) and fetched again shortly before ``expires_in`` runs out (a tenth of its lifetime before, at most 30 s).
* A request answered 401 gets a new token and is sent once more (also a POST: a refused request was not
  processed); a second 401 is the REST connector's "authentication failed".
* The token endpoint is retried like the service (connection failures for FLOWLINK_UNREACHABLE_AFTER seconds,
  then :class:`Unreachable`; 429/5xx a few times); an answer that refuses the client, or that holds no token, is a
  :class:`ConnectorError` naming the token URL (never the secret or a token) and the server's reason.
* Neither the secret nor a token is logged; :meth:`ClientCredentials.secrets` lists both for redaction, and
  ``on_token`` (set by the Airflow hook) hands each new token to Airflow's secrets masker.

requests-oauthlib does not renew a client-credentials token by itself (its issue #260) and Authlib's renewal of one
has needed fixes (its issues #213, #547); the grant is one POST, so this module does it, and the retry after a 401,
itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from flowlink.connectors.base import ConnectorError, Unreachable
from flowlink.errors import redact, secret_forms
from flowlink.reach import Patience, connect_failed, describe

__all__ = ["ClientCredentials", "clear_cache"]

RENEW_BEFORE = 30.0  # seconds: the most a token is renewed before it expires (a tenth of its lifetime if shorter)
TIMEOUT = (10.0, 30.0)  # seconds: connecting to the token endpoint, waiting for its answer
ERROR_TEXT = 300
log = logging.getLogger(__name__)


@dataclass
class _Token:
    value: str
    renew_at: float | None  # time.monotonic() after which it is fetched again; None: until a 401


_RENEWED: weakref.WeakSet[requests.PreparedRequest] = weakref.WeakSet()  # requests sent again after a 401
_TOKENS: dict[tuple[str, ...], _Token] = {}  # the process's cache: (token URL, client id, secret digest, scope, ...)
_LOCKS: dict[tuple[str, ...], threading.Lock] = {}  # one per cache key: one fetch at a time for each client
_LOCK = threading.Lock()  # guards _LOCKS


class ClientCredentials(requests.auth.AuthBase):
    """Bearer tokens from an OAuth2 token endpoint by the client credentials grant (see the module docstring)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        audience: str | None = None,
        client_auth: str = "basic",
        on_token: Callable[[str], None] | None = None,
    ):
        parts = urlsplit(token_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
            raise ConnectorError(
                "the OAuth2 token URL must be http(s)://host[:port]/path without credentials, "
                f"got {_where(token_url)!r}"
            )
        if not client_id or not client_secret:
            raise ConnectorError(
                "OAuth2 client credentials need the client id (the connection's login) and the "
                "client secret (its password)"
            )
        if client_auth not in ("basic", "body"):
            raise ConnectorError(f"oauth2_client_auth must be 'basic' or 'body', not {client_auth!r}")
        self.token_url = token_url
        self.where = _where(token_url)
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.audience = audience
        self.client_auth = client_auth
        self.on_token = on_token
        digest = hashlib.sha256(client_secret.encode()).hexdigest()
        self._key = (token_url, client_id, digest, scope or "", audience or "", client_auth)
        self._seen: list[str] = []  # every token this auth used: redacted from messages
        self._patience = Patience()
        self._session = requests.Session()
        retry = Retry(
            total=3,
            connect=0,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"POST"}),
            raise_on_status=False,
            respect_retry_after_header=True,
            backoff_max=10,
        )
        self._session.mount("http://", HTTPAdapter(max_retries=retry))
        self._session.mount("https://", HTTPAdapter(max_retries=retry))

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        request.register_hook("response", self._renew_on_401)
        return request

    def __repr__(self) -> str:
        return f"ClientCredentials({self.where!r}, client {self.client_id!r})"

    def secrets(self) -> list[str]:
        """The secret, the basic-auth form of the client's credentials and every token used (for redaction)."""
        return [self.client_secret, self._basic(), *self._seen]

    def _basic(self) -> str:
        """The client's basic-auth credentials: ``base64(urlencode(id) ":" urlencode(secret))`` (RFC 6749 2.3.1)."""
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
        return base64.b64encode(pair.encode()).decode()

    def token(self, *, rejected: str | None = None) -> str:
        """The cached token while it is fresh, else a new one; ``rejected``: a token the service answered 401 to
        (renewed unless another request has renewed it already)."""
        with _LOCK:
            lock = _LOCKS.setdefault(self._key, threading.Lock())
        with lock:
            cached = _TOKENS.get(self._key)
            if (
                cached is None
                or cached.value == rejected
                or (cached.renew_at is not None and time.monotonic() >= cached.renew_at)
            ):
                cached = _TOKENS[self._key] = self._fetch()
            if cached.value not in self._seen:  # new to this connector: redact it, and have it masked in logs
                self._seen.append(cached.value)
                if self.on_token is not None:
                    self.on_token(cached.value)
            return cached.value

    def _renew_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or response.request in _RENEWED:
            return response
        used = (response.request.headers.get("Authorization") or "").removeprefix("Bearer ")
        response.content  # noqa: B018 - read the answer, so its connection can be reused
        response.close()
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {self.token(rejected=used)}"
        _RENEWED.add(retry)  # once: a second 401 is the service's answer
        log.info("%s answered 401: sent again with a new OAuth2 token", retry.method)
        again = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again

    def _fetch(self) -> _Token:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        headers = {"Accept": "application/json"}
        if self.client_auth == "body":
            form.update(client_id=self.client_id, client_secret=self.client_secret)
        else:
            headers["Authorization"] = f"Basic {self._basic()}"
        while True:
            started = time.monotonic()
            try:
                response = self._session.post(self.token_url, data=form, headers=headers, timeout=TIMEOUT)
                break
            except requests.RequestException as exc:
                if not connect_failed(exc):
                    raise ConnectorError(f"OAuth2 token endpoint {self.where}: {describe(exc)}") from None
                wait = self._patience.failed(started)
                if wait is None:
                    raise Unreachable(
                        f"OAuth2 token endpoint {self.where}: {describe(exc)}; {self._patience.gave_up()}"
                    ) from None
                time.sleep(wait)
        self._patience.connected()
        body = _json(response)
        if response.status_code != 200:
            answer = f"HTTP {response.status_code}: {_reason(body, response, self._redact)}"
            if response.status_code in (400, 401, 403):
                raise ConnectorError(
                    f"OAuth2 token endpoint {self.where} refused client {self.client_id!r}: {answer}; "
                    "check the connection's login (client id), password (client secret) and scope"
                )
            raise ConnectorError(f"OAuth2 token endpoint {self.where}: {answer}")
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectorError(f"OAuth2 token endpoint {self.where}: the answer holds no access_token")
        kind = str(body.get("token_type") or "bearer")
        if kind.lower() != "bearer":
            raise ConnectorError(
                f"OAuth2 token endpoint {self.where}: token type {kind[:40]!r} is not supported (only bearer tokens)"
            )
        try:
            lifetime = float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            lifetime = None
        if lifetime is not None and not 0 < lifetime < math.inf:
            lifetime = None  # no usable lifetime: the token is kept until a 401
        # counted from when the token was asked for, so it is renewed before the server's clock says it expired
        renew_at = None if lifetime is None else started + lifetime - min(RENEW_BEFORE, lifetime / 10)
        log.info(
            "fetched an OAuth2 token from %s for client %r%s",
            self.where,
            self.client_id,
            "" if lifetime is None else f" (expires in {lifetime:g} s)",
        )
        return _Token(token, renew_at)

    def _redact(self, text: str) -> str:
        return redact(text, secret_forms(self.secrets()))


def clear_cache() -> None:
    """Forget every cached token (the next request of each connector fetches a new one)."""
    with _LOCK:
        _TOKENS.clear()


def _where(url: str) -> str:
    """The token URL for a message: scheme, host, port and path (no credentials, no query)."""
    try:
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    except ValueError:
        return "(an invalid URL)"


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _reason(body: Any, response: requests.Response, redact_: Callable[[str], str]) -> str:
    """RFC 6749's error and error_description, else the body's text; redacted whole, then one line of at most 300
    characters."""
    if isinstance(body, dict) and body.get("error"):
        text = str(body["error"])
        if body.get("error_description"):
            text += f" ({body['error_description']})"
    elif isinstance(body, dict):
        text = json.dumps(body, ensure_ascii=False)
    else:
        text = (response.text or "").strip() or (response.reason or "no details")
    text = " ".join(redact_(text).split())
    return text if len(text) <= ERROR_TEXT else text[: ERROR_TEXT - 3] + "..."
