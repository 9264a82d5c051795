"""The REST connector against real HTTP servers on 127.0.0.1: the demo shop and tiny test servers. No mocks."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from examples.demo_shop import DemoShop
from flowlink.connectors.base import ConnectorError, Source, Target, WriteResult
from flowlink.connectors.rest import RestSource, RestTarget, rest_settings_from_connection
from flowlink.spec import Extract, Load, Pagination

FAST = {"retries": 2, "backoff": 0.01}
PASSWORD = "s3cret-Pa55word"
TOKEN = "tok-0123456789abcdef"


# ---------------------------------------------------------------- helpers


class Tiny:
    """A tiny HTTP server: ``handler(request) -> (status, headers, body)``; records every request."""

    def __init__(self, handler: Callable[[dict], tuple[int, dict, object]]):
        self.handler = handler
        self.requests: list[dict] = []
        tiny = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                request = {
                    "method": self.command,
                    "path": url.path,
                    "query": parse_qsl(url.query, keep_blank_values=True),
                    "headers": dict(self.headers),
                    "body": json.loads(body) if body else None,
                    "host": self.headers.get("Host"),
                }
                tiny.requests.append(request)
                status, headers, answer = tiny.handler(request)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _any

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # a client that timed out and hung up

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Tiny:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shop():
    shop = DemoShop()
    shop.start()
    yield shop
    shop.stop()


def seed_customers(shop: DemoShop, n: int) -> None:
    """Customers 1..n through the shop's own API; updated_at decreases with the id (so order by it differs)."""
    for i in range(1, n + 1):
        body = {
            "customer_id": i,
            "email": f"c{i}@example.com",
            "country": "DE" if i % 3 == 0 else "FR",
            "updated_at": f"2024-01-{31 - i:02d}T10:00:00Z",
        }
        assert requests.put(f"{shop.url}/customers/{i}", json=body, timeout=5).status_code == 201


def customers_extract(**kwargs) -> Extract:
    return Extract(endpoint="/customers", key="customer_id", records_path="records", **kwargs)


def keys(batches: list[list[dict]], field: str = "customer_id") -> list:
    return [r[field] for batch in batches for r in batch]


def test_protocols():
    assert isinstance(RestSource("http://127.0.0.1:1"), Source)
    assert isinstance(RestTarget("http://127.0.0.1:1"), Target)


# ---------------------------------------------------------------- reading


