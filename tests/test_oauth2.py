"""OAuth2 client credentials for REST connections, against oauth2-mock-server from the npm registry (the
authorization server, granting one client RS256 JWTs) and a small resource server on loopback that checks each
bearer token's signature with the authorization server's JWKS, and rejects expired, revoked or unsigned tokens."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from flowlink.connectors import oauth2
from flowlink.connectors.base import ConnectorError, Unreachable
from flowlink.connectors.rest import RestSource, RestTarget, connection_secrets, rest_settings_from_connection
from flowlink.spec import Extract, Load, Pagination
from tests.live_server import free_port
from tests.npm_servers import OAuth2Server

CLIENT = "flowlink-sync"
SECRET = "s3cr%t/with:odd=chars&more"  # URL-encoded in the basic-auth header, as RFC 6749 says
SCOPE = "customers:read customers:write"


class ResourceServer:
    """A REST API on loopback that wants a valid bearer token from `jwks_url`'s keys on every request.

    ``revoke_next``: the next request's token is revoked (401 now and later); ``reject_all``: every request gets 401
    with the Authorization header echoed back; ``echo_on_put``: PUT answers 422 with the Authorization header in
    its error text. ``seen``: (method, path, token, status) of every request."""

    def __init__(self, jwks_url: str):
        self.jwks = jwt.PyJWKClient(jwks_url)
        self.customers: dict[str, dict] = {}
        self.seen: list[tuple[str, str, str, int]] = []
        self.claims: list[dict] = []
        self.revoked: set[str] = set()
        self.revoke_next = self.reject_all = self.echo_on_put = False
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())

    def start(self) -> ResourceServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def tokens(self) -> list[str]:
        """The distinct tokens of the requests so far, in the order first seen."""
        return list(dict.fromkeys(token for _, _, token, _ in self.seen))

    def statuses(self) -> list[int]:
        return [status for *_, status in self.seen]

    def check(self, header: str) -> str | None:
        """Why the Authorization header is not accepted; None when it is."""
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if self.reject_all:
            return f"rejected: {header}"
        if not token:
            return "no bearer token"
        try:
            key = self.jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False})
        except jwt.PyJWTError as exc:
            return f"invalid token: {exc}"
        with self.lock:
            if self.revoke_next:
                self.revoke_next = False
                self.revoked.add(token)
            if token in self.revoked:
                return "token revoked"
            self.claims.append(claims)
        return None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body) -> None:
                header = self.headers.get("Authorization", "")
                server.seen.append((self.command, self.path, header.removeprefix("Bearer "), status))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                problem = server.check(self.headers.get("Authorization", ""))
                if problem:
                    return self._answer(401, {"error": problem})
                path = self.path.split("?")[0].rstrip("/")
                if self.command == "GET" and path == "/customers":
                    query = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
                    rows = sorted(server.customers.values(), key=lambda c: int(c["customer_id"]))
                    if "page" in query:
                        size, page = int(query["per_page"]), int(query["page"])
                        rows = rows[(page - 1) * size : page * size]
                    return self._answer(200, rows)
                if self.command == "PUT" and path.startswith("/customers/"):
                    if server.echo_on_put:
                        return self._answer(
                            422, {"error": f"cannot store it; you sent {self.headers['Authorization']}"}
                        )
                    server.customers[path.rsplit("/", 1)[1]] = body
                    return self._answer(200, body)
                if self.command == "POST" and path == "/customers":
                    server.customers[str(body["customer_id"])] = body
                    return self._answer(201, {"id": f"c-{body['customer_id']}", **body})
                return self._answer(404, {"error": "no such resource"})

            do_GET = do_PUT = do_POST = _handle

        return Handler


@pytest.fixture(autouse=True)
def fresh_tokens():
    oauth2.clear_cache()  # the process's token cache: each test starts without tokens
    yield
    oauth2.clear_cache()


@pytest.fixture
def world(tmp_path):
    """start(ttl=..., client=...): the authorization server (granting CLIENT/SECRET tokens living ttl seconds)
    and the resource server; (authz, api)."""
    started: list = []

    def start(ttl: int = 3600) -> tuple[OAuth2Server, ResourceServer]:
        authz = OAuth2Server(tmp_path / f"authz{len(started)}", client=(CLIENT, SECRET), ttl=ttl)
        authz.start()
        started.append(authz)
        api = ResourceServer(f"{authz.url}/jwks").start()
        started.append(api)
        return authz, api

    yield start
    for server in started:
        server.stop()


def settings(api_url: str, token_url: str, secret: str = SECRET, **extra) -> dict:
    """The REST connector's settings from an Airflow connection: login = client id, password = client secret."""
    return rest_settings_from_connection(
        "http", api_url, CLIENT, secret, None, None, {"oauth2_token_url": token_url, "oauth2_scope": SCOPE, **extra}
    )


