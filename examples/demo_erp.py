"""The demo ERP: a SQLite database with customers and orders.

    python examples/demo_erp.py demo_erp.db [--customers 50] [--orders 150] [--seed 1]

Tables::

    customers(id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT,
              country_code TEXT, updated_at TEXT)
    orders(id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL,
           status TEXT, updated_at TEXT)

* The data depends only on the seed (and the counts): the same arguments give the
  same rows. Country codes are DE, FR, US or GB; every email has an "@" (some have
  capital letters, as typed by people); order status is N (new), S (shipped) or
  C (cancelled); amounts have two decimals; every order's customer exists.
* ``updated_at`` is ISO 8601 UTC text with seconds, ``2024-03-05T08:15:00Z``: one
  format everywhere, so comparing the text compares the times. The seeded values
  are in 2024.
* :func:`touch` sets ``updated_at`` of chosen rows to now, or to one second after
  the newest value of the table if that is later, so touched rows are always the
  newest (even when touched twice in the same second).
* Creating over an existing file replaces it atomically: the database is built in a
  temporary file next to it, then renamed over it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import sys
import tempfile
import unicodedata
from collections.abc import Iterable
from pathlib import Path

COUNTRIES = ("DE", "FR", "US", "GB")
STATUSES = ("N", "S", "C")
TABLES = ("customers", "orders")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
YEAR = 366 * 24 * 3600

FIRST_NAMES = {
    "DE": ["Anna", "Jonas", "Lena", "Lukas", "Marie", "Jürgen", "Sophie", "Felix"],
    "FR": ["Camille", "Louis", "Chloé", "Hugo", "Léa", "François", "Manon", "Théo"],
    "US": ["Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Mia", "Mason"],
    "GB": ["Oliver", "Amelia", "Harry", "Isla", "George", "Poppy", "Jack", "Freya"],
}
LAST_NAMES = {
    "DE": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker"],
    "FR": ["Martin", "Bernard", "Dubois", "Thomas", "Lefèvre", "Moreau"],
    "US": ["Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller"],
    "GB": ["Jones", "Taylor", "Davies", "Evans", "Wilson", "O'Brien"],
}
DOMAINS = {"DE": "example.de", "FR": "example.fr", "US": "example.com", "GB": "example.co.uk"}

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL,
    country_code TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    amount REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('N', 'S', 'C')),
    updated_at TEXT NOT NULL
);
CREATE INDEX customers_updated_at ON customers(updated_at);
CREATE INDEX orders_updated_at ON orders(updated_at);
"""


def create(path: str | os.PathLike[str], customers: int = 50, orders: int = 150, seed: int = 1) -> None:
    """Create (or atomically replace) the demo ERP database at ``path``."""
    if customers < 0 or orders < 0:
        raise ValueError("customers and orders must be 0 or more")
    if orders and not customers:
        raise ValueError("orders need at least one customer")
    rng = random.Random(seed)
    customer_rows = []
    for i in range(1, customers + 1):
        country = rng.choice(COUNTRIES)
        first, last = rng.choice(FIRST_NAMES[country]), rng.choice(LAST_NAMES[country])
        local = f"{_ascii(first)}.{_ascii(last)}{i}"
        email = f"{local if rng.random() < 0.3 else local.lower()}@{DOMAINS[country]}"
        customer_rows.append((i, first, last, email, country, _stamp(rng)))
    order_rows = [
        (
            i,
            rng.randint(1, customers),
            round(rng.uniform(5, 900), 2),
            rng.choices(STATUSES, weights=(3, 5, 1))[0],
            _stamp(rng),
        )
        for i in range(1, orders + 1)
    ]

    target = Path(path)
    folder = target.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        db = sqlite3.connect(tmp)
        try:
            with db:
                db.executescript(SCHEMA)
                db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", customer_rows)
                db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", order_rows)
        finally:
            db.close()
        for leftover in ("-wal", "-shm", "-journal"):  # files of the old database must not meet the new one
            Path(f"{target}{leftover}").unlink(missing_ok=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def touch(path: str | os.PathLike[str], table: str, ids: Iterable[int]) -> str:
    """Bump ``updated_at`` of the rows with these ids (to simulate changes); return the new value."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r} (have: {', '.join(TABLES)})")
    if not Path(path).is_file():
        raise FileNotFoundError(f"no demo ERP database at {path}")
    ids = [int(i) for i in ids]
    db = sqlite3.connect(path)
    try:
        with db:
            newest = db.execute(f"SELECT max(updated_at) FROM {table}").fetchone()[0]
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            if newest:
                now = max(
                    now, dt.datetime.strptime(newest, TIME_FORMAT).replace(tzinfo=dt.UTC) + dt.timedelta(seconds=1)
                )
            stamp = now.strftime(TIME_FORMAT)
            db.executemany(f"UPDATE {table} SET updated_at = ? WHERE id = ?", [(stamp, i) for i in ids])
    finally:
        db.close()
    return stamp


def _stamp(rng: random.Random) -> str:
    return (EPOCH + dt.timedelta(seconds=rng.randrange(YEAR))).strftime(TIME_FORMAT)


def _ascii(name: str) -> str:
    """'Müller' -> 'Muller', "O'Brien" -> 'OBrien': a name fit for an email address."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(c for c in plain if c.isalnum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Create the Flowlink demo ERP (a SQLite database of customers and orders)."
    )
    parser.add_argument("path", help="the database file to create (replaced if it exists)")
    parser.add_argument("--customers", type=int, default=50, help="number of customers (default 50)")
    parser.add_argument("--orders", type=int, default=150, help="number of orders (default 150)")
    parser.add_argument(
        "--seed", type=int, default=1, help="random seed: the same seed gives the same data (default 1)"
    )
    args = parser.parse_args(argv)
    try:
        create(args.path, customers=args.customers, orders=args.orders, seed=args.seed)
    except (ValueError, OSError, sqlite3.Error) as exc:
        print(f"demo ERP: {exc}", file=sys.stderr)
        return 1
    print(f"created {args.path}: {args.customers} customers, {args.orders} orders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
