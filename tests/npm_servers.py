"""Third-party servers from the npm registry, started on loopback (`make test` installs them into tests/npm):

* :class:`JsonServer`: json-server 0.17, a REST API nobody here wrote. ``POST /customers`` creates and answers the
  record with its own numeric ``id``; ``PUT``/``PATCH /customers/{id}`` update (404 ``{}`` for an unknown id);
  ``GET /customers?email=x`` filters; a POST whose body holds an existing ``id`` fails with 500.
* :class:`OAuth2Server`: oauth2-mock-server, an OAuth2 authorization server whose ``POST /token`` grants
  client credentials (signed JWTs; ``expires_in`` one hour by default).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
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

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> str:
        if not (BIN / self.program).exists():
            missing(f"{self.program} is not installed: run `make test` (it installs tests/npm with npm)")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / f"{self.program}.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen([str(BIN / self.program), *self.args()], cwd=self.folder, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.program} exited: {(self.folder / f'{self.program}.log').read_text()[-2000:]}")
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


class JsonServer(_NodeServer):
    """json-server on loopback over ``db.json`` in ``folder``; ``delay_ms`` slows every answer."""

    program = "json-server"

    def __init__(self, folder: Path, data: dict | None = None, delay_ms: int = 0):
        super().__init__(folder)
        self.db = self.folder / "db.json"
        self.delay_ms = delay_ms
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db.write_text(json.dumps(data if data is not None else {"customers": []}))

    def args(self) -> list[str]:
        extra = ["--delay", str(self.delay_ms)] if self.delay_ms else []
        return ["--host", "127.0.0.1", "--port", str(self.port), "--quiet", *extra, str(self.db)]

    def ready(self) -> bool:
        return requests.get(f"{self.url}/db", timeout=2).ok

    def records(self, resource: str = "customers") -> list[dict]:
        return requests.get(f"{self.url}/{resource}", timeout=10).json()


class OAuth2Server(_NodeServer):
    """oauth2-mock-server on loopback; ``token_url`` grants client credentials to any client."""

    program = "oauth2-mock-server"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def args(self) -> list[str]:
        return ["-a", "127.0.0.1", "-p", str(self.port)]

    def ready(self) -> bool:
        return requests.get(f"{self.url}/.well-known/openid-configuration", timeout=2).ok