UPSERT = Load(endpoint="/customers", method="upsert", key="customer_id")
INSERT = Load(endpoint="/customers", method="insert", key="customer_id", id_field="id")


def customers(*ids: int) -> list[dict]:
    return [{"customer_id": str(i), "name": f"Customer {i}"} for i in ids]


@pytest.mark.parametrize("client_auth", ["basic", "body"])
def test_a_source_read_and_a_target_write_share_one_token(world, client_auth):
    """A RestTarget writes 25 customers (one PUT each), a RestSource reads them back in pages of 10, both from the
    same connection settings: one token request for all 28 requests, every token signed by the authorization
    server and carrying the scope; the client authenticates by basic auth or in the form."""
    authz, api = world()
    conn = settings(api.url, authz.token_url, oauth2_client_auth=client_auth)
    with RestTarget(**conn) as target:
        results = target.write(UPSERT, customers(*range(1, 26)))
    assert all(r.ok for r in results) and len(api.customers) == 25
    with RestSource(**settings(api.url, authz.token_url, oauth2_client_auth=client_auth)) as source:
        read = [
            r
            for batch in source.read(
                Extract(endpoint="/customers", key="customer_id", pagination=Pagination(style="page", size=10)),
                batch_size=100,
            )
            for r in batch
        ]
    assert sorted(int(r["customer_id"]) for r in read) == list(range(1, 26))
    assert authz.token_answers() == ["200"]
    assert len(api.seen) == 28 and set(api.statuses()) == {200} and len(api.tokens()) == 1
    assert {c["scope"] for c in api.claims} == {SCOPE} and {c["iss"] for c in api.claims} == {
        f"http://localhost:{authz.port}"
    }


def test_a_token_is_renewed_before_it_expires(world):
    """Tokens live 3 s: the connector fetches a new one once the old one is within a tenth of its lifetime of
    expiring, so the service never sees an expired token."""
    authz, api = world(ttl=3)
    with RestTarget(**settings(api.url, authz.token_url)) as target:
        assert all(r.ok for r in target.write(UPSERT, customers(1, 2, 3)))
        time.sleep(3.2)
        assert all(r.ok for r in target.write(UPSERT, customers(4, 5)))
    assert authz.token_answers() == ["200", "200"]
    tokens = api.tokens()
    assert len(tokens) == 2 and [t for _, _, t, _ in api.seen] == [tokens[0]] * 3 + [tokens[1]] * 2
    assert api.statuses() == [200] * 5  # renewed before the service would have refused it


def test_a_401_gets_a_new_token_and_the_request_is_sent_once_more(world):
    """The service revokes the token in use (answers 401): the connector fetches a new token and sends that request
    once more (a POST too: a refused request was not processed); later requests use the new token."""
    authz, api = world()
    with RestTarget(**settings(api.url, authz.token_url)) as target:
        assert target.write(INSERT, customers(1))[0].ok
        api.revoke_next = True
        [result] = target.write(INSERT, customers(2))
        assert result.ok and result.destination_id == "c-2"
        assert target.write(UPSERT, customers(3))[0].ok
    first, second = api.tokens()
    assert [(m, t, s) for m, _, t, s in api.seen] == [
        ("POST", first, 201),
        ("POST", first, 401),
        ("POST", second, 201),
        ("PUT", second, 200),
    ]
    assert sorted(api.customers) == ["1", "2", "3"]  # customer 2 created once
    assert authz.token_answers() == ["200", "200"]


@pytest.mark.reliability("Security", "A REST service refuses every OAuth2 token and echoes it back")
def test_a_service_refusing_every_token_fails_clearly_without_a_loop_and_no_credential_shows(world, observe):
    """The service answers 401 to every request, with the Authorization header it got in its error text; then it
    accepts tokens but answers a PUT with 422 quoting the header. Searched: every message for the client secret (in
    each of its forms) and for each token issued."""
    authz, api = world()
    api.reject_all = True
    conn = settings(api.url, authz.token_url)
    with RestTarget(**conn) as target, pytest.raises(ConnectorError) as refused:
        target.write(UPSERT, customers(1))
    message = str(refused.value)
    assert "HTTP 401: authentication failed (PUT /customers/1)" in message and "rejected: Bearer ***" in message
    assert authz.token_answers() == ["200", "200"] and len(api.seen) == 2  # one renewal, one more try: no loop

    api.reject_all, api.echo_on_put = False, True
    with RestTarget(**conn) as target:
        [result] = target.write(UPSERT, customers(2))
    assert not result.ok and result.error == "PUT /customers/2: HTTP 422: cannot store it; you sent Bearer ***"
    texts = [message, result.error]
    tokens = api.tokens()
    forms = [*connection_secrets(conn), *tokens]
    assert SECRET in forms and all(t in connection_secrets(conn) for t in tokens)  # what the hook masks in logs
    assert not [t for t in texts for f in [SECRET, *tokens] if f in t]
    observe(
        f"401 to every token: one renewal, then '{message}' (2 token requests, 2 service requests); a 422 "
        f"quoting the header: '{result.error}'; the secret and the {len(tokens)} tokens in no message"
    )


