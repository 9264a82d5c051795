"""Headless Chromium (Debian's package) driven by Playwright, logged into a real Airflow api-server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures import missing

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying hosts this closed network refuses.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if not CHROMIUM.exists():
        missing("Chromium is missing: apt-get install chromium (bash .ci/chromium-install.sh)")


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


def log_in(page, server, user: str | None = None) -> None:
    """Sign in through Airflow's own login page, as a person would: as `user` (one of the server's
    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS), by default the first one (the admin)."""
    passwords = json.loads(
        (Path(server.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated").read_text()
    )
    user = user or next(iter(passwords))
    password = passwords[user]
    page.goto(f"{server.url}/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