def test_read_page_pagination(shop):
    seed_customers(shop, 23)
    with RestSource(shop.url) as source:
        batches = list(source.read(customers_extract(pagination=Pagination(style="page", size=5)), batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 3]
    assert keys(batches) == list(range(1, 24))  # ordered by key (no incremental)


def test_read_next_pagination(shop):
    seed_customers(shop, 9)
    extract = customers_extract(pagination=Pagination(style="next", size=4))
    with RestSource(shop.url) as source:
        assert keys(list(source.read(extract, batch_size=100))) == list(range(1, 10))


def test_read_without_pagination_plain_list_and_dotted_records_path():
    answers = {"/plain": [{"id": 2}, {"id": 1}], "/nested": {"data": {"items": [{"id": "b"}, {"id": "a"}]}}}
    with Tiny(lambda r: (200, {"Content-Type": "application/json"}, answers[r["path"]])) as tiny:
        with RestSource(tiny.url) as source:
            assert keys(list(source.read(Extract(endpoint="/plain", key="id"), batch_size=5)), "id") == [1, 2]
            nested = Extract(endpoint="nested", key="id", records_path="data.items")
            assert keys(list(source.read(nested, batch_size=5)), "id") == ["a", "b"]
            with pytest.raises(ConnectorError, match="records_path"):
                list(source.read(Extract(endpoint="/nested", key="id"), batch_size=5))


def test_read_filter_is_sent_as_query_parameters(shop):
    seed_customers(shop, 10)
    with RestSource(shop.url) as source:
        batches = list(
            source.read(customers_extract(filter="country=DE", pagination=Pagination(size=2)), batch_size=50)
        )
    assert keys(batches) == [3, 6, 9]


def test_read_incremental_since_against_the_shop(shop):
    seed_customers(shop, 12)  # customer i has updated_at 2024-01-(31-i)
    extract = customers_extract(incremental="updated_at", pagination=Pagination(size=5))
    with RestSource(shop.url) as source:
        batches = list(source.read(extract, since="2024-01-25T10:00:00Z", batch_size=2))
        everything = list(source.read(extract, batch_size=100))
    assert keys(batches) == [5, 4, 3, 2, 1]  # newer than since, oldest first (all on the first page)
    # Page by page (memory stays flat): each page of 5 oldest first, pages in the service's order.
    assert keys(everything) == [5, 4, 3, 2, 1, 10, 9, 8, 7, 6, 12, 11]


def test_read_incremental_when_the_service_ignores_the_parameter():
    records = [
        {"id": 3, "changed": "2024-05-01T00:00:00+02:00"},  # = 2024-04-30T22:00Z
        {"id": 1, "changed": "2024-05-01T00:00:00Z"},
        {"id": 2, "changed": "2024-04-30T23:00:00Z"},
        {"id": 4, "changed": "2024-04-01T00:00:00Z"},
        {"id": 5, "changed": None},
        {"id": 0, "changed": "2024-05-01T00:00:00Z"},
    ]
    with Tiny(lambda r: (200, {}, records)) as tiny:
        with RestSource(tiny.url) as source:
            got = list(
                source.read(
                    Extract(endpoint="/items", key="id", incremental="changed"),
                    since="2024-04-30T21:00:00Z",
                    batch_size=10,
                )
            )
        assert ("changed__gt", "2024-04-30T21:00:00Z") in tiny.requests[0]["query"]
    # compared as times (not text), the record without a value left out, ordered by time then key
    assert keys(got, "id") == [3, 2, 0, 1]
    with Tiny(lambda r: (200, {}, records)) as tiny, RestSource(tiny.url) as source:
        everything = list(
            source.read(Extract(endpoint="/items", key="id", incremental="changed"), since="", batch_size=10)
        )
        assert tiny.requests[0]["query"] == []  # an empty since is no since
    assert keys(everything, "id") == [5, 4, 3, 2, 0, 1]  # no value first, as SQL orders NULLs


def test_read_numeric_incremental_and_keys_compare_as_numbers():
    records = [{"no": str(i), "version": str(v)} for i, v in [(10, 9), (9, 10), (2, 100), (11, 100)]]
    with Tiny(lambda r: (200, {}, records)) as tiny, RestSource(tiny.url) as source:
        got = list(source.read(Extract(endpoint="/x", key="no", incremental="version"), since=9, batch_size=10))
    assert keys(got, "no") == ["9", "2", "11"]


def test_newest_reads_every_page_and_keeps_the_newest(shop):
    seed_customers(shop, 12)  # customer i has updated_at 2024-01-(31-i): the lowest ids are the newest
    extract = customers_extract(incremental="updated_at", pagination=Pagination(size=5))
    with RestSource(shop.url) as source:
        assert keys([source.newest(extract, 3)]) == [1, 2, 3]  # newest first, across the three pages
        assert keys([source.newest(extract, 100)]) == list(range(1, 13))
        assert keys([source.newest(customers_extract(pagination=Pagination(size=5)), 3)]) == [1, 2, 3]  # by key


def test_newest_without_incremental_stops_reading_at_the_limit():
    pages = {"1": [{"id": 2}, {"id": 1}], "2": [{"id": 3}, {"id": 4}], "3": [{"id": 5}]}
    with Tiny(lambda r: (200, {}, pages.get(dict(r["query"]).get("page", ""), []))) as tiny:
        with RestSource(tiny.url) as source:
            got = source.newest(Extract(endpoint="/x", key="id", pagination=Pagination(size=2)), 3)
        assert keys([got], "id") == [1, 2, 3]
        assert [dict(r["query"])["page"] for r in tiny.requests] == ["1", "2"]  # the third page is not asked for


def test_read_ids(shop):
    seed_customers(shop, 15)
    extract = customers_extract(incremental="updated_at", pagination=Pagination(size=4))
    with RestSource(shop.url) as source:
        # since is ignored with ids: customer 14 is older than since but asked for
        got = list(source.read(extract, ids=["14", "3", "99"], since="2024-01-25T00:00:00Z", batch_size=10))
        assert sorted(keys(got)) == [3, 14]
        assert list(source.read(extract, ids=[], batch_size=10)) == []


def test_read_empty_ids_sends_no_request():
    with Tiny(lambda r: (200, {}, [])) as tiny, RestSource(tiny.url) as source:
        assert list(source.read(Extract(endpoint="/x", key="id"), ids=[], batch_size=10)) == []
        assert tiny.requests == []


def test_read_page_pagination_stops_when_the_service_ignores_the_page_parameter():
    records = [{"id": i} for i in range(1, 4)]
    with Tiny(lambda r: (200, {}, records)) as tiny, RestSource(tiny.url) as source:
        got = list(source.read(Extract(endpoint="/x", key="id", pagination=Pagination(size=3)), batch_size=10))
        assert keys(got, "id") == [1, 2, 3]
        assert len(tiny.requests) == 2
        assert dict(tiny.requests[0]["query"]) == {"page": "1", "per_page": "3"}


def test_read_next_page_on_another_server_is_refused():
    def handler(request):
        return 200, {}, {"records": [{"id": 1}], "next": "http://evil.example:8000/steal?page=2"}

    with Tiny(handler) as tiny, RestSource(tiny.url, auth=("user", PASSWORD)) as source:
        extract = Extract(endpoint="/x", key="id", records_path="records", pagination=Pagination(style="next"))
        with pytest.raises(ConnectorError, match="another server") as err:
            list(source.read(extract, batch_size=10))
    assert PASSWORD not in str(err.value)


def test_read_errors_raise_connector_error():
    def handler(request):
        if request["path"] == "/nokey":
            return 200, {}, [{"name": "x"}]
        if request["path"] == "/html":
            return 200, {"Content-Type": "text/html"}, b"<html>hi</html>"
        return 404, {}, {"detail": "no such endpoint"}

    with Tiny(handler) as tiny, RestSource(tiny.url, **FAST) as source:
        with pytest.raises(ConnectorError, match="HTTP 404: no such endpoint"):
            list(source.read(Extract(endpoint="/missing", key="id"), batch_size=10))
        with pytest.raises(ConnectorError, match="no key field 'id'"):
            list(source.read(Extract(endpoint="/nokey", key="id"), batch_size=10))
        with pytest.raises(ConnectorError, match="not JSON"):
            list(source.read(Extract(endpoint="/html", key="id"), batch_size=10))


# ---------------------------------------------------------------- writing


def test_upsert_twice_gives_no_duplicates(shop):
    target = RestTarget(shop.url)
    load = Load(endpoint="/customers", key="customer_id")
    record = {"customer_id": 7, "name": "Ann", "email": "ann@example.com"}
    assert target.write(load, [record]) == [WriteResult(key="7", ok=True, destination_id="7")]
    assert target.write(load, [{**record, "name": "Anne"}])[0].ok
    assert shop.writes("customers") == {"7": 2}
    assert shop.records("customers") == {"7": {"customer_id": 7, "name": "Anne", "email": "ann@example.com", "id": "7"}}
    stats = requests.get(f"{shop.url}/_admin/stats", timeout=5).json()
    assert stats["writes"]["customers"] == {"total": 2, "ids": {"7": 2}} and stats["records"]["customers"] == 1
    target.close()
    target.close()  # twice is fine


def test_insert_conflict_is_a_failed_record(shop):
    load = Load(endpoint="/customers", key="customer_id", method="insert", id_field="id")
    with RestTarget(shop.url, **FAST) as target:
        first = target.write(load, [{"customer_id": "c1", "email": "a@b.c"}])
        again = target.write(load, [{"customer_id": "c1", "email": "a@b.c"}, {"customer_id": "c2", "email": "b@b.c"}])
    assert first == [WriteResult(key="c1", ok=True, destination_id="c1")]
    assert again[0] == WriteResult(
        key="c1", ok=False, exists=True, error="POST /customers: HTTP 409: customer_id: customer c1 already exists"
    )
    assert again[1].ok
    assert shop.writes("customers") == {"c1": 2, "c2": 1}  # the POST was not retried


def test_rejected_record_fails_alone_with_the_shops_message(shop):
    shop.reject("customers", ["2"], status=422, message="name: too long for the shop")
    records = [{"customer_id": i, "email": f"c{i}@example.com"} for i in (1, 2, 3)]
    records.append({"customer_id": 4, "email": "not-an-email"})
    with RestTarget(shop.url, **FAST) as target:
        results = target.write(Load(endpoint="/customers", key="customer_id"), records)
    assert [r.ok for r in results] == [True, False, True, False]
    assert results[1] == WriteResult(key="2", ok=False, error="PUT /customers/2: HTTP 422: name: too long for the shop")
    assert results[3].error == "PUT /customers/4: HTTP 422: email: not a valid address"
    assert not any(r.exists for r in results)  # a refused upsert is not an existing key
    assert sorted(shop.records("customers")) == ["1", "3"]
    assert shop.writes("customers") == {"1": 1, "2": 1, "3": 1, "4": 1}


def test_order_for_unknown_customer_fails(shop):
    with RestTarget(shop.url, **FAST) as target:
        result = target.write(Load(endpoint="orders", key="order_id"), [{"order_id": 1, "customer_id": 123}])
    assert result == [
        WriteResult(key="1", ok=False, error="PUT /orders/1: HTTP 422: customer_id: unknown customer 123")
    ]


def test_destination_id_from_the_answer():
    with Tiny(lambda r: (201, {}, {"uid": "X-" + str(r["body"]["k"])})) as tiny, RestTarget(tiny.url) as target:
        results = target.write(Load(endpoint="/things/", key="k", id_field="uid"), [{"k": "a/b c"}])
        plain = target.write(Load(endpoint="/things", key="k", id_field="missing"), [{"k": 5}])
        assert [r["path"] for r in tiny.requests] == ["/things/a%2Fb%20c", "/things/5"]
        assert tiny.requests[0]["body"] == {"k": "a/b c"}
        assert tiny.requests[0]["headers"]["Content-Type"] == "application/json"
    assert results == [WriteResult(key="a/b c", ok=True, destination_id="X-a/b c")]
    assert plain == [WriteResult(key="5", ok=True, destination_id="5")]


def test_record_without_key_fails_alone():
    with Tiny(lambda r: (200, {}, {})) as tiny, RestTarget(tiny.url) as target:
        results = target.write(Load(endpoint="/x", key="k"), [{"other": 1}, {"k": 2}])
    assert results[0].ok is False and "key field 'k'" in results[0].error
    assert results[1].ok and len(tiny.requests) == 1


def test_error_text_prefers_json_fields_and_is_short():
    answers = {
        "1": (400, {}, {"detail": [{"loc": ["name"], "msg": "required"}]}),
        "2": (400, {}, {"message": "bad thing", "code": 17}),
        "3": (418, {"Content-Type": "text/plain"}, b"I'm a teapot " * 100),
    }
    with Tiny(lambda r: answers[r["path"].rsplit("/", 1)[1]]) as tiny, RestTarget(tiny.url) as target:
        results = target.write(Load(endpoint="/x", key="k"), [{"k": 1}, {"k": 2}, {"k": 3}])
    assert results[0].error == 'PUT /x/1: HTTP 400: [{"loc": ["name"], "msg": "required"}]'
    assert results[1].error == "PUT /x/2: HTTP 400: bad thing"
    assert results[2].error.startswith("PUT /x/3: HTTP 418: I'm a teapot I'm a teapot")
    assert len(results[2].error) <= len("PUT /x/3: HTTP 418: ") + 300


# ---------------------------------------------------------------- retries


def flaky(failures: list[tuple[int, dict]]):
    """A handler answering the given (status, headers) first, then 200."""

    def handler(request):
        if failures:
            status, headers = failures.pop(0)
            return status, headers, {"error": f"try later ({status})"}
        return 200, {}, {"ok": True}

    return handler


def test_retry_503_twice_then_ok():
    with Tiny(flaky([(503, {}), (503, {})])) as tiny, RestTarget(tiny.url, retries=3, backoff=0.01) as target:
        assert target.write(Load(endpoint="/x", key="k"), [{"k": 1}])[0].ok
        assert len(tiny.requests) == 3


def test_429_with_retry_after_is_retried_for_put_and_post():
    with Tiny(flaky([(429, {"Retry-After": "0"}), (429, {"Retry-After": "0"})])) as tiny:
        with RestTarget(tiny.url, retries=3, backoff=0.01) as target:
            started = time.monotonic()
            assert target.write(Load(endpoint="/x", key="k", method="insert"), [{"k": 1}])[0].ok
            assert len(tiny.requests) == 3 and time.monotonic() - started < 2
            tiny.handler = flaky([(429, {"Retry-After": "0"})])
            assert target.write(Load(endpoint="/x", key="k"), [{"k": 1}])[0].ok
            assert len(tiny.requests) == 5


def test_retry_after_seconds_are_honoured():
    with Tiny(flaky([(503, {"Retry-After": "1"})])) as tiny, RestTarget(tiny.url, retries=2, backoff=0) as target:
        started = time.monotonic()
        assert target.write(Load(endpoint="/x", key="k"), [{"k": 1}])[0].ok
        assert time.monotonic() - started >= 0.9


def test_post_is_not_retried_on_500_but_put_is():
    with Tiny(lambda r: (500, {}, {"error": "boom"})) as tiny, RestTarget(tiny.url, **FAST) as target:
        assert target.write(Load(endpoint="/x", key="k", method="insert"), [{"k": 1}]) == [
            WriteResult(key="1", ok=False, error="POST /x: HTTP 500: boom")
        ]
        assert [r["method"] for r in tiny.requests] == ["POST"]
        result = target.write(Load(endpoint="/x", key="k"), [{"k": 1}])[0]
        assert result.ok is False and result.error == "PUT /x/1: HTTP 500: boom"
        assert [r["method"] for r in tiny.requests] == ["POST", "PUT", "PUT", "PUT"]  # 1 + 2 retries


def test_post_is_retried_on_503():
    with Tiny(flaky([(503, {})])) as tiny, RestTarget(tiny.url, **FAST) as target:
        assert target.write(Load(endpoint="/x", key="k", method="insert"), [{"k": 1}])[0].ok
        assert len(tiny.requests) == 2


def test_get_is_retried_on_502():
    def handler(request):
        return (502, {}, {"error": "gateway"}) if len(tiny.requests) == 1 else (200, {}, [{"id": 1}])

    with Tiny(handler) as tiny, RestSource(tiny.url, **FAST) as source:
        assert keys(list(source.read(Extract(endpoint="/x", key="id"), batch_size=5)), "id") == [1]
        assert len(tiny.requests) == 2


def test_connection_refused_is_a_connector_error_quickly():
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with RestTarget(url, auth=("user", PASSWORD), **FAST) as target:
        with pytest.raises(ConnectorError, match="connection refused") as err:
            target.write(Load(endpoint="/x", key="k"), [{"k": 1}])
    with RestSource(url, headers={"Authorization": f"Bearer {TOKEN}"}, **FAST) as source:
        with pytest.raises(ConnectorError, match="connection refused") as err2:
            list(source.read(Extract(endpoint="/x", key="k"), batch_size=5))
    assert time.monotonic() - started < 5
    for text in (str(err.value), str(err2.value)):
        assert PASSWORD not in text and TOKEN not in text


def test_timeout_is_a_connector_error():
    def slow(request):
        time.sleep(1)
        return 200, {}, []

    with Tiny(slow) as tiny, RestSource(tiny.url, timeout=0.2, retries=0) as source:
        with pytest.raises(ConnectorError, match="timed out"):
            list(source.read(Extract(endpoint="/x", key="k"), batch_size=5))


def test_unknown_host_is_a_connector_error():
    with RestSource("http://no-such-host.invalid", retries=0) as source:
        with pytest.raises(ConnectorError, match="cannot resolve|cannot connect"):
            list(source.read(Extract(endpoint="/x", key="k"), batch_size=5))


# ---------------------------------------------------------------- authentication


def auth_checking(expected: str):
    def handler(request):
        if request["headers"].get("Authorization") != expected:
            return 401, {"WWW-Authenticate": "Basic"}, {"error": "who are you?"}
        if request["method"] == "GET":
            return 200, {}, [{"id": 1}]
        # a badly behaved service that echoes credentials in its error text
        return 400, {}, {"error": f"bad request from {request['headers']['Authorization']} ({PASSWORD}, {TOKEN})"}

    return handler


def test_basic_auth_is_sent_and_the_password_never_shows():
    basic = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    settings = rest_settings_from_connection("http", "127.0.0.1", "admin", PASSWORD, None, "http", {})
    with Tiny(auth_checking(basic)) as tiny:
        settings["base_url"] = tiny.url
        with RestSource(**settings) as source:
            assert keys(list(source.read(Extract(endpoint="/x", key="id"), batch_size=5)), "id") == [1]
        with RestTarget(**settings) as target:
            result = target.write(Load(endpoint="/x", key="id"), [{"id": 1}])[0]
        assert result.ok is False and result.error.startswith("PUT /x/1: HTTP 400: bad request from Basic *** (***, ")
        assert PASSWORD not in result.error and basic.split()[1] not in result.error
        with RestTarget(tiny.url, auth=("admin", "wrong-" + PASSWORD)) as target:
            with pytest.raises(ConnectorError, match="HTTP 401: authentication failed") as err:
                target.write(Load(endpoint="/x", key="id"), [{"id": 1}])
        assert PASSWORD not in str(err.value)


def test_bearer_token_and_extra_headers_are_sent():
    settings = rest_settings_from_connection(
        "http", "127.0.0.1", None, None, None, None, {"token": TOKEN, "headers": {"X-Tenant": "acme"}}
    )
    with Tiny(auth_checking(f"Bearer {TOKEN}")) as tiny:
        settings["base_url"] = tiny.url
        with RestSource(**settings) as source:
            assert keys(list(source.read(Extract(endpoint="/x", key="id"), batch_size=5)), "id") == [1]
        with RestTarget(**settings) as target:
            result = target.write(Load(endpoint="/x", key="id"), [{"id": 1}])[0]
        assert tiny.requests[0]["headers"]["X-Tenant"] == "acme"
    assert result.ok is False and result.error.startswith("PUT /x/1: HTTP 400: bad request from *** (")
    assert TOKEN not in result.error


def test_credentials_in_the_url_become_basic_auth():
    basic = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    with Tiny(auth_checking(basic)) as tiny:
        url = tiny.url.replace("http://", f"http://admin:{PASSWORD}@")
        with RestSource(url) as source:
            assert PASSWORD not in source.base_url and PASSWORD not in repr(source)
            assert keys(list(source.read(Extract(endpoint="/x", key="id"), batch_size=5)), "id") == [1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("http", "http://127.0.0.1:8765", None, None, None, None, {}), "http://127.0.0.1:8765"),
        (("http", "http://127.0.0.1:8765/api/", None, None, 9999, None, {}), "http://127.0.0.1:8765/api"),
        (("http", "https://shop.example", None, None, 8443, None, {}), "https://shop.example:8443"),
        (("http", "shop.example", None, None, 8443, "https", {}), "https://shop.example:8443"),
        (("http", "shop.example", None, None, None, None, {}), "http://shop.example"),
        (("https", "shop.example/api", None, None, None, "shopdb", {}), "https://shop.example/api"),
        (("generic", "127.0.0.1:8765", None, None, None, "", {}), "http://127.0.0.1:8765"),
        (("http", "::1", None, None, 80, None, {}), "http://[::1]:80"),
    ],
)
def test_settings_from_connection_base_url(args, expected):
    assert rest_settings_from_connection(*args)["base_url"] == expected


