"""Third-party servers from the npm registry, started on loopback (`make test` installs them into tests/npm):

* :class:`JsonServer`: json-server 0.17, a REST API nobody here wrote. ``POST /customers`` creates and answers the
  record with its own numeric ``id``; ``PUT``/``PATCH /customers/{id}`` update (404 ``{}`` for an unknown id);
  ``GET /customers?email=x`` filters; a POST whose body holds an existing ``id`` fails with 500.
* :class:`OAuth2Server`: oauth2-mock-server, an OAuth2 authorization server whose ``POST /token`` grants
  client credentials (signed JWTs; ``expires_in`` one hour by default).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import requests

from tests.fixtures import missing

BIN = Path(__file__).parent / "npm" / "node_modules" / ".bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NodeServer:
    program = ""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def args(self) -> list[str]:
        raise NotImplementedError

    def command(self) -> list[str]:
        return [str(BIN / self.program), *self.args()]

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> str:
        if not (BIN / self.program).exists():
            missing(f"{self.program} is not installed: run `make test` (it installs tests/npm with npm)")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / f"{self.program}.log", "ab")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.program} exited: {(self.folder / f'{self.program}.log').read_text()[-2000:]}"
                )
            try:
                if self.ready():
                    return self.url
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.program} did not answer on {self.url} within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# json-server's request log (morgan "dev"): `PUT /customers/1 200 3.123 ms - 50`, with colour codes; a request whose
# client went away before the answer (a killed process) is logged with "-" for its status, though it was carried out
_REQUEST_LINE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) (\d{3}|-) ")
NO_ANSWER = 0  # the status of a request logged without one
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class JsonServer(_NodeServer):
    """json-server on loopback over ``db.json`` in ``folder``; ``delay_ms`` slows every answer; ``quiet=False`` logs
    each request, which :meth:`requests` reads."""

    program = "json-server"

    def __init__(self, folder: Path, data: dict | None = None, delay_ms: int = 0, quiet: bool = True):
        super().__init__(folder)
        self.db = self.folder / "db.json"
        self.delay_ms = delay_ms
        self.quiet = quiet
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db.write_text(json.dumps(data if data is not None else {"customers": []}))

    def args(self) -> list[str]:
        extra = ["--delay", str(self.delay_ms)] if self.delay_ms else []
        extra += ["--quiet"] if self.quiet else []
        return ["--host", "127.0.0.1", "--port", str(self.port), *extra, str(self.db)]

    def requests(self, under: str = "/customers", settle: bool = True) -> list[tuple[str, str, int]]:
        """(method, path with query, status: NO_ANSWER when the client went away) of each request answered so far whose path starts with ``under``, in
        order (needs quiet=False). A line is logged once its answer is sent, so this waits until the log is still
        (``settle=False``: what is logged now, while requests go on)."""
        if self.quiet:
            raise RuntimeError("JsonServer(quiet=True) logs no requests")
        log, text = self.folder / f"{self.program}.log", None
        while text != (text := log.read_text(encoding="utf-8", errors="replace")) and settle:
            time.sleep(0.2)
        found = [_REQUEST_LINE.match(_COLOUR.sub("", line).strip()) for line in text.splitlines()]
        return [(m[1], m[2], NO_ANSWER if m[3] == "-" else int(m[3])) for m in found if m and m[2].startswith(under)]

    def methods(self, since: int = 0, under: str = "/customers") -> Counter[str]:
        """How many requests of each method, from the ``since``-th on (a length of :meth:`requests` taken earlier)."""
        return Counter(method for method, _, _ in self.requests(under)[since:])

    def ready(self) -> bool:
        return requests.get(f"{self.url}/db", timeout=2).ok

    def records(self, resource: str = "customers") -> list[dict]:
        return requests.get(f"{self.url}/{resource}", timeout=10).json()


class OAuth2Server(_NodeServer):
    """oauth2-mock-server on loopback; ``token_url`` grants client credentials to any client. With ``client`` (id,
    secret): only to that client (others get 401 invalid_client), tokens living ``ttl`` seconds, and each answer of
    the token endpoint logged (:meth:`token_answers`), through its library API (tests/npm/oauth2_server.mjs)."""

    program = "oauth2-mock-server"

    def __init__(self, folder: Path, client: tuple[str, str] | None = None, ttl: int = 3600):
        super().__init__(folder)
        self.client = client
        self.ttl = ttl

    def command(self) -> list[str]:
        if self.client is None:
            return super().command()
        script = BIN.parent.parent / "oauth2_server.mjs"
        return ["node", str(script), str(self.port), *self.client, str(self.ttl)]

    def token_answers(self) -> list[str]:
        """The status of each answer of the token endpoint so far ("200", "401"), in order (needs ``client``)."""
        text = (self.folder / f"{self.program}.log").read_text()
        return [line.split()[1] for line in text.splitlines() if line.startswith("token ")]

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def args(self) -> list[str]:
        return ["-a", "127.0.0.1", "-p", str(self.port)]

    def ready(self) -> bool:
        return requests.get(f"{self.url}/.well-known/openid-configuration", timeout=2).ok
