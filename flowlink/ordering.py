"""The one rule that orders incremental values: which record is newer than the watermark, and how records sort.

Each value is compared as what it is:

* numbers as numbers: ints, floats, Decimals and numeric text in ASCII digits, up to 100 characters (``"9" < "10"``,
  ``"10.50" == 10.5``, ``"1e3"``; surrounding spaces ignored). Booleans, NaN and infinities are not numbers here.
* timestamps as instants: ``datetime``/``date`` values and ISO 8601 text starting ``YYYY-MM-DD`` (``2026-01-01``,
  ``2026-01-01T10:00:00+02:00``, ``...Z``, ``2026-01-01 10:00:00.5``). A time without an offset is UTC; a date is
  its midnight UTC. ``2026-01-01T10:00:00+02:00`` is older than ``2026-01-01T09:00:00Z``.
* other text as text (by code point); lists and objects as their JSON text.

Across kinds the order is total, so mixed values never raise: nothing (None) < numbers < timestamps < text <
lists and objects. Values of one rank that compare equal (``"2026-01-01"`` and ``"2026-01-01T00:00:00Z"``) tie.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["newer", "order_key", "number", "instant"]

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NOTHING, NUMBER, INSTANT, TEXT, OTHER = range(5)  # the ranks of the kinds, in order


def number(value: Any) -> int | float | Decimal | None:
    """The value as a number (numeric text as an exact Decimal), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (float, Decimal)):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 100 and _NUMBER.fullmatch(text):  # longer: an id, not a quantity; compared as text
            try:
                return Decimal(text)
            except InvalidOperation:  # an exponent beyond what Decimal holds
                return None
    return None


def instant(value: Any) -> dt.timedelta | None:
    """The value as a point in time (its distance from 1970-01-01 UTC), or None when it is not a timestamp."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str) and _DATE.match(text := value.strip()):
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment - _EPOCH  # aware minus aware: exact, and no overflow at year 1 or 9999


def order_key(value: Any) -> tuple:
    """A sort key for the rule: ``sorted(values, key=order_key)``; equal keys are equal in the rule."""
    if value is None:
        return (NOTHING,)
    if (n := number(value)) is not None:
        return (NUMBER, n)
    if (moment := instant(value)) is not None:
        return (INSTANT, moment)
    if isinstance(value, bool):
        return (TEXT, "true" if value else "false")
    if isinstance(value, str):
        return (TEXT, value)
    if isinstance(value, (int, float, Decimal)):  # NaN and infinities
        return (TEXT, str(value))
    return (OTHER, json.dumps(value, sort_keys=True, default=str, ensure_ascii=False))


def newer(value: Any, than: Any) -> bool:
    """Whether ``value`` comes after ``than`` in the rule (a record newer than the watermark)."""
    return order_key(value) > order_key(than)