def test_settings_from_connection_auth_and_headers():
    s = rest_settings_from_connection("http", "h", "u", "p", None, None, '{"headers": {"X-A": 1}, "timeout": "5"}')
    assert s == {"base_url": "http://h", "auth": ("u", "p"), "headers": {"X-A": "1"}, "timeout": 5.0}
    s = rest_settings_from_connection("http", "http://u:p%40ss@h", None, None, None, None, {"token": "t"})
    assert s == {"base_url": "http://h", "auth": None, "headers": {"Authorization": "Bearer t"}}
    s = rest_settings_from_connection("http", "http://u:p%40ss@h", None, None, None, None, None)
    assert s["auth"] == ("u", "p@ss") and s["base_url"] == "http://h"
    with pytest.raises(ConnectorError, match="no host"):
        rest_settings_from_connection("http", "", "u", PASSWORD, None, None, {})
    with pytest.raises(ConnectorError) as err:
        rest_settings_from_connection("http", f"ftp://u:{PASSWORD}@h", None, None, None, None, {})
    assert PASSWORD not in str(err.value)
    # a scheme-less host whose password holds a / (or a :): the credentials end at the last @, never in a message
    s = rest_settings_from_connection("http", "user:secr/et:x@shop.example:8080/api", None, None, None, None, None)
    assert s["auth"] == ("user", "secr/et:x") and s["base_url"] == "http://shop.example:8080/api"
    with pytest.raises(ConnectorError, match="invalid port") as err:
        rest_settings_from_connection("http", "user:secr/et@shop.example:80a", None, None, None, None, None)
    assert "secr" not in str(err.value)


def test_settings_from_connection_concurrency():
    """extra "concurrency": requests a load sends at a time, 1 to 64 (a number or its text); anything else is refused
    naming the key."""
    assert rest_settings_from_connection("http", "h", None, None, None, None, {"concurrency": "8"})["concurrency"] == 8
    assert rest_settings_from_connection("http", "h", None, None, None, None, {"concurrency": 1})["concurrency"] == 1
    assert "concurrency" not in rest_settings_from_connection("http", "h", None, None, None, None, {})
    for bad in (0, 65, "many", -3, True, 2.5):
        with pytest.raises(ConnectorError, match=r"extra 'concurrency' must be a whole number from 1 to 64"):
            rest_settings_from_connection("http", "h", None, None, None, None, {"concurrency": bad})
    with pytest.raises(ConnectorError, match="REST concurrency must be a whole number from 1 to 64, got 0"):
        RestTarget("http://127.0.0.1:9", concurrency=0)
