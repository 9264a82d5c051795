"""The interface every connector follows. Nothing here knows about Airflow.

A connector is a *source* (reads records) or a *target* (writes records), or both.
Records are plain JSON-safe dicts: str, int, float, bool, None, lists and dicts of
those. Connectors convert database/driver values before yielding them:

* ``datetime``/``date``/``time`` -> ISO 8601 string (``isoformat()``)
* ``Decimal`` -> ``str`` (exact; never a float)
* ``UUID`` -> ``str``
* ``bytes``/``memoryview`` -> refused with :class:`ConnectorError` (not JSON-safe)

Errors:

* a whole-application problem (unreachable, bad credentials, no such table,
  unsupported dialect) raises :class:`ConnectorError`; the caller fails the task.
  An application that cannot be connected to is first retried for
  FLOWLINK_UNREACHABLE_AFTER seconds, then raises :class:`Unreachable`.
* a problem with one record (constraint violation, wrong type, unknown field) is
  never an exception: it is a :class:`WriteResult` with ``ok=False`` and a clear
  ``error`` message, and the other records of the batch are still written.
* a record a source cannot read or use (a bad line of a file, a record without a key) is
  yielded as an :class:`Unreadable` in its place; the other records go on.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import heapq
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from flowlink.errors import FlowlinkError
from flowlink.spec import Extract, Load

__all__ = [
    "Action",
    "Batch",
    "ConnectorError",
    "Record",
    "Source",
    "Target",
    "Unreachable",
    "Unreadable",
    "WriteResult",
    "dotted",
    "json_safe",
    "newest",
]

Record = dict[str, Any]  # field -> JSON-safe value


class ConnectorError(FlowlinkError):
    """The application as a whole cannot be read or written (unreachable, no such table, ...)."""


class Unreachable(ConnectorError):
    """The application could not be connected to (refused, unknown host, connect timeout) for
    FLOWLINK_UNREACHABLE_AFTER seconds (flowlink.reach): no request reached it."""


class Action(enum.Enum):
    """What a create_or_update load did with a record the target accepted."""

    CREATED = "created"
    UPDATED = "updated"


@dataclass
class WriteResult:
    """The outcome of writing one record: ``key`` is the record's load key as a string.

    ``exists``: an insert was refused because the target holds the key already (whatever the target's words for it);
    ``action``: for create_or_update, whether the record was created or updated."""

    key: str
    ok: bool
    destination_id: str | None = None
    error: str | None = None
    exists: bool = False
    action: Action | None = None


@dataclass(frozen=True)
class Unreadable:
    """A record a source could not read or use, in the place of that record: flowlink.sync.extract fails it in the
    resync bucket with the reason, under its key (or, without one, under "(<where>)").

    ``key`` and ``incremental``: its values of extract.key and extract.incremental, when they could be read."""

    reason: str
    where: str  # e.g. "orders.jsonl line 7"
    key: str | int | float | None = None
    incremental: str | int | float | None = None


Batch = list[Record | Unreadable]


@runtime_checkable
class Source(Protocol):
    def read(
        self,
        extract: Extract,
        *,
        since: Any = None,
        ids: list[str] | None = None,
        batch_size: int,
    ) -> Iterator[Batch]:
        """Yield batches (lists of at most ``batch_size`` JSON-safe records, or :class:`Unreadable` in the place
        of a record that cannot be read).

        Order: by ``extract.incremental`` then ``extract.key`` when incremental is set,
        else by ``extract.key`` (a paged REST source orders each page; the watermark is the maximum, so
        the order of batches does not matter to it).
        ``since``: only records whose incremental field is greater than it
        (ignored when ``extract.incremental`` is not set).
        ``ids``: only records whose key (compared as a string) is in the list; a resync
        of chosen records, so ``since`` is ignored. An empty list yields nothing.
        Raises :class:`ConnectorError` for a whole-application problem.
        """
        ...

    def newest(self, extract: Extract, limit: int) -> Batch:
        """At most ``limit`` records for a look at the data (``flowlink try``), never for a run: the newest by
        ``extract.incremental`` then ``extract.key``, newest first, when incremental is set; else the first by
        ``extract.key``, as a run reads them. ``extract.filter`` applies. Unreadable records take their place by
        the key and incremental value they have. Raises :class:`ConnectorError` as ``read`` does."""
        ...

    def close(self) -> None:
        """Release connections/handles; safe to call twice."""
        ...


def newest(batches: Iterator[Batch], extract: Extract, limit: int) -> Batch:
    """:meth:`Source.newest` from a whole read (a source that cannot ask its application for the newest records):
    with ``extract.incremental``, the ``limit`` highest by (incremental, key) in :mod:`flowlink.ordering`'s rule,
    holding only those while reading; else the first ``limit`` of the read, which then stops."""
    from flowlink.ordering import order_key  # flowlink.ordering imports nothing of the connectors

    if limit < 1:
        raise ValueError("limit must be at least 1")
    try:
        if not extract.incremental:
            first: Batch = []
            for batch in batches:
                first += batch[: limit - len(first)]
                if len(first) == limit:
                    break
            return first

        def rank(record: Record | Unreadable) -> tuple:
            if isinstance(record, Unreadable):
                return (order_key(record.incremental), order_key(record.key))
            return (order_key(dotted(record, extract.incremental)), order_key(dotted(record, extract.key)))

        return heapq.nlargest(limit, (r for batch in batches for r in batch), key=rank)
    finally:
        getattr(batches, "close", lambda: None)()  # a generator: end it, and so its query, pages or files


def dotted(record: Record, path: str | None) -> Any:
    """record[path], else a dotted path through nested objects (as the REST source reads keys); None when missing."""
    if path is None:
        return None
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


@runtime_checkable
class Target(Protocol):
    def write(
        self, load: Load, records: list[dict], destination_ids: list[str | None] | None = None
    ) -> list[WriteResult]:
        """Write records by ``load.method``; exactly one result per input record, in order.

        ``destination_ids``: for each record, in order, its id in the target as recorded by an earlier load (None when
        unknown); create_or_update updates by it. Targets that key records by ``load.key`` ignore it.

        Per-record problems are results with ``ok=False``; only whole-application
        problems raise :class:`ConnectorError`.
        """
        ...

    def close(self) -> None:
        """Release connections/handles; safe to call twice."""
        ...


def json_safe(value: Any, field: str = "?") -> Any:
    """Convert a driver value to a JSON-safe value (see the module docstring)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise ConnectorError(f"field {field!r} holds binary data, which flowlink does not transfer")
    if isinstance(value, dict):
        return {str(k): json_safe(v, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, field) for v in value]
    return str(value)