@pytest.mark.reliability("Bad input", "OAuth2: the token endpoint refuses the client (wrong secret)")
@pytest.mark.parametrize("client_auth", ["basic", "body"])
def test_a_wrong_client_secret_is_a_clear_error_without_the_secret(world, observe, client_auth):
    """The connection's password is not the client's secret; the authorization server answers 401 invalid_client."""
    authz, api = world()
    wrong = "not-the-secret-4711"
    with RestSource(**settings(api.url, authz.token_url, secret=wrong, oauth2_client_auth=client_auth)) as source:
        with pytest.raises(ConnectorError) as refused:
            list(source.read(Extract(endpoint="/customers", key="customer_id"), batch_size=10))
    message = str(refused.value)
    assert message == (
        f"OAuth2 token endpoint {authz.token_url} refused client {CLIENT!r}: HTTP 401: invalid_client "
        "(client authentication failed); check the connection's login (client id), password (client "
        "secret) and scope"
    )
    assert not isinstance(refused.value, Unreachable) and wrong not in message and api.seen == []
    observe(f"{client_auth}: '{message}'; the service got no request")


@pytest.mark.reliability("Faults", "OAuth2: the token endpoint is down")
def test_a_token_endpoint_that_is_down_fails_within_the_budget_naming_it(world, monkeypatch, observe):
    """The connection's token URL is a closed loopback port (the authorization server is down);
    FLOWLINK_UNREACHABLE_AFTER is 2 s."""
    _, api = world()
    monkeypatch.setenv("FLOWLINK_UNREACHABLE_AFTER", "2")
    down = f"http://127.0.0.1:{free_port()}/oauth/token"
    started = time.monotonic()
    with RestTarget(**settings(api.url, down)) as target, pytest.raises(Unreachable) as failed:
        target.write(UPSERT, customers(1))
    took = time.monotonic() - started
    message = str(failed.value)
    assert message == (
        f"OAuth2 token endpoint {down}: connection refused; gave up after 2 s (FLOWLINK_UNREACHABLE_AFTER)"
    )
    assert 1.5 < took < 10 and SECRET not in message and api.seen == []
    observe(f"'{message}' after {took:.1f} s; the service got no request")


def test_connection_settings_for_oauth2_are_checked():
    """The connection's fields: a token URL that is not http(s), no client secret, both a static token and OAuth2."""
    with pytest.raises(ConnectorError, match="token URL must be http"):
        settings("http://127.0.0.1:1", "ftp://example.com/token")
    with pytest.raises(ConnectorError, match=r"client secret \(its password\)"):
        rest_settings_from_connection(
            "http", "http://127.0.0.1:1", CLIENT, None, None, None, {"oauth2_token_url": "http://127.0.0.1:2/token"}
        )
    with pytest.raises(ConnectorError, match="both 'token' and 'oauth2_token_url'"):
        settings("http://127.0.0.1:1", "http://127.0.0.1:2/token", token="abc")
    with pytest.raises(ConnectorError, match="'basic' or 'body'"):
        settings("http://127.0.0.1:1", "http://127.0.0.1:2/token", oauth2_client_auth="jwt")


def test_the_hook_builds_oauth2_from_the_documented_connection_and_masks_each_token(world, monkeypatch):
    """The connection as the README's `airflow connections add shop_api --conn-json '...'` gives it (here as
    AIRFLOW_CONN_SHOP_API): ApplicationHook's target writes with OAuth2, and Airflow's log masker hides the client
    secret and every token the connector fetched."""
    from airflow.sdk.log import redact

    from flowlink_airflow.hooks.application import ApplicationHook

    authz, api = world()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHOP_API",
        json.dumps(
            {
                "conn_type": "http",
                "host": api.url,
                "login": CLIENT,
                "password": SECRET,
                "extra": {"oauth2_token_url": authz.token_url, "oauth2_scope": SCOPE},
            }
        ),
    )
    target = ApplicationHook("shop_api", "rest").get_target()
    try:
        assert target.write(UPSERT, customers(1))[0].ok
        api.revoke_next = True
        assert target.write(UPSERT, customers(2))[0].ok
    finally:
        target.close()
    tokens = api.tokens()
    assert len(tokens) == 2 and authz.token_answers() == ["200", "200"]
    line = f"secret {SECRET} first {tokens[0]} second {tokens[1]}"
    assert redact(line) == "secret *** first *** second ***"
