"""Errors a user can act on. The CLI prints them without a traceback.

Messages never carry a credential: connectors pass every text that may hold one (a service's error answer, a
database's message) through :func:`redact` with the :func:`secret_forms` of their credentials first. Which names
hold a credential is said once, here: :data:`SENSITIVE`, :func:`is_sensitive`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET = 3  # shorter values would mangle ordinary text; they are no protection either
# Words in the name of a header, a connection's extra key or a setting whose value is a credential.
SENSITIVE = ("auth", "token", "key", "secret", "pass", "credential", "cookie", "session", "signature")


class FlowlinkError(Exception):
    """A problem with the user's input or setup, with a message that says what and where."""


def is_sensitive(name: str) -> bool:
    """Whether a header, extra key or setting of this name holds a credential: one of :data:`SENSITIVE` is in it,
    in any case (``Authorization``, ``X-API-Key``, ``client_secret``, ``password``)."""
    lowered = name.lower()
    return any(word in lowered for word in SENSITIVE)


def secret_forms(secrets: Iterable[str | None]) -> list[str]:
    """Each secret as it may appear in a text: plain, URL-encoded (in a URL or a query string, ``+`` for spaces
    too) and JSON-escaped (in a JSON document). Longest first, so a secret that contains another is replaced whole."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET:
            continue
        forms.update(
            {
                secret,
                quote(secret, safe=""),
                quote(secret),
                quote_plus(secret),
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
            }
        )
    return sorted((f for f in forms if len(f) >= MIN_SECRET), key=len, reverse=True)


def redact(text: str, forms: Iterable[str]) -> str:
    """``text`` with every one of ``forms`` (from :func:`secret_forms`) replaced by ``***``. Redact a text whole,
    before it is shortened: a secret cut in two is still a secret."""
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def plural(n: int, noun: str, many: str | None = None) -> str:
    """ "1 record", "2 records", "0 records" (``many`` for a plural that is not noun + s)."""
    return f"{n} {noun if n == 1 else many or noun + 's'}"
