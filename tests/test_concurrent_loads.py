"""Concurrent REST loads against real HTTP servers on 127.0.0.1 that take their time: a threaded API that answers
each request after a delay and counts the requests in flight, oauth2-mock-server (npm), and pouchdb-server (npm, a
CouchDB: ``_bulk_docs`` answers one result per document). No mocks, no timed assertions."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
import yaml

from flowlink.connectors import oauth2
from flowlink.connectors.rest import CONCURRENCY, RestTarget, rest_settings_from_connection
from flowlink.spec import Bulk, BulkResult, Load, SpecError, parse_text
from tests.fixtures import missing
from tests.npm_servers import BIN, OAuth2Server, _NodeServer
from tests.test_oauth2 import CLIENT, SECRET, ResourceServer

UPSERT = Load(endpoint="/items", key="k")
INSERT = Load(endpoint="/items", key="k", method="insert")
PEOPLE = Load.model_validate(
    {
        "endpoint": "/people",
        "key": "k",
        "method": "create_or_update",
        "id_field": "id",
        "match": {"endpoint": "/people?email={email}"},
    }
)


class Api:
    """A threaded JSON API on loopback that answers each request after ``latency`` seconds (outside its lock, as a
    slow service), counting the requests in flight (``most``) and noticing two writes of one key at once.

    * ``PUT /items/{k}``: upsert (201/200); ``POST /items``: insert by the body's ``k`` (409 when it exists).
    * ``POST /items/bulk``: a list of records, upserted; answers a list of ``{"k", "status", "error"?}`` in the
      order sent (``reverse``: in the opposite order); ``bulk_refusal``: a record holding ``bad`` refuses the whole
      request with 400 instead.
    * ``POST /people`` creates with a new ``id``; ``GET /people?email=``; ``PUT /people/{id}``.
    * ``refuse``: key -> message, answered 422; ``allowed``: more requests in flight than this get 429 with
      ``Retry-After: retry_after`` (not processed); ``always_429``: keys always answered 429 (no Retry-After)."""

    def __init__(self, latency: float = 0.03):
        self.latency = latency
        self.lock = threading.Lock()
        self.items: dict[str, dict] = {}
        self.people: dict[str, dict] = {}
        self.history: defaultdict[str, list] = defaultdict(list)  # key -> the "v" of each write, in arrival order
        self.writes: Counter[str] = Counter()  # key -> writes processed
        self.arrivals: list[tuple[float, str, str]] = []  # (time.monotonic(), method, path) of every request
        self.answers: list[tuple[float, int, str]] = []  # (time.monotonic(), status, path) of every answer
        self.in_flight = self.most = 0
        self.writing: set[str] = set()
        self.overlaps: list[str] = []  # keys written twice at once
        self.refuse: dict[str, str] = {}
        self.always_429: set[str] = set()
        self.allowed: int | None = None
        self.retry_after = "1"
        self.reverse = self.bulk_refusal = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                url = urlsplit(self.path)
                with api.lock:
                    api.arrivals.append((time.monotonic(), self.command, url.path))
                    api.in_flight += 1
                    api.most = max(api.most, api.in_flight)
                    crowded = api.allowed is not None and api.in_flight > api.allowed
                try:
                    time.sleep(api.latency)
                    if crowded:
                        status, headers, answer = 429, {"Retry-After": api.retry_after}, {"error": "slow down"}
                    else:
                        status, headers, answer = api.route(self.command, url.path, url.query, body)
                finally:
                    with api.lock:
                        api.in_flight -= 1
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with api.lock:
                    api.answers.append((time.monotonic(), status, url.path))

            do_GET = do_PUT = do_POST = _any

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Api:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def route(self, method: str, path: str, query: str, body) -> tuple[int, dict, object]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["items", "bulk"] and method == "POST":
            if self.bulk_refusal and any("bad" in record for record in body):
                return 400, {}, {"error": "the request holds a bad record"}
            results = [{"k": str(record["k"]), **self.write(str(record["k"]), record, create=False)} for record in body]
            return 200, {}, list(reversed(results)) if self.reverse else results
        if parts[0] == "items" and method in ("PUT", "POST"):
            key = parts[1] if method == "PUT" else str(body["k"])
            done = self.write(key, body, create=method == "POST")
            return done["status"], {}, {"error": done["error"]} if "error" in done else body
        if parts == ["people"] and method == "GET":
            email = dict(parse_qsl(query)).get("email")
            with self.lock:
                return 200, {}, [p for p in self.people.values() if p["email"] == email]
        if parts == ["people"] and method == "POST":
            with self.lock:
                person = {**body, "id": f"p{len(self.people) + 1}"}
                self.people[person["id"]] = person
                self.writes[str(body["k"])] += 1
            return 201, {}, person
        if parts[0] == "people" and method == "PUT":
            with self.lock:
                self.people[parts[1]] = {**body, "id": parts[1]}
                self.writes[str(body["k"])] += 1
            return 200, {}, self.people[parts[1]]
        return 404, {}, {"error": f"no such path {path}"}

    def write(self, key: str, record: dict, *, create: bool) -> dict:
        """Write one item (a key being written by another request at the same time is an overlap)."""
        with self.lock:
            if key in self.always_429:
                return {"status": 429, "error": "slow down"}
            if key in self.writing:
                self.overlaps.append(key)
            self.writing.add(key)
        try:
            time.sleep(self.latency / 3)  # the write itself takes a moment: two at once would overlap here
            with self.lock:
                if key in self.refuse:
                    return {"status": 422, "error": self.refuse[key]}
                if create and key in self.items:
                    return {"status": 409, "error": f"item {key} exists"}
                status = 200 if key in self.items else 201
                self.items[key] = record
                self.writes[key] += 1
                self.history[key].append(record.get("v"))
                return {"status": status}
        finally:
            with self.lock:
                self.writing.discard(key)


def items(n: int, start: int = 1) -> list[dict]:
    return [{"k": str(i), "name": f"item {i}", "v": 1} for i in range(start, start + n)]


# ---------------------------------------------------------------- one request per record


def test_records_are_written_at_once_up_to_the_limit_each_once_with_outcomes_in_order():
    """60 records, concurrency 5 (the connection's extra), an API answering after 30 ms: every record written
    exactly once, the results in the batch's order, never more than 5 requests in flight at the server (and more
    than one: they did go side by side)."""
    with Api() as api:
        settings = rest_settings_from_connection("http", api.url, None, None, None, None, {"concurrency": "5"})
        with RestTarget(**settings) as target:
            records = items(60)
            results = target.write(UPSERT, records)
    assert [r.key for r in results] == [r["k"] for r in records]
    assert all(r.ok and r.destination_id == r.key for r in results)
    assert api.writes == Counter({r["k"]: 1 for r in records})
    assert 1 < api.most <= 5


def test_the_default_concurrency_and_one_at_a_time():
    """Without a setting at most CONCURRENCY requests are in flight; "concurrency": 1 sends one after the other."""
    with Api(latency=0.01) as api:
        with RestTarget(api.url) as target:
            assert all(r.ok for r in target.write(UPSERT, items(3 * CONCURRENCY)))
        assert 1 < api.most <= CONCURRENCY
        api.most = 0
        settings = rest_settings_from_connection("http", api.url, None, None, None, None, {"concurrency": 1})
        with RestTarget(**settings) as target:
            assert all(r.ok for r in target.write(UPSERT, items(10, start=100)))
        assert api.most == 1


def test_the_environments_proxy_settings_still_hold(monkeypatch):
    """The connector reads HTTP_PROXY and NO_PROXY once per host instead of on every request (requests' default):
    a host the environment sends through a proxy goes through it (here a second API on loopback, which gets the
    absolute URL), and a host NO_PROXY names goes direct."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    with Api(latency=0.001) as proxy, Api(latency=0.001) as api:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with RestTarget("http://shop.invalid", unreachable_after=0) as target:  # no such host: only a proxy reaches it
            assert all(r.ok for r in target.write(UPSERT, items(20)))
        assert sorted(proxy.items, key=int) == [str(i) for i in range(1, 21)] and not api.items
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with RestTarget(api.url) as target:
            assert all(r.ok for r in target.write(UPSERT, items(5, start=50)))
        assert sorted(api.items) == ["50", "51", "52", "53", "54"] and len(proxy.items) == 20


def test_records_with_the_same_key_are_written_in_their_order_never_at_once():
    """Key 1 comes five times in one batch among 30 other records: its writes reach the API one after the other,
    in the batch's order (the last one is kept), never two at once; the other records go side by side."""
    records = items(30, start=10)
    for v in range(1, 6):
        records.insert(v * 5, {"k": "1", "name": "first", "v": v})
    with Api() as api, RestTarget(api.url, concurrency=8) as target:
        results = target.write(UPSERT, records)
    assert [r.key for r in results] == [r["k"] for r in records] and all(r.ok for r in results)
    assert api.history["1"] == [1, 2, 3, 4, 5] and api.items["1"]["v"] == 5
    assert api.overlaps == [] and api.most > 1


def test_a_record_the_api_refuses_fails_alone_with_its_message():
    with Api() as api, RestTarget(api.url, concurrency=8) as target:
        api.refuse = {"7": "name: too long for the shop", "19": "email: not a valid address"}
        results = target.write(INSERT, items(24))
    failed = {r.key: r.error for r in results if not r.ok}
    assert failed == {
        "7": "POST /items: HTTP 422: name: too long for the shop",
        "19": "POST /items: HTTP 422: email: not a valid address",
    }
    assert [r.key for r in results] == [str(i) for i in range(1, 25)]
    assert sorted(api.items, key=int) == [str(i) for i in range(1, 25) if i not in (7, 19)]


def test_create_or_update_records_found_by_one_look_up_are_written_one_after_the_other():
    """Two records with different keys but the same e-mail (the look-up finds them as one person) in a batch of 20
    written 8 at a time: the first creates the person, the second finds it and updates it; never two creates."""
    records = [{"k": str(i), "email": f"p{i}@example.com"} for i in range(1, 21)]
    records[12] = {"k": "13", "email": "p3@example.com"}
    with Api() as api, RestTarget(api.url, concurrency=8) as target:
        results = target.write(PEOPLE, records)
    assert all(r.ok for r in results)
    assert len(api.people) == 19 and [r.action.value for r in results].count("created") == 19
    assert results[12].destination_id == results[2].destination_id and results[12].action.value == "updated"


# ---------------------------------------------------------------- slowing down


def test_429_with_retry_after_pauses_every_thread_and_fails_no_record(caplog):
    """The API takes at most 2 requests at a time and answers 429 with Retry-After: 1 to any more. 30 records at
    concurrency 8: the connector halves its limit and every thread waits out the Retry-After, so each record is
    written once and none fails; after each 429 the API receives no new request until the second has passed."""
    with Api(latency=0.05) as api, RestTarget(api.url, concurrency=8, retries=8) as target:
        api.allowed = 2
        with caplog.at_level("WARNING", logger="flowlink.connectors.rest"):
            results = target.write(UPSERT, items(30))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert api.writes == Counter({str(i): 1 for i in range(1, 31)})
    slowed = [t for t, status, _ in api.answers if status == 429]
    assert slowed and target.throttle.cuts >= 1
    # requests still on their way when a 429 was answered arrive at once; no other may come during the pause
    for t in slowed:
        assert not [a for a, _, _ in api.arrivals if t + 0.5 < a < t + 0.95], (t, api.arrivals)
    assert "the connection waits 1 s, then sends at most 4 requests at a time" in caplog.text


def test_a_record_still_told_to_slow_down_after_the_retries_fails_with_the_apis_message():
    """Key 5 is answered 429 (without Retry-After: the connector backs off) every time: after the 3 retries it
    fails with the API's message; the other records are written."""
    with Api(latency=0.01) as api, RestTarget(api.url, concurrency=4, retries=3, backoff=0.01) as target:
        api.always_429 = {"5"}
        results = target.write(UPSERT, items(12))
    assert [r.key for r in results if not r.ok] == ["5"]
    assert results[4].error == "PUT /items/5: HTTP 429: slow down"
    assert [p for _, _, p in api.arrivals].count("/items/5") == 4  # sent once, then 3 retries
    assert len(api.items) == 11


# ---------------------------------------------------------------- OAuth2


class SlowResourceServer(ResourceServer):
    """tests.test_oauth2's API (it checks each bearer token against the authorization server's keys), taking 30 ms
    per request."""

    def check(self, header: str) -> str | None:
        time.sleep(0.03)
        return super().check(header)


def test_a_token_revoked_while_many_requests_use_it_is_renewed_once(tmp_path):
    """8 threads write 40 customers with an OAuth2 token; the API revokes it in the middle, so every request in
    flight with it gets 401: the connector fetches one new token (not one per thread) and each refused request is
    sent once more with it."""
    oauth2.clear_cache()
    authz = OAuth2Server(tmp_path / "authz", client=(CLIENT, SECRET))
    authz.start()
    api = SlowResourceServer(f"{authz.url}/jwks").start()
    try:
        settings = rest_settings_from_connection(
            "http", api.url, CLIENT, SECRET, None, None, {"oauth2_token_url": authz.token_url, "concurrency": 8}
        )
        load = Load(endpoint="/customers", key="customer_id")
        with RestTarget(**settings) as target:
            first = target.write(load, [{"customer_id": str(i)} for i in range(1, 21)])
            api.revoke_next = True
            second = target.write(load, [{"customer_id": str(i)} for i in range(21, 41)])
    finally:
        api.stop()
        authz.stop()
        oauth2.clear_cache()
    assert all(r.ok for r in first + second)
    assert authz.token_answers() == ["200", "200"]  # the first token, and one renewal
    assert sorted(api.customers, key=int) == [str(i) for i in range(1, 41)]
    refused = api.statuses().count(401)
    assert refused >= 1 and api.statuses().count(200) == 40 and len(api.seen) == 40 + refused


# ---------------------------------------------------------------- bulk


BULK = Load(endpoint="/items", key="k", bulk=Bulk(endpoint="/items/bulk", size=10, result=BulkResult(status="status")))


def test_bulk_sends_n_records_per_request_and_reads_each_records_result():
    """35 records, 10 per request, 2 requests at a time: 4 requests; the API answers each record's status in the
    order sent; a record it refuses (422) fails alone with its message; results in the batch's order."""
    with Api() as api, RestTarget(api.url, concurrency=2) as target:
        api.refuse = {"12": "name: too long"}
        results = target.write(BULK, items(35))
    assert [p for _, _, p in api.arrivals] == ["/items/bulk"] * 4
    assert [r.key for r in results] == [str(i) for i in range(1, 36)]
    assert [r.key for r in results if not r.ok] == ["12"]
    assert results[11].error == "POST /items/bulk: HTTP 422: name: too long"
    assert api.writes == Counter({str(i): 1 for i in range(1, 36) if i != 12})


def test_bulk_results_matched_by_key_in_any_order_and_a_key_twice_goes_in_a_later_request():
    """The API answers in reverse order; result.key matches each result to its record. Key 3 twice in the batch:
    the request ends before the second, which goes in the next one, after the first is written."""
    load = BULK.model_copy(
        update={"bulk": Bulk(endpoint="/items/bulk", size=10, result=BulkResult(key="k", status="status"))}
    )
    records = items(6)
    records.insert(4, {"k": "3", "name": "again", "v": 2})
    with Api() as api, RestTarget(api.url, concurrency=4) as target:
        api.reverse = True
        api.refuse = {"5": "no"}
        results = target.write(load, records)
    assert [(r.key, r.ok) for r in results] == [
        ("1", True), ("2", True), ("3", True), ("4", True), ("3", True), ("5", False), ("6", True),
    ]  # fmt: skip
    assert len(api.arrivals) == 2 and api.history["3"] == [1, 2]


def test_a_bulk_request_refused_as_a_whole_is_sent_again_record_by_record():
    """The API refuses a whole request (400) when one record is bad: the connector sends that request's records
    one per request, so only the bad one fails, with the API's message; the other requests are not split."""
    records = items(20)
    records[13]["bad"] = True
    with Api() as api, RestTarget(api.url, concurrency=1) as target:
        api.bulk_refusal = True
        results = target.write(BULK, records)
    assert [r.key for r in results if not r.ok] == ["14"]
    assert results[13].error == "POST /items/bulk: HTTP 400: the request holds a bad record"
    assert len(api.arrivals) == 2 + 10  # two requests of 10, then the refused one's 10 records one by one
    assert len(api.items) == 19


def test_a_bulk_answer_that_cannot_be_read_fails_its_records_saying_why():
    with Api() as api, RestTarget(api.url) as target:
        wrong = Bulk(endpoint="/items/bulk", result=BulkResult(path="results"))
        results = target.write(BULK.model_copy(update={"bulk": wrong}), items(3))
        assert {r.error for r in results} == {
            "POST /items/bulk: the answer has no list of results under 'results' (load.bulk.result.path)"
        }
        api.refuse = {"6": "no"}
        results = target.write(BULK.model_copy(update={"bulk": Bulk(endpoint="/items/bulk")}), items(3, start=5))
    # without ok and status, a result with an error is a refused record
    assert [(r.key, r.ok, r.error) for r in results] == [
        ("5", True, None),
        ("6", False, "POST /items/bulk: no"),
        ("7", True, None),
    ]


def test_a_bulk_request_told_to_slow_down_waits_and_is_sent_again():
    with Api(latency=0.02) as api, RestTarget(api.url, concurrency=4) as target:
        api.allowed, api.retry_after = 1, "0"
        results = target.write(BULK, items(40))
    assert all(r.ok for r in results) and len(api.items) == 40
    assert any(status == 429 for _, status, _ in api.answers)


class PouchServer(_NodeServer):
    """pouchdb-server (npm), in memory: a CouchDB whose ``POST /{db}/_bulk_docs {"docs": [...]}`` answers one result
    per document: ``{"ok": true, "id", "rev"}`` or ``{"id", "error": "conflict"|"forbidden", "reason"}``, not
    always in the order sent."""

    program = "pouchdb-server"

    def args(self) -> list[str]:
        return ["--in-memory", "--host", "127.0.0.1", "--port", str(self.port)]

    def ready(self) -> bool:
        return requests.get(self.url, timeout=2).ok


@pytest.fixture
def couch(tmp_path: Path):
    """pouchdb-server with a database `shop` whose validation refuses an e-mail without @."""
    if not (BIN / PouchServer.program).exists():
        missing("pouchdb-server is not installed: run `make test` (it installs tests/npm with npm)")
    server = PouchServer(tmp_path / "couch")
    server.start()
    url = server.url
    assert requests.put(f"{url}/shop", timeout=10).ok
    rule = (
        "function (doc) { if (doc.email && doc.email.indexOf('@') < 0) "
        "{ throw {forbidden: 'email: not a valid address'}; } }"
    )
    assert requests.put(f"{url}/shop/_design/rules", json={"validate_doc_update": rule}, timeout=10).ok
    yield server
    server.stop()


COUCH = Load.model_validate(
    {
        "endpoint": "/shop",
        "key": "_id",
        "method": "insert",
        "bulk": {
            "endpoint": "/shop/_bulk_docs",
            "size": 25,
            "records_path": "docs",
            "result": {"key": "id", "ok": "ok", "error": "reason", "id": "id", "exists": {"error": "conflict"}},
        },
    }
)


def test_bulk_insert_into_couchdb_reads_each_documents_result(couch):
    """pouchdb-server (a CouchDB, npm): 60 customers in requests of 25 documents; its validation refuses one
    e-mail, which fails alone with CouchDB's reason; the others are created once. Sent again, every document is
    refused as a conflict, which the load reads as "already in the target" (exists), as a 409."""
    records = [{"_id": f"c{i}", "email": f"c{i}@example.com", "name": f"Customer {i}"} for i in range(1, 61)]
    records[41]["email"] = "not-an-email"
    with RestTarget(couch.url, concurrency=3) as target:
        results = target.write(COUCH, records)
        again = target.write(COUCH, records[:5])
    assert [r.key for r in results] == [r["_id"] for r in records]
    assert [(r.key, r.error) for r in results if not r.ok] == [
        ("c42", "POST /shop/_bulk_docs: email: not a valid address")
    ]
    assert all(r.destination_id == r.key for r in results if r.ok)
    docs = requests.get(f"{couch.url}/shop/_all_docs", params={"include_docs": "true"}, timeout=10).json()["rows"]
    stored = {d["id"]: d["doc"] for d in docs if not d["id"].startswith("_design/")}
    assert sorted(stored) == sorted(r["_id"] for r in records if r["_id"] != "c42")
    assert all(d["_rev"].startswith("1-") for d in stored.values())  # each created once
    assert [(r.ok, r.exists) for r in again] == [(False, True)] * 5
    assert again[0].error == "POST /shop/_bulk_docs: Document update conflict"


# ---------------------------------------------------------------- the spec


SPEC = """
name: bulk_spec
source: {type: sql, connection: erp}
target: {type: TARGET, connection: shop}
touchpoints:
  - name: customers
    extract: {table: customers, key: id}
    mapping: [{target: customer_id, source: id}]
    load: LOAD
"""


@pytest.mark.parametrize(
    ("target", "load", "problem"),
    [
        (
            "rest",
            {"method": "create_or_update", "id_field": "id", "match": {"endpoint": "/c?e={customer_id}"}, "bulk": {}},
            (
                "touchpoints[0].load.bulk",
                "bulk is for method upsert or insert: create_or_update looks each record up and writes it alone",
            ),
        ),
        (
            "sql",
            {"bulk": {}},
            ("touchpoints[0].load.bulk", "bulk is for rest targets; a sql target writes batch by batch"),
        ),
        (
            "rest",
            {"bulk": {"size": 0}},
            ("touchpoints[0].load.bulk.size", "Input should be greater than or equal to 1"),
        ),
        (
            "rest",
            {"bulk": {"records_path": "data..items"}},
            (
                "touchpoints[0].load.bulk.records_path",
                "'data..items' is not a dotted path of field names (e.g. data.records)",
            ),
        ),
        (
            "rest",
            {"bulk": {"result": {"ok": "ok", "status": "status"}}},
            (
                "touchpoints[0].load.bulk.result.status",
                "give ok or status, not both: each says on its own whether a record was written",
            ),
        ),
        (
            "rest",
            {"bulk": {"result": {"succeeded": "ok"}}},
            ("touchpoints[0].load.bulk.result.succeeded", "unknown key"),
        ),
    ],
)
def test_bulk_in_the_spec_is_checked_at_its_yaml_path(target, load, problem):
    key = {"table": "customers"} if target == "sql" else {"endpoint": "/customers"}
    text = SPEC.replace("TARGET", target).replace(
        "LOAD", yaml.safe_dump({**key, "key": "customer_id", **load}, default_flow_style=True).strip()
    )
    with pytest.raises(SpecError) as err:
        parse_text(text)
    assert err.value.problems == [problem]


def test_a_spec_with_bulk_reads_as_documented_and_without_it_its_published_form_is_unchanged():
    load = {"endpoint": "/shop", "key": "customer_id", "method": "insert", "bulk": COUCH.bulk.model_dump()}
    text = SPEC.replace("TARGET", "rest").replace("LOAD", yaml.safe_dump(load, default_flow_style=True).strip())
    assert parse_text(text).touchpoints[0].load.bulk == COUCH.bulk
    assert "bulk" not in Load(endpoint="/x", key="k").model_dump()  # no `bulk: null`: published checksums stay
