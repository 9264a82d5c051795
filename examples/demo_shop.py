"""The demo shop: a small JSON REST service standing in for a web shop.

Use it in-process (tests)::

    shop = DemoShop()
    base_url = shop.start()          # a free port on 127.0.0.1
    ...
    shop.stop()

or as a program::

    python examples/demo_shop.py --host 127.0.0.1 --port 8765 [--data shop.json] [--verbose]

Resources ``customers`` and ``orders`` (ids are strings):

* ``PUT /{resource}/{id}``: create (201) or replace (200); the body is a JSON
  object; answers the stored object, which has ``"id"``. A key field in the body
  (``customer_id``/``order_id``) must match the id in the URL.
* ``POST /{resource}``: create (201); the id is the body's key field; 409 when it exists.
* ``GET /{resource}?page=1&per_page=50``: ``{"records": [...], "next": url or null}``,
  ordered by id (numeric ids numerically). Other query parameters filter:
  ``field=value`` (equal, compared as text) and ``field__gt=value`` (greater).
* ``GET /{resource}/{id}``: one object, or 404.

Validation, as a real shop would: a customer's ``email`` must contain "@"
(422 ``{"error": "email: not a valid address"}``); an order's ``customer_id``
must be a known customer (422 ``{"error": "customer_id: unknown customer 123"}``).
Errors are ``{"error": "..."}``.

Test hooks:

* ``POST /_admin/reject {"resource": "customers", "ids": ["5", "7"], "status": 500, "message": "..."}``:
  writes to those ids fail with that status; ``{"resource": ..., "ids": []}``
  clears that resource's rejections, ``{"ids": []}`` all of them.
* ``GET /_admin/stats``: write requests received, per resource and per id
  (``{"writes": {"customers": {"total": 2, "ids": {"5": 2}}}, "records": {"customers": 1}}``).
  Every PUT/POST counts, including the ones that fail.
* ``POST /_admin/reset``: no records, no counts, no rejections.

With ``--data FILE`` the records are loaded from FILE at start and saved to it
after every change (written to a temporary file, then renamed: never half-written).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import signal
import socket
import sys
import tempfile
import threading
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

DEFAULT_KEYS = {"customers": "customer_id", "orders": "order_id"}
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 10_000  # the largest pagination size a workflow spec allows
MAX_BODY = 10 * 1024 * 1024


class ShopError(Exception):
    """An HTTP error answer: status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class DemoShop:
    """The shop's state and its HTTP server (thread-safe; one lock for everything)."""

    handler: type | None = None  # its request handler: _Handler, or a subclass's own

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        keys: dict[str, str] | None = None,
        data_file: str | os.PathLike[str] | None = None,
        verbose: bool = False,
        log=None,
    ):
        self.host = host
        self.port = port
        self.keys = dict(DEFAULT_KEYS if keys is None else keys)
        self.data_file = Path(data_file) if data_file else None
        self.verbose = verbose
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.RLock()
        self._data: dict[str, dict[str, dict]] = {r: {} for r in self.keys}
        self._writes: dict[str, Counter[str]] = {r: Counter() for r in self.keys}
        self._totals: Counter[str] = Counter()
        self._rejects: dict[str, dict[str, tuple[int, str]]] = {r: {} for r in self.keys}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None
        if self.data_file and self.data_file.exists():
            self._load()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Serve in a background thread; return the base URL (``http://127.0.0.1:PORT``)."""
        if self._server is not None:
            raise RuntimeError("the demo shop is already running")
        self._server = self.bind()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="demo-shop", daemon=True)
        self._thread.start()
        return self.url or ""

    def bind(self) -> ThreadingHTTPServer:
        """Create the listening server (without serving); sets ``url``."""
        shop = self

        class Handler(self.handler or _Handler):
            pass

        Handler.shop = shop
        server = _Server((self.host, self.port), Handler)
        server.shop = shop
        self._server = server
        host, port = server.server_address[:2]
        self.port = port
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        return server

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        server.server_close()

    def __enter__(self) -> DemoShop:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ in-process API

    def records(self, resource: str) -> dict[str, dict]:
        """A copy of the stored objects of a resource, by id."""
        with self._lock:
            return copy.deepcopy(self._resource(resource))

    def writes(self, resource: str) -> Counter[str]:
        """How many write requests (PUT/POST) each id of a resource received."""
        with self._lock:
            self._resource(resource)
            return Counter(self._writes[resource])

    def reject(self, resource: str, ids, status: int = 422, message: str | None = None) -> None:
        """Make writes to these ids fail with ``status`` and ``{"error": message}``; ``ids=[]`` clears."""
        with self._lock:
            self._resource(resource)
            if not 400 <= int(status) <= 599:
                raise ValueError(f"status must be 400-599, got {status}")
            ids = [str(i) for i in ids]
            if not ids:
                self._rejects[resource].clear()
                return
            text = message or f"rejected by the test hook (HTTP {status})"
            for i in ids:
                self._rejects[resource][i] = (int(status), text)

    def reset(self) -> None:
        """Forget all records, counts and rejections."""
        with self._lock:
            for resource in self.keys:
                self._data[resource].clear()
                self._writes[resource].clear()
                self._rejects[resource].clear()
            self._totals.clear()
            self._save()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "writes": {r: {"total": self._totals[r], "ids": dict(self._writes[r])} for r in self.keys},
                "records": {r: len(self._data[r]) for r in self.keys},
            }

    # ------------------------------------------------------------ the shop's rules

    def put(self, resource: str, id_: str, body: Any) -> tuple[int, dict]:
        with self._lock:
            self._count(resource, id_)
            self._check_rejected(resource, id_)
            obj = self._validate(resource, body)
            key = self.keys[resource]
            if key in obj and str(obj[key]) != id_:
                raise ShopError(422, f"{key}: does not match the id in the URL ({obj[key]} != {id_})")
            obj["id"] = id_
            created = id_ not in self._data[resource]
            self._data[resource][id_] = obj
            self._save()
            return (201 if created else 200), copy.deepcopy(obj)

    def post(self, resource: str, body: Any) -> tuple[int, dict]:
        with self._lock:
            key = self.keys.get(resource)
            id_ = body.get(key) if isinstance(body, dict) and key else None
            self._count(resource, None if id_ is None else str(id_))
            if id_ is None or str(id_) == "":
                self._validate(resource, body)
                raise ShopError(422, f"{key}: required")
            id_ = str(id_)
            self._check_rejected(resource, id_)
            obj = self._validate(resource, body)
            if id_ in self._data[resource]:
                raise ShopError(409, f"{key}: {_singular(resource)} {id_} already exists")
            obj["id"] = id_
            self._data[resource][id_] = obj
            self._save()
            return 201, copy.deepcopy(obj)

    def get(self, resource: str, id_: str) -> dict:
        with self._lock:
            obj = self._resource(resource).get(id_)
            if obj is None:
                raise ShopError(404, f"{_singular(resource)} {id_} not found")
            return copy.deepcopy(obj)

    def list_page(self, resource: str, query: list[tuple[str, str]]) -> tuple[list[dict], bool]:
        """One page of a resource and whether there are more."""
        page, per_page, filters = 1, DEFAULT_PER_PAGE, []
        for name, value in query:
            if name in ("page", "per_page"):
                if not value.isdigit() or int(value) < 1:
                    raise ShopError(400, f"{name}: must be a positive whole number")
                if name == "page":
                    page = int(value)
                else:
                    per_page = min(int(value), MAX_PER_PAGE)
            else:
                filters.append((name, value))
        with self._lock:
            objs = [
                copy.deepcopy(o) for _, o in sorted(self._resource(resource).items(), key=lambda kv: _id_order(kv[0]))
            ]
        for name, value in filters:
            if name.endswith("__gt"):
                field = name[:-4]
                objs = [o for o in objs if o.get(field) is not None and _value_order(o[field]) > _value_order(value)]
            else:
                objs = [o for o in objs if _text(o.get(name)) == value]
        start = (page - 1) * per_page
        return objs[start : start + per_page], len(objs) > start + per_page

    def _validate(self, resource: str, body: Any) -> dict:
        self._resource(resource)
        if not isinstance(body, dict):
            raise ShopError(400, "body: must be a JSON object")
        obj = copy.deepcopy(body)
        if resource == "customers":
            email = obj.get("email")
            if not isinstance(email, str) or "@" not in email:
                raise ShopError(422, "email: not a valid address")
        if resource == "orders" and "customers" in self._data:
            customer = obj.get("customer_id")
            if customer is None or str(customer) not in self._data["customers"]:
                raise ShopError(422, f"customer_id: unknown customer {customer}")
        return obj

    def _resource(self, resource: str) -> dict[str, dict]:
        if resource not in self._data:
            raise ShopError(404, f"no such resource {resource!r} (have: {', '.join(self.keys)})")
        return self._data[resource]

    def _count(self, resource: str, id_: str | None) -> None:
        self._resource(resource)
        self._totals[resource] += 1
        if id_ is not None:
            self._writes[resource][id_] += 1

    def _check_rejected(self, resource: str, id_: str) -> None:
        rejected = self._rejects[resource].get(id_)
        if rejected:
            raise ShopError(*rejected)

    # ------------------------------------------------------------ persistence

    def _load(self) -> None:
        assert self.data_file is not None
        try:
            data = json.loads(self.data_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"demo shop: cannot read {self.data_file}: {exc}") from None
        if not isinstance(data, dict):
            raise SystemExit(f"demo shop: {self.data_file} must hold a JSON object of resources")
        for resource, objs in data.items():
            if resource in self._data and isinstance(objs, dict):
                self._data[resource] = {str(k): v for k, v in objs.items() if isinstance(v, dict)}

    def _save(self) -> None:
        if self.data_file is None:
            return
        folder = self.data_file.resolve().parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.data_file.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._data, out, indent=1, sort_keys=True, ensure_ascii=False)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.data_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # connections waiting to be accepted: a load opens one per request it sends at once
    shop: DemoShop

    def __init__(self, *args: Any, **kwargs: Any):
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Close the listening socket and hang up on open (keep-alive) connections: a stopped shop answers nothing."""
        super().server_close()
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:  # a client that hung up: one line at most
        if self.shop.verbose:
            self.shop._log(f"{client_address[0]} connection error: {sys.exc_info()[1]!r}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall
    server_version = "DemoShop/1.0"
    shop: DemoShop

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        status = 500
        try:
            body = self._body()
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")] if url.path.strip("/") else []
            status, answer = self._route(method, parts, body, parse_qsl(url.query, keep_blank_values=True))
        except ShopError as exc:
            status, answer = exc.status, {"error": exc.message}
        except Exception as exc:  # a bug: answer 500 rather than hang up
            status, answer = 500, {"error": f"internal error: {type(exc).__name__}"}
        self._send(status, answer)

    def _route(self, method: str, parts: list[str], body: Any, query: list[tuple[str, str]]) -> tuple[int, Any]:
        shop = self.shop
        if parts[:1] == ["_admin"]:
            return self._admin(method, parts[1:], body)
        if len(parts) == 1:
            resource = parts[0]
            if method == "GET":
                records, more = shop.list_page(resource, query)
                return 200, {"records": records, "next": self._next_url(query) if more else None}
            if method == "POST":
                return shop.post(resource, self._json(body))
            shop._resource(resource)
            raise ShopError(405, f"{method} /{resource} is not supported (GET, POST)")
        if len(parts) == 2:
            resource, id_ = parts
            if method == "GET":
                return 200, shop.get(resource, id_)
            if method == "PUT":
                return shop.put(resource, id_, self._json(body))
            shop._resource(resource)
            raise ShopError(405, f"{method} /{resource}/{{id}} is not supported (GET, PUT)")
        raise ShopError(404, f"no such path {self.path.split('?')[0]!r}")

    def _admin(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        shop = self.shop
        if parts == ["stats"] and method == "GET":
            return 200, shop.stats()
        if parts == ["reset"] and method == "POST":
            shop.reset()
            return 200, {"reset": True}
        if parts == ["reject"] and method == "POST":
            body = self._json(body)
            if not isinstance(body, dict) or not isinstance(body.get("ids", None), list):
                raise ShopError(400, "reject: give {'resource': ..., 'ids': [...], 'status': ..., 'message': ...}")
            resources = [body["resource"]] if body.get("resource") else list(shop.keys)
            if body["ids"] and not body.get("resource"):
                raise ShopError(400, "reject: resource is required with ids")
            try:
                status = int(body.get("status", 422))
                for resource in resources:
                    shop._resource(resource)
                    shop.reject(resource, body["ids"], status, body.get("message"))
            except (TypeError, ValueError) as exc:
                raise ShopError(400, f"reject: {exc}") from None
            return 200, {"rejected": {r: sorted(shop._rejects[r]) for r in resources}}
        raise ShopError(404, f"no such admin path /_admin/{'/'.join(parts)} for {method}")

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise ShopError(411, "send a Content-Length")
        if not length:
            return b""
        if not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True
            raise ShopError(413, "body too large")
        return self.rfile.read(int(length))

    @staticmethod
    def _json(body: bytes) -> Any:
        if not body:
            raise ShopError(400, "body: a JSON object is required")
        try:
            return json.loads(body)
        except ValueError:
            raise ShopError(400, "body: invalid JSON") from None

    def _next_url(self, query: list[tuple[str, str]]) -> str:
        page = next((int(v) for k, v in query if k == "page"), 1)
        rest = [(k, v) for k, v in query if k != "page"] + [("page", str(page + 1))]
        host = self.headers.get("Host") or f"{self.shop.host}:{self.shop.port}"
        return f"http://{host}{urlsplit(self.path).path}?{urlencode(rest)}"

    def _send(self, status: int, answer: Any) -> None:
        data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        if self.shop.verbose:
            code = code.value if isinstance(code, HTTPStatus) else code
            self.shop._log(f"{self.client_address[0]} {self.command} {self.path} -> {code}")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # errors are answered in JSON; log_request writes the one line per request


def _singular(resource: str) -> str:
    return resource[:-1] if resource.endswith("s") else resource


def _id_order(id_: str) -> tuple[int, Any]:
    return (0, int(id_), "") if re.fullmatch(r"-?\d+", id_) else (1, 0, id_)


def _value_order(value: Any) -> tuple[int, Any]:
    text = _text(value)
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The Flowlink demo shop: a JSON REST service with customers and orders."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    parser.add_argument(
        "--data", metavar="FILE", help="keep the records in this JSON file (loaded at start, saved on change)"
    )
    parser.add_argument("--verbose", action="store_true", help="log one line per request to stderr")
    args = parser.parse_args(argv)
    shop = DemoShop(args.host, args.port, data_file=args.data, verbose=args.verbose)
    try:
        server = shop.bind()
    except OSError as exc:
        print(f"demo shop: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"demo shop listening on {shop.url}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    print("demo shop stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
